"""Low-level fused kernels on float32 arrays.

These are the building blocks the model uses, exposed for testing and for
embedding in other pipelines. Inputs are converted to C-contiguous float32
(or rejected with an error naming the argument); outputs are new arrays
unless ``out=`` is given.
"""

from ._ops_elementwise import *  # noqa: F401,F403
from ._ops_elementwise import __all__ as _elementwise_all
from ._ops_linear import *  # noqa: F401,F403
from ._ops_linear import __all__ as _linear_all

__all__ = list(_linear_all) + list(_elementwise_all)
