# Binding of the model part (csrc/vae.c): the VAECore extension type owns
# one vf_vae. Shapes and dtypes are checked by vaefast/model.py; this layer
# only checks what it needs to stay memory-safe.

cdef extern from "vaefast.h" nogil:
    ctypedef struct vf_vae:
        pass
    int VF_LIKELIHOOD_BERNOULLI, VF_LIKELIHOOD_GAUSSIAN
    int VF_OPTIMIZER_ADAM, VF_OPTIMIZER_SGD
    float VF_LOGVAR_MIN, VF_LOGVAR_MAX
    int vf_vae_create(int64_t n_features, int n_enc, const int64_t *enc_hidden,
                      int n_dec, const int64_t *dec_hidden, int64_t latent,
                      int likelihood, float beta, vf_vae **out)
    void vf_vae_destroy(vf_vae *m)
    int64_t vf_vae_num_params(const vf_vae *m)
    float *vf_vae_params(vf_vae *m)
    float *vf_vae_grads(vf_vae *m)
    float *vf_vae_moment1(vf_vae *m)
    float *vf_vae_moment2(vf_vae *m)
    int vf_vae_set_beta(vf_vae *m, float beta)
    int vf_vae_reserve(vf_vae *m, int64_t B)
    int64_t vf_vae_infer_work_size(const vf_vae *m, int64_t B)
    int vf_vae_encode(const vf_vae *m, int64_t B, const float *X, int64_t ldx,
                      float *mu, int64_t ldmu, float *logvar, int64_t ldlv,
                      float *work)
    int vf_vae_decode(const vf_vae *m, int64_t B, const float *z, int64_t ldz,
                      int mean, float *out, int64_t ldo, float *work)
    int vf_vae_loss_and_grad(vf_vae *m, int64_t B, const float *X,
                             const float *eps, uint64_t seed, uint64_t step,
                             float kl_weight, float *recon, float *kl,
                             double *loss)
    int vf_vae_train_step(vf_vae *m, int64_t B, const float *X, uint64_t seed,
                          uint64_t step, float lr, float beta1, float beta2,
                          float adam_eps, float weight_decay, int optimizer,
                          float kl_weight, double *out3)
    int vf_vae_train_steps(vf_vae *m, int64_t n, const float *X, int64_t ldx,
                           const int64_t *order, int64_t batch, int64_t first_batch,
                           int64_t n_steps, uint64_t seed, uint64_t step0, float lr,
                           float beta1, float beta2, float adam_eps, float weight_decay,
                           int optimizer, float kl_weight, double *sums3, int64_t *done)
    int vf_vae_shard_grads(vf_vae *m, int64_t B, const float *X, uint64_t seed,
                           uint64_t step, int64_t row0, int64_t batch_total,
                           float kl_weight, double *sums3)
    int vf_vae_apply_update(vf_vae *m, uint64_t step, float lr, float beta1, float beta2,
                            float adam_eps, float weight_decay, int optimizer)

import numpy as _np

LOGVAR_RANGE = (float(VF_LOGVAR_MIN), float(VF_LOGVAR_MAX))

_LIKELIHOOD_CODES = {"bernoulli": VF_LIKELIHOOD_BERNOULLI, "gaussian": VF_LIKELIHOOD_GAUSSIAN}
_OPTIMIZER_CODES = {"adam": VF_OPTIMIZER_ADAM, "sgd": VF_OPTIMIZER_SGD}


