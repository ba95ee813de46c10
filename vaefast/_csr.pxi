# Binding of the CSR-input products (csrc/csr.c). The CSR arrays arrive as
# contiguous int64 row pointers, int32 column indices and float32 values
# (converted and length-checked by vaefast/ops/_sparse.py); dense matrices as
# in _gemm.pxi. Each function returns the C status: VF_OK, VF_ERR_ARG (the
# caller then finds which rule the input breaks and names the argument) or
# VF_ERR_NONFINITE (the caller names the non-finite input); any other status
# raises here.

from libc.stdint cimport int32_t

cdef extern from "vaefast.h" nogil:
    int VF_CSR_NONE, VF_CSR_LOG1P
    int vf_csr_check(int64_t M, int64_t K, const int64_t *indptr, const int32_t *indices,
                     const float *values, int transform)
    int vf_csr_linear_forward(int64_t M, int64_t N, int64_t K, const int64_t *indptr,
                              const int32_t *indices, const float *values, int transform,
                              const float *W, int64_t ldw, const float *b, int act,
                              float *Y, int64_t ldy)
    int vf_csr_linear_backward_weight(int64_t M, int64_t N, int64_t K,
                                      const int64_t *indptr, const int32_t *indices,
                                      const float *values, int transform,
                                      const float *dY, int64_t lddy, const float *Yo,
                                      int64_t ldyo, float *dW, int64_t lddw, float *db,
                                      int accumulate)


CSR_STATUS_OK = VF_OK
CSR_STATUS_ARG = VF_ERR_ARG
CSR_STATUS_NONFINITE = VF_ERR_NONFINITE
CSR_TRANSFORMS = {None: VF_CSR_NONE, "log1p": VF_CSR_LOG1P}


cdef int _csr_status(int status, str what) except? -100:
    if status == VF_OK or status == VF_ERR_ARG or status == VF_ERR_NONFINITE:
        return status
    check_status(status, what)
    return status


cdef inline const int32_t *_iptr(const int32_t[::1] a):
    return &a[0] if a.shape[0] > 0 else NULL


cdef inline const float *_fptr(const float[::1] a):
    return &a[0] if a.shape[0] > 0 else NULL


def csr_check(const int64_t[::1] indptr, const int32_t[::1] indices,
              const float[::1] values, int64_t K, int transform):
    """Status of vf_csr_check for the len(indptr) − 1 rows."""
    cdef int64_t M = indptr.shape[0] - 1
    cdef const int32_t *pi = _iptr(indices)
    cdef const float *pv = _fptr(values)
    cdef int status
    with nogil:
        status = vf_csr_check(M, K, &indptr[0], pi, pv, transform)
    return _csr_status(status, "sparse input")


def csr_linear_forward(const int64_t[::1] indptr, const int32_t[::1] indices,
                       const float[::1] values, int transform, const float[:, :] W,
                       const float[::1] b, bint relu, float[:, :] y):
    """y (M×N) = act(T(x) · W (K×N) + b): status (see above)."""
    cdef int64_t M = indptr.shape[0] - 1, K = W.shape[0], N = W.shape[1]
    cdef int64_t ldw = _ld(W, "W"), ldy = _ld(y, "out")
    cdef const int32_t *pi = _iptr(indices)
    cdef const float *pv = _fptr(values)
    cdef const float *pw = _ptr(W)
    cdef const float *pb = _vptr(b)
    cdef float *py = _wptr(y)
    cdef int act = VF_ACT_RELU if relu else VF_ACT_NONE
    cdef int status
    with nogil:
        status = vf_csr_linear_forward(M, N, K, &indptr[0], pi, pv, transform, pw, ldw, pb,
                                       act, py, ldy)
    return _csr_status(status, "sparse_linear")


def csr_linear_backward_weight(const int64_t[::1] indptr, const int32_t[::1] indices,
                               const float[::1] values, int transform,
                               const float[:, :] dy, const float[:, :] relu_out,
                               float[:, :] dW, float[::1] db, bint accumulate):
    """dW (K×N) (+)= T(x)ᵀ · dz, db (N) (+)= column sums of dz, dz = dy ⊙
    [relu_out > 0] (relu_out may be None): status (see above)."""
    cdef int64_t M = indptr.shape[0] - 1, K = dW.shape[0], N = dW.shape[1]
    cdef int64_t lddy = _ld(dy, "dy"), lddw = _ld(dW, "dW")
    cdef int64_t ldr = _ld(relu_out, "y") if relu_out is not None else 0
    cdef const float *pr = _ptr(relu_out) if relu_out is not None else NULL
    cdef const int32_t *pi = _iptr(indices)
    cdef const float *pv = _fptr(values)
    cdef const float *pdy = _ptr(dy)
    cdef float *pdw = _wptr(dW)
    cdef float *pdb = &db[0] if db is not None and db.shape[0] > 0 else NULL
    cdef int status
    with nogil:
        status = vf_csr_linear_backward_weight(M, N, K, &indptr[0], pi, pv, transform, pdy,
                                               lddy, pr, ldr, pdw, lddw, pdb,
                                               1 if accumulate else 0)
    return _csr_status(status, "sparse_linear_weight_grad")
