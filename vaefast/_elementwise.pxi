# Binding of the elementwise part (losses + optimizers): declarations and
# thin wrappers. Shapes and dtypes are checked in vaefast/_ops_elementwise.py.

cdef extern from "vaefast.h" nogil:
    int vf_bernoulli_loss(int64_t M, int64_t N, const float *logits, int64_t ldl,
                          const float *x, int64_t ldx, float *loss, float *dlogits,
                          int64_t ldd, float scale)
    int vf_gaussian_loss(int64_t M, int64_t N, const float *y, int64_t ldy,
                         const float *x, int64_t ldx, float *loss, float *dy,
                         int64_t ldd, float scale)
    int vf_kl_normal(int64_t M, int64_t N, const float *mu, int64_t ldmu,
                     const float *logvar, int64_t ldlv, float *kl)
    int vf_adam_update(int64_t n, float *param, const float *grad, float *m, float *v,
                       float lr, float beta1, float beta2, float eps,
                       float weight_decay, int64_t t)
    int vf_sgd_update(int64_t n, float *param, const float *grad, float *velocity,
                      float lr, float momentum, float weight_decay)


def bernoulli_loss_into(const float[:, ::1] logits, const float[:, ::1] x,
                        float[::1] loss, float[:, ::1] dlogits, float scale):
    """loss (M) and dlogits (M×N, or None) <- Bernoulli loss of logits, x (M×N)."""
    cdef int64_t M = logits.shape[0], N = logits.shape[1]
    cdef float *dptr = NULL
    cdef int status
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
    if dy is not None:
        dptr = &dy[0, 0]
    with nogil:
        status = vf_gaussian_loss(M, N, &y[0, 0], N, &x[0, 0], N, &loss[0], dptr, N, scale)
    check_status(status, "gaussian_loss")


def kl_normal_into(const float[:, ::1] mu, const float[:, ::1] logvar, float[::1] kl):
    """kl (M) <- per-row KL(N(mu, exp(logvar)) ‖ N(0, I)), mu, logvar (M×N)."""
    cdef int64_t M = mu.shape[0], N = mu.shape[1]
    cdef int status
    with nogil:
        status = vf_kl_normal(M, N, &mu[0, 0], N, &logvar[0, 0], N, &kl[0])
    check_status(status, "kl_normal")


def adam_update_flat(float[::1] param, const float[::1] grad, float[::1] m, float[::1] v,
                     float lr, float beta1, float beta2, float eps, float weight_decay,
                     int64_t step):
    """In-place Adam(W) step on flat float32 buffers of equal length (n >= 1)."""
    cdef int status
    with nogil:
        status = vf_adam_update(param.shape[0], &param[0], &grad[0], &m[0], &v[0],
                                lr, beta1, beta2, eps, weight_decay, step)
    check_status(status, "adam_update")


def sgd_update_flat(float[::1] param, const float[::1] grad, float[::1] velocity,
                    float lr, float momentum, float weight_decay):
    """In-place SGD-momentum step on flat float32 buffers of equal length (n >= 1)."""
    cdef int status
    with nogil:
        status = vf_sgd_update(param.shape[0], &param[0], &grad[0], &velocity[0],
                               lr, momentum, weight_decay)
    check_status(status, "sgd_update")
