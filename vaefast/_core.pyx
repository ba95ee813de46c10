# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: freethreading_compatible = True
# (Safe without the GIL, docs/threads.md "Free-threaded Python": module state
# is immutable after import, each VAECore's weights are guarded by the C
# core's readers-writer lock, its read depth is per thread, and the Python
# VAE serialises the writers that touch VAECore.step.)
"""Binding to the C core (csrc/vaefast.h). Binding only: shapes, dtypes,
releasing the GIL. Each part of the core has its own .pxi below; the C API
they call is declared once, in _core.pxd."""

from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.string cimport memcpy


class NonFiniteError(FloatingPointError):
    """A loss or gradient became NaN or infinite."""


class SizeOverflowError(MemoryError, OverflowError):
    """A requested size is too large to represent or allocate."""


cdef int check_status(int status, str what) except -1:
    """Turn a C status into a Python exception naming `what`."""
    if status == VF_OK:
        return 0
    message = f"{what}: {vf_status_string(status).decode()}"
    if status == VF_ERR_NOMEM:
        raise MemoryError(message)
    if status == VF_ERR_NONFINITE:
        raise NonFiniteError(message)
    if status == VF_ERR_OVERFLOW:
        raise SizeOverflowError(message)
    raise ValueError(message)


include "_dispatch.pxi"
include "_gemm.pxi"
include "_csr.pxi"
include "_bf16.pxi"
include "_random.pxi"
include "_elementwise.pxi"
include "_likelihood.pxi"
include "_count.pxi"
include "_norm.pxi"
include "_covariates.pxi"
include "_dispersion.pxi"
include "_side_rows.pxi"
include "_model.pxi"
include "_buffer_view.pxi"
include "_grad_hook.pxi"
