"""Low-level fused kernels on float32 arrays.

These are the building blocks the model uses, exposed for testing and for
embedding in other pipelines. Inputs are converted to C-contiguous float32
(or rejected with an error naming the argument); outputs are new arrays
unless ``out=`` is given. One module per part of the binding: dense layers
(_linear), the reparameterization (_reparam), elementwise kernels
(_elementwise), the likelihood losses (_losses) , CSR
batches for the first layer (_sparse), scVI's count losses (_count), the
categorical covariates' gather-add (_covariates) and batch / layer
normalisation (_norm).
"""

from . import (_count, _covariates, _elementwise, _linear, _losses, _norm, _reparam,
               _sparse)
from ._elementwise import *  # noqa: F401,F403
from ._losses import *  # noqa: F401,F403
from ._linear import *  # noqa: F401,F403
from ._reparam import *  # noqa: F401,F403
from ._sparse import *  # noqa: F401,F403
from ._count import *  # noqa: F401,F403
from ._norm import *  # noqa: F401,F403
from ._covariates import *  # noqa: F401,F403
from .._core import SizeOverflowError  # noqa: F401  (sizes beyond int64/memory)
from .._validation import Float32OverflowError  # noqa: F401

__all__ = [*_linear.__all__, *_reparam.__all__, *_elementwise.__all__, *_losses.__all__,
           *_sparse.__all__, *_count.__all__, *_covariates.__all__, *_norm.__all__]
