# Binding of the scVI count losses (csrc/count.c). Shapes, dtypes and counts
# are checked in vaefast/ops/_count.py; this layer only checks what memory
# safety needs.


COUNT_CODES = {"poisson": VF_COUNT_POISSON, "nb": VF_COUNT_NB, "zinb": VF_COUNT_ZINB}
COUNT_MAX = float(VF_COUNT_MAX)


cdef struct _count_args:
    int code
    const float *lt
    int64_t ldt
    const float *pi
    float *dr
    float *dt
    float *dp


cdef _count_args _count_prepare(str likelihood, int64_t M, int64_t N,
                                const float[::1] library, const float[:, ::1] log_theta,
                                const float[:, ::1] pi, float[:, ::1] drho,
                                float[:, ::1] dlog_theta, float[:, ::1] dpi) except *:
    """The pointers of a count-loss call, shapes checked (x's are the caller's)."""
    cdef _count_args a
    if library.shape[0] != M:
        raise ValueError(f"library must have {M} entries")
    a.code = COUNT_CODES[likelihood]
    a.lt = NULL
    a.pi = NULL
    a.ldt = 0
    if log_theta is not None:
        if log_theta.shape[1] != N or log_theta.shape[0] not in (1, M):
            raise ValueError(f"log_theta must have shape ({M}, {N}) or (1, {N})")
        a.ldt = 0 if (log_theta.shape[0] == 1 and M != 1) else N
        a.lt = &log_theta[0, 0]
    cdef int64_t rows_t = 1 if a.ldt == 0 else M
    a.dr = _opt_mat(drho, M, N, "drho")
    a.dt = _opt_mat(dlog_theta, rows_t, N, "dlog_theta")
    a.dp = _opt_mat(dpi, M, N, "dpi")
    if pi is not None:
        if pi.shape[0] != M or pi.shape[1] != N:
            raise ValueError(f"pi_logits must have shape ({M}, {N})")
        a.pi = &pi[0, 0]
    return a


def count_loss_into(str likelihood, const float[:, ::1] rho, const float[:, ::1] x,
                    const float[::1] library, const float[:, ::1] log_theta,
                    const float[:, ::1] pi, float[::1] loss, float[:, ::1] drho,
                    float[:, ::1] dlog_theta, float[:, ::1] dpi, float scale):
    """loss (M) and the gradients (or None) <- scVI count loss. log_theta and
    dlog_theta are (1, N) for a per-gene θ, else (M, N); pi/dpi for ZINB."""
    cdef int64_t M = rho.shape[0], N = rho.shape[1]
    _check_rows("count_loss", M, N, x, loss, drho)
    cdef _count_args a = _count_prepare(likelihood, M, N, library, log_theta, pi, drho,
                                        dlog_theta, dpi)
    cdef int status
    with nogil:
        status = vf_count_loss(a.code, M, N, &rho[0, 0], N, &x[0, 0], N, &library[0],
                               a.lt, a.ldt, a.pi, N, &loss[0], a.dr, N, a.dt, N, a.dp, N,
                               scale)
    check_status(status, "count_loss")


def count_loss_csr_into(str likelihood, const float[:, ::1] rho, const int64_t[::1] indptr,
                        const int32_t[::1] indices, const float[::1] values,
                        const float[::1] library, const float[:, ::1] log_theta,
                        const float[:, ::1] pi, float[::1] loss, float[:, ::1] drho,
                        float[:, ::1] dlog_theta, float[:, ::1] dpi, float scale):
    """count_loss_into with the counts as CSR rows (indptr M + 1 entries,
    any base; the core checks the structure): equal bit for bit."""
    cdef int64_t M = rho.shape[0], N = rho.shape[1]
    if indptr.shape[0] != M + 1 or loss.shape[0] != M:
        raise ValueError(f"count_loss: indptr must have {M + 1} entries, loss {M}")
    cdef int64_t end = indptr[M] if M > 0 else 0
    if M > 0 and (indptr[0] < 0 or end < indptr[0] or indices.shape[0] < end
                  or values.shape[0] < end):
        raise ValueError("count_loss: indptr does not fit indices and values")
    cdef _count_args a = _count_prepare(likelihood, M, N, library, log_theta, pi, drho,
                                        dlog_theta, dpi)
    cdef const int32_t *pidx = &indices[0] if indices.shape[0] > 0 else NULL
    cdef const float *pval = &values[0] if values.shape[0] > 0 else NULL
    cdef int status
    with nogil:
        status = vf_count_loss_csr(a.code, M, N, &rho[0, 0], N, &indptr[0], pidx, pval,
                                   &library[0], a.lt, a.ldt, a.pi, N, &loss[0], a.dr, N,
                                   a.dt, N, a.dp, N, scale)
    check_status(status, "count_loss")