cdef class VAECore:
    """One C model (vf_vae). Not safe for concurrent training calls: the
    Python VAE class serialises them. encode/decode use a per-call
    workspace and may run concurrently."""

    cdef vf_vae *m
    cdef readonly int64_t n_features, latent_dim, num_params

    def __cinit__(self, int64_t n_features, enc_hidden, dec_hidden, int64_t latent_dim,
                  str likelihood, float beta):
        cdef int64_t[::1] enc = _np.ascontiguousarray(enc_hidden, dtype=_np.int64).reshape(-1)
        cdef int64_t[::1] dec = _np.ascontiguousarray(dec_hidden, dtype=_np.int64).reshape(-1)
        cdef int64_t dummy = 1
        cdef const int64_t *pe = &enc[0] if enc.shape[0] > 0 else &dummy
        cdef const int64_t *pd = &dec[0] if dec.shape[0] > 0 else &dummy
        cdef int code = _LIKELIHOOD_CODES[likelihood]
        cdef int status
        self.m = NULL
        status = vf_vae_create(n_features, <int>enc.shape[0], pe, <int>dec.shape[0], pd,
                               latent_dim, code, beta, &self.m)
        check_status(status, "vf_vae_create")
        self.n_features = n_features
        self.latent_dim = latent_dim
        self.num_params = vf_vae_num_params(self.m)

    def __dealloc__(self):
        vf_vae_destroy(self.m)
        self.m = NULL

    cdef float *_buffer(self, int which) except NULL:
        if which == 0:
            return vf_vae_params(self.m)
        if which == 1:
            return vf_vae_grads(self.m)
        if which == 2:
            return vf_vae_moment1(self.m)
        if which == 3:
            return vf_vae_moment2(self.m)
        raise ValueError(f"which must be 0..3, got {which}")

    def get_buffer(self, int which):
        """Copy of buffer `which` (0 params, 1 grads, 2 moment1, 3 moment2)."""
        cdef float *src = self._buffer(which)
        out = _np.empty(self.num_params, dtype=_np.float32)
        cdef float[::1] o = out
        cdef int64_t i
        with nogil:
            for i in range(self.num_params):
                o[i] = src[i]
        return out

    def set_buffer(self, int which, const float[::1] values):
        """Overwrite buffer `which` with `values` (num_params floats)."""
        if values.shape[0] != self.num_params:
            raise ValueError(f"values must hold {self.num_params} floats, got {values.shape[0]}")
        cdef float *dst = self._buffer(which)
        cdef int64_t i
        with nogil:
            for i in range(self.num_params):
                dst[i] = values[i]

    def set_beta(self, float beta):
        check_status(vf_vae_set_beta(self.m, beta), "beta")

    def reserve(self, int64_t batch):
        check_status(vf_vae_reserve(self.m, batch), "reserve")

    def work_size(self, int64_t batch):
        """Floats of workspace encode/decode need for `batch` rows."""
        return max(vf_vae_infer_work_size(self.m, batch), 1)

    def _work(self, work, int64_t B):
        cdef int64_t need = self.work_size(B)
        if work is None:
            return _np.empty(need, dtype=_np.float32)
        if work.dtype != _np.float32 or work.ndim != 1 or work.shape[0] < need:
            raise ValueError(f"work must be a float32 vector of at least {need} floats")
        return work

    def encode(self, const float[:, ::1] X, work=None):
        """X (B, D) -> (mu (B, Z), clamped logvar (B, Z)). work: optional
        float32 scratch of work_size(B) floats (one per concurrent caller)."""
        cdef int64_t B = X.shape[0], Z = self.latent_dim
        if X.shape[1] != self.n_features:
            raise ValueError(f"X must have {self.n_features} columns, got {X.shape[1]}")
        mu = _np.empty((B, Z), dtype=_np.float32)
        lv = _np.empty((B, Z), dtype=_np.float32)
        work = self._work(work, B)
        cdef float[:, ::1] mv = mu
        cdef float[:, ::1] lvv = lv
        cdef float[::1] wv = work
        cdef int status = VF_OK
        if B > 0:
            with nogil:
                status = vf_vae_encode(self.m, B, &X[0, 0], self.n_features, &mv[0, 0], Z,
                                       &lvv[0, 0], Z, &wv[0])
        check_status(status, "encode")
        return mu, lv

    def decode(self, const float[:, ::1] z, bint mean, work=None):
        """z (B, Z) -> (B, D): output-layer values, or the mean of p(x|z)."""
        cdef int64_t B = z.shape[0], D = self.n_features
        if z.shape[1] != self.latent_dim:
            raise ValueError(f"Z must have {self.latent_dim} columns, got {z.shape[1]}")
        out = _np.empty((B, D), dtype=_np.float32)
        work = self._work(work, B)
        cdef float[:, ::1] ov = out
        cdef float[::1] wv = work
        cdef int status = VF_OK
        if B > 0:
            with nogil:
                status = vf_vae_decode(self.m, B, &z[0, 0], self.latent_dim, 1 if mean else 0,
                                       &ov[0, 0], D, &wv[0])
        check_status(status, "decode")
        return out

    def loss_and_grad(self, const float[:, ::1] X, eps, uint64_t seed, uint64_t step,
                      float kl_weight=1.0):
        """Per-sample (recon, kl) and the batch-mean loss; grads land in buffer 1.

        Raises NonFiniteError if the loss or a gradient is not finite."""
        cdef int64_t B = X.shape[0]
        if X.shape[1] != self.n_features:
            raise ValueError(f"X must have {self.n_features} columns, got {X.shape[1]}")
        if B < 1:
            raise ValueError("X must have at least one row")
        cdef const float[:, ::1] ev
        cdef const float *pe = NULL
        if eps is not None:
            ev = eps
            if ev.shape[0] != B or ev.shape[1] != self.latent_dim:
                raise ValueError(f"eps must have shape ({B}, {self.latent_dim}), "
                                 f"got ({ev.shape[0]}, {ev.shape[1]})")
            pe = &ev[0, 0]
        recon = _np.empty(B, dtype=_np.float32)
        kl = _np.empty(B, dtype=_np.float32)
        cdef float[::1] rv = recon
        cdef float[::1] kv = kl
        cdef double loss = 0
        cdef int status
        with nogil:
            status = vf_vae_loss_and_grad(self.m, B, &X[0, 0], pe, seed, step, kl_weight,
                                          &rv[0], &kv[0], &loss)
        check_status(status, "loss_and_grad")
        return loss, recon, kl

    def train_step(self, const float[:, ::1] X, uint64_t seed, uint64_t step, float lr,
                   float beta1, float beta2, float adam_eps, float weight_decay,
                   str optimizer, float kl_weight):
        """One fused step; returns (mean loss, mean recon, mean KL)."""
        cdef int64_t B = X.shape[0]
        if X.shape[1] != self.n_features:
            raise ValueError(f"X must have {self.n_features} columns, got {X.shape[1]}")
        if B < 1:
            raise ValueError("X must have at least one row")
        cdef int opt = _OPTIMIZER_CODES[optimizer]
        cdef double out3[3]
        cdef int status
        with nogil:
            status = vf_vae_train_step(self.m, B, &X[0, 0], seed, step, lr, beta1, beta2,
                                       adam_eps, weight_decay, opt, kl_weight, out3)
        check_status(status, f"training step {step}")
        return out3[0], out3[1], out3[2]

    def train_steps(self, const float[:, ::1] X, order, int64_t batch, int64_t first_batch,
                    int64_t n_steps, uint64_t seed, uint64_t step0, float lr, float beta1,
                    float beta2, float adam_eps, float weight_decay, str optimizer,
                    float kl_weight, double[::1] sums):
        """Up to n_steps fused steps in one C call (vf_vae_train_steps).

        order: int64 row permutation of X, or None. sums (3) is incremented
        by rows·{loss, recon, KL}. Returns (steps done, status); a failing
        status is not raised here so that the caller learns how far it got
        (turn it into an exception with status_error)."""
        cdef int64_t n = X.shape[0]
        if X.shape[1] != self.n_features:
            raise ValueError(f"X must have {self.n_features} columns, got {X.shape[1]}")
        if n < 1:
            raise ValueError("X must have at least one row")
        if sums.shape[0] != 3:
            raise ValueError("sums must have 3 entries")
        cdef const int64_t[::1] idx
        cdef const int64_t *pidx = NULL
        if order is not None:
            idx = order
            if idx.shape[0] != n:
                raise ValueError(f"order must have {n} entries, got {idx.shape[0]}")
            pidx = &idx[0]
        cdef int opt = _OPTIMIZER_CODES[optimizer]
        cdef int64_t done = 0
        cdef int status
        with nogil:
            status = vf_vae_train_steps(self.m, n, &X[0, 0], X.shape[1], pidx, batch,
                                        first_batch, n_steps, seed, step0, lr, beta1, beta2,
                                        adam_eps, weight_decay, opt, kl_weight, &sums[0], &done)
        return done, status

    # ---- the split step (vaefast/distributed.py)
    def grads_array(self):
        """The C gradient buffer itself as a float32 ndarray (no copy): it
        stays valid as long as the array (which keeps this core alive)."""
        return _np.asarray(_FloatView(self, <size_t>vf_vae_grads(self.m), self.num_params))

    def shard_grads(self, const float[:, ::1] X, uint64_t seed, uint64_t step,
                    int64_t row0, int64_t batch_total, float kl_weight, double[::1] sums):
        """vf_vae_shard_grads on X (B may be 0); sums (3) receives this shard's
        {loss, recon, KL} sums. Returns the status (not raised)."""
        cdef int64_t B = X.shape[0]
        if X.shape[1] != self.n_features:
            raise ValueError(f"X must have {self.n_features} columns, got {X.shape[1]}")
        if sums.shape[0] != 3:
            raise ValueError("sums must have 3 entries")
        cdef const float *px = &X[0, 0] if B > 0 else NULL
        cdef int status
        with nogil:
            status = vf_vae_shard_grads(self.m, B, px, seed, step, row0, batch_total,
                                        kl_weight, &sums[0])
        return status

    def apply_update(self, uint64_t step, float lr, float beta1, float beta2, float adam_eps,
                     float weight_decay, str optimizer):
        """vf_vae_apply_update with the gradient in buffer 1; returns the status."""
        cdef int opt = _OPTIMIZER_CODES[optimizer]
        cdef int status
        with nogil:
            status = vf_vae_apply_update(self.m, step, lr, beta1, beta2, adam_eps,
                                         weight_decay, opt)
        return status


cdef class _FloatView:
    """A writable float32 buffer over memory owned by a VAECore, which it
    keeps alive (so the pointer cannot dangle)."""

    cdef object owner
    cdef float *ptr
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]

    def __cinit__(self, owner, size_t address, Py_ssize_t n):
        self.owner = owner
        self.ptr = <float *>address
        self.shape[0] = n
        self.strides[0] = sizeof(float)

    def __getbuffer__(self, Py_buffer *buf, int flags):
        buf.buf = self.ptr
        buf.obj = self
        buf.len = self.shape[0] * sizeof(float)
        buf.readonly = 0
        buf.itemsize = sizeof(float)
        buf.format = b"f"
        buf.ndim = 1
        buf.shape = self.shape
        buf.strides = self.strides
        buf.suboffsets = NULL
        buf.internal = NULL

    def __releasebuffer__(self, Py_buffer *buf):
        pass


def status_error(int status, str what):
    """Raise the exception for a C status code (nothing for VF_OK)."""
    check_status(status, what)


NONFINITE_STATUS = VF_ERR_NONFINITE
