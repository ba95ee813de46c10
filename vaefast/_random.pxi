# Binding of the random part (csrc/rng.c, csrc/reparam.c). Arrays arrive
# validated and C-contiguous from vaefast/random.py and vaefast/ops/_reparam.py.


def philox4x32_10(const uint32_t[:, ::1] ctr, const uint32_t[:, ::1] key,
                  uint32_t[:, ::1] out):
    """out (n×4) = Philox4x32-10(ctr (n×4), key (n×2))."""
    cdef int64_t n = ctr.shape[0]
    if n == 0:
        return
    cdef int status
    with nogil:
        status = vf_philox4x32_10(n, &ctr[0, 0], &key[0, 0], &out[0, 0])
    check_status(status, "philox4x32")


def normal_fill(uint64_t seed, uint64_t offset, float[::1] out):
    """out[i] = normal variate (offset + i) of stream seed."""
    cdef int64_t n = out.shape[0]
    if n == 0:
        return
    cdef int status
    with nogil:
        status = vf_normal(seed, offset, n, &out[0])
    check_status(status, "normal")


def reparam_eps(uint64_t seed, uint64_t step, int64_t row0, float[:, ::1] eps):
    """eps (M×N) = reparameterization noise of rows row0 .. row0+M-1."""
    cdef int64_t M = eps.shape[0], N = eps.shape[1]
    if M == 0 or N == 0:
        return
    cdef int status
    with nogil:
        status = vf_reparam_eps(seed, step, row0, M, N, &eps[0, 0], N)
    check_status(status, "reparameterization_noise")


def dropout_mask(uint64_t seed, uint64_t step, int layer, int64_t row0, float p,
                 float[:, ::1] mask):
    """mask (M×N) = the keep mask (1 kept, 0 dropped) of rate p of rows
    row0 .. row0+M-1 of model layer `layer` at (seed, step)."""
    cdef int64_t M = mask.shape[0], N = mask.shape[1]
    if M == 0 or N == 0:
        return
    cdef int status
    with nogil:
        status = vf_dropout_mask(seed, step, layer, row0, M, N, p, &mask[0, 0], N)
    check_status(status, "dropout_mask")


cdef vf_noise _noise(uint64_t seed, uint64_t step, int64_t row0, eps_obj, int64_t N):
    """The noise of a reparameterization: Philox (seed, step, row0 + i, j), or
    eps_obj (M×N, C-contiguous float32, kept alive by the caller) if not None."""
    cdef const float[:, ::1] eps
    cdef vf_noise noise
    noise.seed, noise.step, noise.row0, noise.eps, noise.ldeps = seed, step, row0, NULL, N
    if eps_obj is not None:
        eps = eps_obj
        noise.eps = &eps[0, 0]
    return noise


def reparam_forward(const float[:, ::1] mu, const float[:, ::1] logvar,
                    uint64_t seed, uint64_t step, int64_t row0, eps_obj,
                    float[:, ::1] z, kl_obj):
    """z = mu + exp(logvar/2)·eps (eps_obj None: generated); kl_obj (M) or None."""
    cdef int64_t M = mu.shape[0], N = mu.shape[1]
    cdef float[::1] kl
    cdef float *pk = NULL
    if M == 0 or N == 0:
        return
    cdef vf_noise noise = _noise(seed, step, row0, eps_obj, N)
    if kl_obj is not None:
        kl = kl_obj
        pk = &kl[0]
    cdef int status
    with nogil:
        status = vf_reparam_forward(M, N, &mu[0, 0], N, &logvar[0, 0], N, &noise,
                                    &z[0, 0], N, pk)
    check_status(status, "reparameterize")


def reparam_backward(const float[:, ::1] mu, const float[:, ::1] logvar,
                     uint64_t seed, uint64_t step, int64_t row0, eps_obj, dz_obj,
                     float kl_scale, float[:, ::1] dmu, float[:, ::1] dlogvar):
    """dmu, dlogvar of reparameterization + kl_scale·KL (dz_obj may be None)."""
    cdef int64_t M = mu.shape[0], N = mu.shape[1]
    cdef const float[:, ::1] dz
    cdef const float *pd = NULL
    if M == 0 or N == 0:
        return
    cdef vf_noise noise = _noise(seed, step, row0, eps_obj, N)
    if dz_obj is not None:
        dz = dz_obj
        pd = &dz[0, 0]
    cdef int status
    with nogil:
        status = vf_reparam_backward(M, N, &mu[0, 0], N, &logvar[0, 0], N, &noise,
                                     pd, N, kl_scale, &dmu[0, 0], N, &dlogvar[0, 0], N)
    check_status(status, "reparameterize_backward")
