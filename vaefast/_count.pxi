# Binding of the scVI count losses (csrc/count.c). Shapes, dtypes and counts
# are checked in vaefast/ops/_count.py; this layer only checks what memory
# safety needs.

cdef extern from "vaefast.h" nogil:
    int VF_COUNT_POISSON, VF_COUNT_NB, VF_COUNT_ZINB
    float VF_COUNT_MAX
    int vf_count_loss(int likelihood, int64_t M, int64_t N, const float *rho, int64_t ldr,
                      const float *x, int64_t ldx, const float *library,
                      const float *log_theta, int64_t ldt, const float *pi, int64_t ldp,
                      float *loss, float *drho, int64_t lddr, float *dlog_theta, int64_t lddt,
                      float *dpi, int64_t lddp, float scale)

COUNT_CODES = {"poisson": VF_COUNT_POISSON, "nb": VF_COUNT_NB, "zinb": VF_COUNT_ZINB}
COUNT_MAX = float(VF_COUNT_MAX)


def count_loss_into(str likelihood, const float[:, ::1] rho, const float[:, ::1] x,
                    const float[::1] library, const float[:, ::1] log_theta,
                    const float[:, ::1] pi, float[::1] loss, float[:, ::1] drho,
                    float[:, ::1] dlog_theta, float[:, ::1] dpi, float scale):
    """loss (M) and the gradients (or None) <- scVI count loss. log_theta and
    dlog_theta are (1, N) for a per-gene θ, else (M, N); pi/dpi for ZINB."""
    cdef int64_t M = rho.shape[0], N = rho.shape[1]
    _check_rows("count_loss", M, N, x, loss, drho)
    if library.shape[0] != M:
        raise ValueError(f"library must have {M} entries")
    cdef int code = COUNT_CODES[likelihood]
    cdef const float *plt = NULL
    cdef const float *ppi = NULL
    cdef int64_t ldt = 0
    if log_theta is not None:
        if log_theta.shape[1] != N or log_theta.shape[0] not in (1, M):
            raise ValueError(f"log_theta must have shape ({M}, {N}) or (1, {N})")
        ldt = 0 if (log_theta.shape[0] == 1 and M != 1) else N
        plt = &log_theta[0, 0]
    cdef int64_t rows_t = 1 if ldt == 0 else M
    cdef float *pdr = _opt_mat(drho, M, N, "drho")
    cdef float *pdt = _opt_mat(dlog_theta, rows_t, N, "dlog_theta")
    cdef float *pdp = _opt_mat(dpi, M, N, "dpi")
    if pi is not None:
        if pi.shape[0] != M or pi.shape[1] != N:
            raise ValueError(f"pi_logits must have shape ({M}, {N})")
        ppi = &pi[0, 0]
    cdef int status
    with nogil:
        status = vf_count_loss(code, M, N, &rho[0, 0], N, &x[0, 0], N, &library[0],
                               plt, ldt, ppi, N, &loss[0], pdr, N, pdt, N, pdp, N, scale)
    check_status(status, "count_loss")
