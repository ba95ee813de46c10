# Binding of the GEMM part (csrc/gemm.c). Matrices arrive as 2-D float32
# arrays whose rows are contiguous (checked by vaefast/_ops_linear.py); the
# row stride becomes the C leading dimension, so slices need no copy.
#
# With check=True the *_checked entry points run and the function returns
# True when the GEMM saw a NaN/Inf before the activation (some input is not
# finite, or the result overflowed float32); vaefast/_ops_linear.py then
# finds out which. Otherwise the return value is False.

cdef extern from "vaefast.h" nogil:
    int VF_ACT_NONE, VF_ACT_RELU
    int vf_linear_forward(int64_t M, int64_t N, int64_t K, const float *X, int64_t ldx,
                          const float *W, int64_t ldw, const float *b, int act,
                          float *Y, int64_t ldy)
    int vf_linear_backward_input(int64_t M, int64_t N, int64_t K, const float *dY,
                                 int64_t lddy, const float *W, int64_t ldw,
                                 const float *mask, int64_t ldm, float *dX, int64_t lddx)
    int vf_linear_backward_weight(int64_t M, int64_t N, int64_t K, const float *X,
                                  int64_t ldx, const float *dY, int64_t lddy,
                                  float *dW, int64_t lddw, float *db, int accumulate)
    int vf_matmul(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                  const float *A, int64_t lda, const float *B, int64_t ldb,
                  float *C, int64_t ldc, int accumulate)
    int vf_linear_forward_checked(int64_t M, int64_t N, int64_t K, const float *X,
                                  int64_t ldx, const float *W, int64_t ldw, const float *b,
                                  int act, float *Y, int64_t ldy)
    int vf_linear_backward_input_checked(int64_t M, int64_t N, int64_t K, const float *dY,
                                         int64_t lddy, const float *Yo, int64_t ldyo,
                                         const float *W, int64_t ldw, const float *mask,
                                         int64_t ldm, float *dX, int64_t lddx)
    int vf_linear_backward_weight_checked(int64_t M, int64_t N, int64_t K, const float *X,
                                          int64_t ldx, const float *dY, int64_t lddy,
                                          const float *Yo, int64_t ldyo, float *dW,
                                          int64_t lddw, float *db, int accumulate)
    int vf_matmul_checked(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                          const float *A, int64_t lda, const float *B, int64_t ldb,
                          float *C, int64_t ldc, int accumulate)


cdef int64_t _ld(const float[:, :] a, str name) except -1:
    """Leading dimension (in floats) of a row-contiguous matrix."""
    if a.shape[1] > 1 and a.strides[1] != sizeof(float):
        raise ValueError(f"{name}: rows must be contiguous")
    if a.shape[0] <= 1 or a.shape[1] == 0:
        return max(a.shape[1], 1)
    if a.strides[0] % sizeof(float) != 0 or a.strides[0] < <Py_ssize_t>sizeof(float) * a.shape[1]:
        raise ValueError(f"{name}: unsupported row stride {a.strides[0]}")
    return a.strides[0] // sizeof(float)


cdef inline const float *_ptr(const float[:, :] a):
    return &a[0, 0] if a.shape[0] > 0 and a.shape[1] > 0 else NULL


cdef inline float *_wptr(float[:, :] a):
    return &a[0, 0] if a.shape[0] > 0 and a.shape[1] > 0 else NULL


cdef inline const float *_vptr(const float[::1] v):
    return &v[0] if v is not None and v.shape[0] > 0 else NULL


cdef bint _nonfinite(int status, str what) except -1:
    if status == VF_ERR_NONFINITE:
        return True
    check_status(status, what)
    return False


def gemm_linear_forward(const float[:, :] x, const float[:, :] W, const float[::1] b,
                        bint relu, float[:, :] y, bint check=False):
    """y (M×N) = act(x (M×K) · W (K×N) + b). Shapes checked by the caller."""
    cdef int64_t M = x.shape[0], K = x.shape[1], N = W.shape[1]
    cdef int64_t ldx = _ld(x, "x"), ldw = _ld(W, "W"), ldy = _ld(y, "out")
    cdef const float *px = _ptr(x)
    cdef const float *pw = _ptr(W)
    cdef const float *pb = _vptr(b)
    cdef float *py = _wptr(y)
    cdef int act = VF_ACT_RELU if relu else VF_ACT_NONE
    cdef int status
    with nogil:
        if check:
            status = vf_linear_forward_checked(M, N, K, px, ldx, pw, ldw, pb, act, py, ldy)
        else:
            status = vf_linear_forward(M, N, K, px, ldx, pw, ldw, pb, act, py, ldy)
    return _nonfinite(status, "linear")


