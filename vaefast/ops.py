"""Low-level fused kernels on float32 arrays.

These are the building blocks the model uses, exposed for testing and for
embedding in other pipelines. Inputs are converted to C-contiguous float32
(or rejected with an error naming the argument); outputs are new arrays
unless ``out=`` is given.
"""

from . import _ops_count, _ops_elementwise, _ops_likelihood, _ops_linear, _ops_reparam
from ._ops_count import *  # noqa: F401,F403
from ._ops_elementwise import *  # noqa: F401,F403
from ._ops_likelihood import *  # noqa: F401,F403
from ._ops_linear import *  # noqa: F401,F403
from ._ops_reparam import *  # noqa: F401,F403
from ._core import SizeOverflowError  # noqa: F401  (sizes beyond int64/memory)
from ._validation import Float32OverflowError  # noqa: F401

__all__ = [*_ops_linear.__all__, *_ops_reparam.__all__, *_ops_elementwise.__all__,
           *_ops_likelihood.__all__, *_ops_count.__all__]
