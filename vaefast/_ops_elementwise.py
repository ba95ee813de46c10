"""Fused element-wise kernels: reparameterization, losses, optimizers."""

__all__ = []