def gemm_linear_backward_input(const float[:, :] dy, const float[:, :] W,
                               const float[:, :] mask, float[:, :] dx,
                               const float[:, :] relu_out=None, bint check=False):
    """dx (M×K) = ((dy ⊙ [relu_out > 0]) (M×N) · Wᵀ) ⊙ [mask > 0];
    mask and relu_out (M×N, checked variant only) may be None."""
    cdef int64_t M = dy.shape[0], N = dy.shape[1], K = W.shape[0]
    cdef int64_t lddy = _ld(dy, "dy"), ldw = _ld(W, "W"), lddx = _ld(dx, "dx")
    cdef int64_t ldm = _ld(mask, "mask") if mask is not None else 0
    cdef const float *pdy = _ptr(dy)
    cdef const float *pw = _ptr(W)
    cdef const float *pm = _ptr(mask) if mask is not None else NULL
    cdef float *pdx = _wptr(dx)
    cdef int64_t ldr = _ld(relu_out, "y") if relu_out is not None else 0
    cdef const float *pr = _ptr(relu_out) if relu_out is not None else NULL
    cdef int status
    if relu_out is not None and not check:
        raise ValueError("relu_out needs check=True")
    with nogil:
        if check:
            status = vf_linear_backward_input_checked(M, N, K, pdy, lddy, pr, ldr, pw, ldw,
                                                      pm, ldm, pdx, lddx)
        else:
            status = vf_linear_backward_input(M, N, K, pdy, lddy, pw, ldw, pm, ldm, pdx, lddx)
    return _nonfinite(status, "linear_backward (dx)")


def gemm_linear_backward_weight(const float[:, :] x, const float[:, :] dy,
                                float[:, :] dW, float[::1] db, bint accumulate,
                                const float[:, :] relu_out=None, bint check=False):
    """dW (K×N) (+)= xᵀ (K×M) · dz (M×N); db (N) (+)= column sums of dz,
    where dz = dy ⊙ [relu_out > 0] (checked variant only) or dy."""
    cdef int64_t M = x.shape[0], K = x.shape[1], N = dy.shape[1]
    cdef int64_t ldx = _ld(x, "x"), lddy = _ld(dy, "dy"), lddw = _ld(dW, "dW")
    cdef const float *px = _ptr(x)
    cdef const float *pdy = _ptr(dy)
    cdef float *pdw = _wptr(dW)
    cdef float *pdb = &db[0] if db is not None and db.shape[0] > 0 else NULL
    cdef int64_t ldr = _ld(relu_out, "y") if relu_out is not None else 0
    cdef const float *pr = _ptr(relu_out) if relu_out is not None else NULL
    cdef int status
    if relu_out is not None and not check:
        raise ValueError("relu_out needs check=True")
    with nogil:
        if check:
            status = vf_linear_backward_weight_checked(M, N, K, px, ldx, pdy, lddy, pr, ldr,
                                                       pdw, lddw, pdb, 1 if accumulate else 0)
        else:
            status = vf_linear_backward_weight(M, N, K, px, ldx, pdy, lddy, pdw, lddw, pdb,
                                               1 if accumulate else 0)
    return _nonfinite(status, "linear_backward (dW)")


def gemm_matmul(const float[:, :] a, const float[:, :] b, bint trans_a, bint trans_b,
                float[:, :] c, bint accumulate, bint check=False):
    """c (M×N) (+)= op(a) · op(b)."""
    cdef int64_t M = c.shape[0], N = c.shape[1]
    cdef int64_t K = a.shape[0] if trans_a else a.shape[1]
    cdef int64_t lda = _ld(a, "a"), ldb = _ld(b, "b"), ldc = _ld(c, "out")
    cdef const float *pa = _ptr(a)
    cdef const float *pb = _ptr(b)
    cdef float *pc = _wptr(c)
    cdef int status
    with nogil:
        if check:
            status = vf_matmul_checked(1 if trans_a else 0, 1 if trans_b else 0, M, N, K,
                                       pa, lda, pb, ldb, pc, ldc, 1 if accumulate else 0)
        else:
            status = vf_matmul(1 if trans_a else 0, 1 if trans_b else 0, M, N, K, pa, lda,
                               pb, ldb, pc, ldc, 1 if accumulate else 0)
    return _nonfinite(status, "matmul")
