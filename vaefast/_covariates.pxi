# Binding of the categorical covariates' gather-add and scatter-add
# (csrc/covariates.c). Codes, levels and shapes are checked in
# vaefast/ops/_covariates.py; this layer checks what memory safety needs.


cdef int64_t _cov_rows(const int64_t[::1] levels):
    """Σ levels: the stacked table's row count."""
    cdef int64_t total = 0
    cdef Py_ssize_t k
    for k in range(levels.shape[0]):
        total += levels[k]
    return total


cdef int _cov_shapes(str what, int64_t M, int64_t N, const int32_t[:, ::1] codes,
                     const int64_t[::1] levels, int64_t R, int64_t table_rows,
                     int64_t table_cols) except -1:
    """The codes are (M, K) for K levels and the table (R, N)."""
    if codes.shape[0] != M or codes.shape[1] != levels.shape[0]:
        raise ValueError(f"{what}: codes must have shape ({M}, {levels.shape[0]})")
    if table_rows != R or table_cols != N:
        raise ValueError(f"{what}: the table must have shape ({R}, {N})")
    return 0


def cov_gather_add_into(const int32_t[:, ::1] codes, const int64_t[::1] levels,
                        const float[:, ::1] table, int relu, float[:, ::1] y):
    """y (M×N) <- act(y + Σ_k table[off_k + codes[:, k]]) in place."""
    cdef int64_t M = y.shape[0], N = y.shape[1], K = levels.shape[0]
    cdef int64_t R = _cov_rows(levels)
    _cov_shapes("cov_gather_add", M, N, codes, levels, R, table.shape[0], table.shape[1])
    if M == 0 or N == 0:
        return
    cdef const int32_t *pc = &codes[0, 0] if K > 0 else NULL
    cdef const int64_t *pl = &levels[0] if K > 0 else NULL
    cdef const float *pt = &table[0, 0] if K > 0 else NULL
    cdef int act = VF_ACT_RELU if relu else VF_ACT_NONE
    cdef int status
    with nogil:
        status = vf_cov_gather_add(M, N, K, pc, K, pl, pt, N, act, &y[0, 0], N)
    check_status(status, "cov_gather_add")


def cov_scatter_add_into(const int32_t[:, ::1] codes, const int64_t[::1] levels,
                         const float[:, ::1] dy, const float[:, ::1] y, float[:, ::1] dtable,
                         int accumulate):
    """dtable (R×N) <- (accumulate ? dtable : 0) + onehot(codes)ᵀ·dz, dz = dy, or
    dy where the ReLU output y (M×N, or None) is > 0."""
    cdef int64_t M = dy.shape[0], N = dy.shape[1], K = levels.shape[0]
    cdef int64_t R = _cov_rows(levels)
    _cov_shapes("cov_scatter_add", M, N, codes, levels, R, dtable.shape[0], dtable.shape[1])
    if K == 0 or N == 0:
        return
    if M == 0:
        if not accumulate:
            dtable[:, :] = 0
        return
    cdef const float *py = NULL
    if y is not None:
        if y.shape[0] != M or y.shape[1] != N:
            raise ValueError(f"cov_scatter_add: y must have shape ({M}, {N})")
        py = &y[0, 0]
    cdef int status
    with nogil:
        status = vf_cov_scatter_add(M, N, K, &codes[0, 0], K, &levels[0], &dy[0, 0], N,
                                    py, N, &dtable[0, 0], N, accumulate)
    check_status(status, "cov_scatter_add")
