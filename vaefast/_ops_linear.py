"""Dense-layer products (fused GEMM): linear, linear_backward, matmul."""

__all__ = []
