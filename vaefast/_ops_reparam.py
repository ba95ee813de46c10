"""Fused reparameterization (z = mu + exp(logvar/2)·eps, eps from Philox)."""

__all__ = []
