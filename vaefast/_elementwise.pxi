# Binding of the elementwise part (losses + optimizers): declarations and
# thin wrappers. Shapes and dtypes are checked in vaefast/ops/_elementwise.py.


cdef _check_rows(str what, int64_t M, int64_t N, const float[:, ::1] other,
                 float[::1] loss, float[:, ::1] grad):
    """Shapes agree and are non-empty (the C call gets &a[0, 0])."""
    if M < 1 or N < 1:
        raise ValueError(f"{what}: inputs must not be empty")
    if other.shape[0] != M or other.shape[1] != N:
        raise ValueError(f"{what}: input shapes differ")
    if loss is not None and loss.shape[0] != M:
        raise ValueError(f"{what}: output has {loss.shape[0]} rows, expected {M}")
    if grad is not None and (grad.shape[0] != M or grad.shape[1] != N):
        raise ValueError(f"{what}: gradient output has the wrong shape")


cdef _check_flat(str what, Py_ssize_t n, Py_ssize_t a, Py_ssize_t b, Py_ssize_t c):
    if n < 1:
        raise ValueError(f"{what}: param must not be empty")
    if a != n or b != n or c != n:
        raise ValueError(f"{what}: buffers must all have length {n}")


def bernoulli_loss_into(const float[:, ::1] logits, const float[:, ::1] x,
                        float[::1] loss, float[:, ::1] dlogits, float scale):
    """loss (M) and dlogits (M×N, or None) <- Bernoulli loss of logits, x (M×N)."""
    cdef int64_t M = logits.shape[0], N = logits.shape[1]
    cdef float *dptr = NULL
    cdef int status
    _check_rows("bernoulli_loss", M, N, x, loss, dlogits)
    if dlogits is not None:
        dptr = &dlogits[0, 0]
    with nogil:
        status = vf_bernoulli_loss(M, N, &logits[0, 0], N, &x[0, 0], N,
                                   &loss[0], dptr, N, scale)
    check_status(status, "bernoulli_loss")


def gaussian_loss_into(const float[:, ::1] y, const float[:, ::1] x,
                       float[::1] loss, float[:, ::1] dy, float scale):
    """loss (M) and dy (M×N, or None) <- unit-variance Gaussian loss of y, x (M×N)."""
    cdef int64_t M = y.shape[0], N = y.shape[1]
    cdef float *dptr = NULL
    cdef int status
    _check_rows("gaussian_loss", M, N, x, loss, dy)
    if dy is not None:
        dptr = &dy[0, 0]
    with nogil:
        status = vf_gaussian_loss(M, N, &y[0, 0], N, &x[0, 0], N, &loss[0], dptr, N, scale)
    check_status(status, "gaussian_loss")


def kl_normal_into(const float[:, ::1] mu, const float[:, ::1] logvar, float[::1] kl):
    """kl (M) <- per-row KL(N(mu, exp(logvar)) ‖ N(0, I)), mu, logvar (M×N)."""
    cdef int64_t M = mu.shape[0], N = mu.shape[1]
    cdef int status
    _check_rows("kl_normal", M, N, logvar, kl, None)
    with nogil:
        status = vf_kl_normal(M, N, &mu[0, 0], N, &logvar[0, 0], N, &kl[0])
    check_status(status, "kl_normal")


def adam_update_flat(float[::1] param, const float[::1] grad, float[::1] m, float[::1] v,
                     float lr, float beta1, float beta2, float eps, float weight_decay,
                     int64_t step):
    """In-place Adam(W) step on flat float32 buffers of equal length (n >= 1)."""
    cdef int status
    _check_flat("adam_update", param.shape[0], grad.shape[0], m.shape[0], v.shape[0])
    with nogil:
        status = vf_adam_update(param.shape[0], &param[0], &grad[0], &m[0], &v[0],
                                lr, beta1, beta2, eps, weight_decay, step)
    check_status(status, "adam_update")


def set_adam_subnormal_route(route):
    """Force Adam's route around subnormal moments on (True) or off (False),
    or give the choice back to the CPU (None); returns the route in effect.
    Both give the same bits; the tests run each."""
    if route is not None and not isinstance(route, bool):
        raise TypeError(f"route must be True, False or None, got {route!r}")
    return bool(vf_adam_set_subnormal_route(-1 if route is None else int(route)))


def sgd_update_flat(float[::1] param, const float[::1] grad, float[::1] velocity,
                    float lr, float momentum, float weight_decay):
    """In-place SGD-momentum step on flat float32 buffers of equal length (n >= 1)."""
    cdef int status
    _check_flat("sgd_update", param.shape[0], grad.shape[0], velocity.shape[0],
                velocity.shape[0])
    with nogil:
        status = vf_sgd_update(param.shape[0], &param[0], &grad[0], &velocity[0],
                               lr, momentum, weight_decay)
    check_status(status, "sgd_update")
