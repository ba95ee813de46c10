# Binding of the GEMM part (csrc/gemm.c). Matrices arrive as 2-D float32
# arrays whose rows are contiguous (checked by vaefast/ops/_linear.py); the
# row stride becomes the C leading dimension, so slices need no copy.
#
# Each function returns True when the GEMM saw a NaN/Inf before the
# activation (some input is not finite, or the result overflowed float32);
# vaefast/ops/_linear.py then finds out which. Otherwise it returns False.


cdef inline int64_t _row_ld(Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t row_stride,
                            Py_ssize_t col_stride) noexcept:
    """The row-stride rule, stated once: a float32 matrix reaches C in place
    when its rows are contiguous and evenly spaced forward in memory (a row
    slice of a bigger matrix). Returns its leading dimension in floats, or -1."""
    if cols > 1 and col_stride != 4:
        return -1
    if rows <= 1 or cols == 0:  # one row, or nothing to read: any stride
        return cols if cols > 1 else 1
    if row_stride % 4 != 0 or row_stride < 4 * cols:
        return -1
    return row_stride // 4


def row_leading_dimension(Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t row_stride,
                          Py_ssize_t col_stride):
    """_row_ld for Python (vaefast._validation.has_unit_rows)."""
    return _row_ld(rows, cols, row_stride, col_stride)


cdef int64_t _ld(const float[:, :] a, str name) except -1:
    """Leading dimension (in floats) of a row-contiguous matrix."""
    cdef int64_t ld = _row_ld(a.shape[0], a.shape[1], a.strides[0], a.strides[1])
    if ld < 0:
        raise ValueError(f"{name}: rows must be contiguous and evenly spaced "
                         f"(strides {a.strides[0]}, {a.strides[1]})")
    return ld


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
                        bint relu, float[:, :] y):
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
        status = vf_linear_forward(M, N, K, px, ldx, pw, ldw, pb, act, py, ldy)
    return _nonfinite(status, "linear")


cdef inline int64_t _opt_ld(const float[:, :] a, str name) except -1:
    return _ld(a, name) if a is not None else 0


cdef inline const float *_opt_ptr(const float[:, :] a):
    return _ptr(a) if a is not None else NULL


def gemm_linear_backward_input(const float[:, :] dy, const float[:, :] W,
                               const float[:, :] mask, float[:, :] dx,
                               const float[:, :] relu_out=None):
    """dx (M×K) = ((dy ⊙ [relu_out > 0]) (M×N) · Wᵀ) ⊙ [mask > 0];
    mask (M×K) and relu_out (M×N) may be None."""
    cdef int64_t M = dy.shape[0], N = dy.shape[1], K = W.shape[0]
    cdef int64_t lddy = _ld(dy, "dy"), ldw = _ld(W, "W"), lddx = _ld(dx, "dx")
    cdef int64_t ldm = _opt_ld(mask, "mask"), ldr = _opt_ld(relu_out, "y")
    cdef const float *pdy = _ptr(dy)
    cdef const float *pw = _ptr(W)
    cdef const float *pm = _opt_ptr(mask)
    cdef const float *pr = _opt_ptr(relu_out)
    cdef float *pdx = _wptr(dx)
    cdef int status
    with nogil:
        status = vf_linear_backward_input(M, N, K, pdy, lddy, pr, ldr, pw, ldw, pm, ldm,
                                          pdx, lddx)
    return _nonfinite(status, "linear_backward (dx)")


def gemm_linear_backward_weight(const float[:, :] x, const float[:, :] dy,
                                float[:, :] dW, float[::1] db, bint accumulate,
                                const float[:, :] relu_out=None):
    """dW (K×N) (+)= xᵀ (K×M) · dz (M×N); db (N) (+)= column sums of dz,
    where dz = dy ⊙ [relu_out > 0], or dy when relu_out is None."""
    cdef int64_t M = x.shape[0], K = x.shape[1], N = dy.shape[1]
    cdef int64_t ldx = _ld(x, "x"), lddy = _ld(dy, "dy"), lddw = _ld(dW, "dW")
    cdef int64_t ldr = _opt_ld(relu_out, "y")
    cdef const float *px = _ptr(x)
    cdef const float *pdy = _ptr(dy)
    cdef const float *pr = _opt_ptr(relu_out)
    cdef float *pdw = _wptr(dW)
    cdef float *pdb = &db[0] if db is not None and db.shape[0] > 0 else NULL
    cdef int status
    with nogil:
        status = vf_linear_backward_weight(M, N, K, px, ldx, pdy, lddy, pr, ldr, pdw, lddw,
                                           pdb, 1 if accumulate else 0)
    return _nonfinite(status, "linear_backward (dW)")


