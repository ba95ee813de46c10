"""Counter-based random numbers (Philox4x32-10) and normal variates."""

__all__ = []
