# Binding of the likelihood part (csrc/likelihood.c): the count and
# learned-variance losses. Shapes and dtypes are checked in
# vaefast/ops/_losses.py; this layer only checks what memory safety needs.


LIKELIHOOD_LIMITS = {"poisson_lograte_max": float(VF_POISSON_LOGRATE_MAX),
                     "log_theta_min": float(VF_LOG_THETA_MIN),
                     "log_theta_max": float(VF_LOG_THETA_MAX),
                     "gaussian_logvar_min": float(VF_GAUSS_LOGVAR_MIN),
                     "count_max": float(VF_COUNT_MAX)}


cdef const float *_opt_vec(const float[::1] v, int64_t n, str name) except? NULL:
    if v is None:
        return NULL
    if v.shape[0] != n:
        raise ValueError(f"{name} must have {n} entries, got {v.shape[0]}")
    return &v[0]


cdef float *_opt_mat(float[:, ::1] a, int64_t M, int64_t N, str name) except? NULL:
    if a is None:
        return NULL
    if a.shape[0] != M or a.shape[1] != N:
        raise ValueError(f"{name} must have shape ({M}, {N})")
    return &a[0, 0]


def poisson_loss_into(const float[:, ::1] out, const float[:, ::1] x,
                      const float[::1] size_factors, float[::1] loss, float[:, ::1] dout,
                      float scale):
    """loss (M) and dout (M×N, or None) <- Poisson loss of log-rates out, counts x."""
    cdef int64_t M = out.shape[0], N = out.shape[1]
    _check_rows("poisson_loss", M, N, x, loss, dout)
    cdef const float *ps = _opt_vec(size_factors, M, "size_factors")
    cdef float *pd = _opt_mat(dout, M, N, "dout")
    cdef int status
    with nogil:
        status = vf_poisson_loss(M, N, &out[0, 0], N, &x[0, 0], N, ps, &loss[0], pd, N, scale)
    check_status(status, "poisson_loss")


def negbin_loss_into(const float[:, ::1] out, const float[:, ::1] x,
                     const float[::1] size_factors, const float[::1] log_theta,
                     float[::1] loss, float[:, ::1] dout, float[:, ::1] dlog_theta,
                     float scale):
    """loss (M), dout and dlog_theta (M×N each, or None) <- negative-binomial loss."""
    cdef int64_t M = out.shape[0], N = out.shape[1]
    _check_rows("negative_binomial_loss", M, N, x, loss, dout)
    cdef const float *ps = _opt_vec(size_factors, M, "size_factors")
    cdef const float *pt = _opt_vec(log_theta, N, "log_theta")
    cdef float *pd = _opt_mat(dout, M, N, "dout")
    cdef float *pdt = _opt_mat(dlog_theta, M, N, "dlog_theta")
    cdef int status
    with nogil:
        status = vf_negbin_loss(M, N, &out[0, 0], N, &x[0, 0], N, ps, pt, &loss[0], pd, N,
                                pdt, N, scale)
    check_status(status, "negative_binomial_loss")


def gaussian_var_loss_into(const float[:, ::1] y, const float[:, ::1] x,
                           const float[:, ::1] logvar, float[::1] loss, float[:, ::1] dy,
                           float[:, ::1] dlogvar, float scale):
    """loss (M), dy and dlogvar (M×N each, or None) <- Gaussian loss with
    log-variance logvar (M×N, or 1×N shared by every row)."""
    cdef int64_t M = y.shape[0], N = y.shape[1]
    _check_rows("gaussian_var_loss", M, N, x, loss, dy)
    if logvar.shape[1] != N or logvar.shape[0] not in (1, M):
        raise ValueError(f"logvar must have shape ({M}, {N}) or (1, {N})")
    cdef int64_t ldlv = 0 if (logvar.shape[0] == 1 and M != 1) else N
    cdef float *pd = _opt_mat(dy, M, N, "dy")
    cdef float *pdl = _opt_mat(dlogvar, M, N, "dlogvar")
    cdef int status
    with nogil:
        status = vf_gaussian_var_loss(M, N, &y[0, 0], N, &x[0, 0], N, &logvar[0, 0], ldlv,
                                      &loss[0], pd, N, pdl, N, scale)
    check_status(status, "gaussian_var_loss")