def gemm_matmul(const float[:, :] a, const float[:, :] b, bint trans_a, bint trans_b,
                float[:, :] c, bint accumulate):
    """c (M×N) (+)= op(a) · op(b)."""
    cdef int64_t M = c.shape[0], N = c.shape[1]
    cdef int64_t K = a.shape[0] if trans_a else a.shape[1]
    cdef int64_t lda = _ld(a, "a"), ldb = _ld(b, "b"), ldc = _ld(c, "out")
    cdef const float *pa = _ptr(a)
    cdef const float *pb = _ptr(b)
    cdef float *pc = _wptr(c)
    cdef int status
    with nogil:
        status = vf_matmul(1 if trans_a else 0, 1 if trans_b else 0, M, N, K, pa, lda,
                           pb, ldb, pc, ldc, 1 if accumulate else 0)
    return _nonfinite(status, "matmul")


# ----------------------------------------------------------- fast paths
# vaefast.ops calls these first: for arguments that are already what the
# core takes (exact float32 ndarrays, rows contiguous, shapes matching) they
# do the whole call, reading each array's layout with one buffer request,
# at C speed, since Python overhead is a visible share of a batch-32 layer.
# They return None, having written nothing the caller can see, when an
# argument needs the checked Python path (conversion, an error message) or
# the GEMM flagged a NaN/Inf (the Python path runs again and names it).
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_RECORDS, PyBUF_RECORDS_RO
import numpy as _gnp

cdef object _ndarray = _gnp.ndarray
cdef object _gempty = _gnp.empty
cdef object _gf32 = _gnp.float32

cdef struct _Mat:
    float *ptr
    int64_t rows, cols, ld


cdef bint _take(object obj, Py_buffer *view, _Mat *m, int ndim, bint writable):
    """Hold obj's buffer and describe it in m if obj is a float32 ndarray of
    ndim dimensions with contiguous, evenly spaced rows; else False, nothing
    held."""
    if type(obj) is not _ndarray:
        return False
    try:
        PyObject_GetBuffer(obj, view, PyBUF_RECORDS if writable else PyBUF_RECORDS_RO)
    except Exception:  # e.g. a read-only output
        return False
    cdef const char *f = view.format
    if f[0] == b'<' or f[0] == b'=' or f[0] == b'@':
        f += 1
    cdef bint ok = view.ndim == ndim and view.itemsize == 4 and f[0] == b'f' and f[1] == 0
    if ok and ndim == 1:
        m.rows, m.cols = 1, view.shape[0]
        m.ld = m.cols if m.cols > 1 else 1
        ok = m.cols <= 1 or view.strides[0] == 4
    elif ok:
        m.rows, m.cols = view.shape[0], view.shape[1]
        m.ld = _row_ld(m.rows, m.cols, view.strides[0], view.strides[1])
        ok = m.ld >= 0
    if not ok:
        PyBuffer_Release(view)
        return False
    m.ptr = <float *>view.buf
    return True


def gemm_linear_ready(x, W, b, bint relu, out):
    """ops.linear without the Python checks, or None (see above)."""
    cdef Py_buffer vx, vw, vb, vy
    cdef _Mat mx, mw, mb, my
    cdef int status = VF_ERR_ARG
    cdef int act = VF_ACT_RELU if relu else VF_ACT_NONE
    cdef const float *pb = NULL
    if not _take(x, &vx, &mx, 2, False):
        return None
    if not _take(W, &vw, &mw, 2, False):
        PyBuffer_Release(&vx)
        return None
    cdef bint have_b = False, have_y = False
    try:
        if mx.cols != mw.rows or mx.rows == 0 or mw.cols == 0:
            return None  # an error message or an empty product: Python path
        if b is not None:
            have_b = _take(b, &vb, &mb, 1, False)
            if not have_b or mb.cols != mw.cols:
                return None
            pb = mb.ptr
        if out is None:
            out = _gempty((mx.rows, mw.cols), dtype=_gf32)
        have_y = _take(out, &vy, &my, 2, True)
        if not have_y or my.rows != mx.rows or my.cols != mw.cols:
            return None
        with nogil:
            status = vf_linear_forward(mx.rows, mw.cols, mx.cols, mx.ptr, mx.ld,
                                               mw.ptr, mw.ld, pb, act, my.ptr, my.ld)
    finally:
        PyBuffer_Release(&vx)
        PyBuffer_Release(&vw)
        if have_b:
            PyBuffer_Release(&vb)
        if have_y:
            PyBuffer_Release(&vy)
    return out if status == VF_OK else None


