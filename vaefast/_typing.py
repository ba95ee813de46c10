"""Type aliases of vaefast's annotations (the public API is checked with
``mypy --strict``; see .ci/typecheck). Nothing here runs at import beyond
building the aliases from numpy.typing."""

import os
from typing import Any, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["ArrayLike", "F32", "F64", "Floats", "I64", "I32", "SparseMatrix", "StrPath", "Tensor", "Seed"]

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
I32 = NDArray[np.int32]
# float32 or float64 (the NumPy maths keep the dtype they are given)
Floats = NDArray[np.floating[Any]]
# A torch.Tensor. PyTorch is an optional peer, absent where the type check
# runs, so its tensors are typed as Any (its module is passed in as `torch`).
Tensor = Any
# What as_seed accepts: an int in [0, 2**64)
Seed = int
# A CSR (or CSC) matrix: scipy.sparse's, a vaefast CSRBatch, or anything with
# format/data/indices/indptr/shape. SciPy is optional and untyped here.
SparseMatrix = Any
# A file name: str or os.PathLike
StrPath = Union[str, "os.PathLike[str]"]