def gemm_matmul_ready(a, b, bint trans_a, bint trans_b, out):
    """ops.matmul without the Python checks, or None (see above)."""
    cdef Py_buffer va, vb, vc
    cdef _Mat ma, mb, mc
    cdef int status = VF_ERR_ARG
    if not _take(a, &va, &ma, 2, False):
        return None
    if not _take(b, &vb, &mb, 2, False):
        PyBuffer_Release(&va)
        return None
    cdef int64_t M = ma.cols if trans_a else ma.rows
    cdef int64_t K = ma.rows if trans_a else ma.cols
    cdef int64_t Kb = mb.cols if trans_b else mb.rows
    cdef int64_t N = mb.rows if trans_b else mb.cols
    cdef bint have_c = False
    try:
        if K != Kb or M == 0 or N == 0:
            return None
        if out is None:
            out = _gempty((M, N), dtype=_gf32)
        have_c = _take(out, &vc, &mc, 2, True)
        if not have_c or mc.rows != M or mc.cols != N:
            return None
        with nogil:
            status = vf_matmul(trans_a, trans_b, M, N, K, ma.ptr, ma.ld, mb.ptr, mb.ld,
                                       mc.ptr, mc.ld, 0)
    finally:
        PyBuffer_Release(&va)
        PyBuffer_Release(&vb)
        if have_c:
            PyBuffer_Release(&vc)
    return out if status == VF_OK else None


def gemm_linear_backward_ready(x, W, dy, y, bint relu, bint need_dx, dW=None, db=None):
    """ops.linear_backward without the Python checks: (dx, dW, db) or None.
    dW and db: the caller's outputs, or None for fresh ones."""
    cdef Py_buffer vx, vw, vd, vy, vdx, vdw, vdb
    cdef _Mat mx, mw, md, my, mdx, mdw, mdb
    cdef int status = VF_OK
    cdef const float *py = NULL
    cdef int64_t ldy = 0
    if not _take(x, &vx, &mx, 2, False):
        return None
    if not _take(W, &vw, &mw, 2, False):
        PyBuffer_Release(&vx)
        return None
    if not _take(dy, &vd, &md, 2, False):
        PyBuffer_Release(&vx)
        PyBuffer_Release(&vw)
        return None
    cdef bint have_y = False, have_dw = False, have_db = False
    cdef int64_t B = mx.rows, n_in = mx.cols, n_out = mw.cols
    dx = None
    try:
        if (mw.rows != n_in or md.rows != B or md.cols != n_out or B == 0 or n_out == 0
                or (relu and y is None)):
            return None
        if relu:
            have_y = _take(y, &vy, &my, 2, False)
            if not have_y or my.rows != B or my.cols != n_out:
                return None
            py, ldy = my.ptr, my.ld
        if dW is None:
            dW = _gempty((n_in, n_out), dtype=_gf32)
        if db is None:
            db = _gempty(n_out, dtype=_gf32)
        # the caller's outputs must be writable float32 of the right shapes
        # (else the Python path names what is wrong); fresh ones always are
        have_dw = _take(dW, &vdw, &mdw, 2, True)
        if not have_dw or mdw.rows != n_in or mdw.cols != n_out or mdw.ld != n_out:
            return None
        have_db = _take(db, &vdb, &mdb, 1, True)
        if not have_db or mdb.cols != n_out:
            return None
        if need_dx:
            dx = _gempty((B, n_in), dtype=_gf32)
            _take(dx, &vdx, &mdx, 2, True)
        with nogil:
            # db (every dz entry's column sum) checks dy and y, dW x, dx W
            status = vf_linear_backward_weight(B, n_out, n_in, mx.ptr, mx.ld, md.ptr,
                                                       md.ld, py, ldy, mdw.ptr, mdw.ld,
                                                       mdb.ptr, 0)
            if status == VF_OK and need_dx:
                status = vf_linear_backward_input(B, n_out, n_in, md.ptr, md.ld, py,
                                                          ldy, mw.ptr, mw.ld, NULL, 0,
                                                          mdx.ptr, mdx.ld)
        if need_dx:
            PyBuffer_Release(&vdx)
    finally:
        PyBuffer_Release(&vx)
        PyBuffer_Release(&vw)
        PyBuffer_Release(&vd)
        if have_y:
            PyBuffer_Release(&vy)
        if have_dw:
            PyBuffer_Release(&vdw)
        if have_db:
            PyBuffer_Release(&vdb)
    return (dx, dW, db) if status == VF_OK else None
