# Binding of the model part (csrc/vae*.c): the VAECore extension type owns
# one vf_vae. Shapes and dtypes are checked by vaefast/model.py; this layer
# only checks what it needs to stay memory-safe.


import threading as _threading

import numpy as _np

LOGVAR_RANGE = (float(VF_LOGVAR_MIN), float(VF_LOGVAR_MAX))

# The likelihood enum by its C name: the registry (vaefast/_spec/likelihoods.py)
# holds each code as a plain int, and tests/test_structure.py compares them.
LIKELIHOOD_ENUM = {"VF_LIKELIHOOD_BERNOULLI": VF_LIKELIHOOD_BERNOULLI,
                   "VF_LIKELIHOOD_GAUSSIAN": VF_LIKELIHOOD_GAUSSIAN,
                   "VF_LIKELIHOOD_POISSON": VF_LIKELIHOOD_POISSON,
                   "VF_LIKELIHOOD_NEGBIN": VF_LIKELIHOOD_NEGBIN,
                   "VF_LIKELIHOOD_ZINB": VF_LIKELIHOOD_ZINB,
                   "VF_LIKELIHOOD_SCVI_NB": VF_LIKELIHOOD_SCVI_NB,
                   "VF_LIKELIHOOD_SCVI_POISSON": VF_LIKELIHOOD_SCVI_POISSON}
_VARIANCE_CODES = {"unit": VF_VARIANCE_UNIT, "feature": VF_VARIANCE_FEATURE,
                   "sample": VF_VARIANCE_SAMPLE}


# The model's four flat buffers (get_buffer / set_buffer), by name.
PARAMS, GRADS, MOMENT1, MOMENT2 = 0, 1, 2, 3
_OPTIMIZER_CODES = {"adam": VF_OPTIMIZER_ADAM, "sgd": VF_OPTIMIZER_SGD}


class _ReadSession:
    """Context of VAECore.reading(): the model's read lock, taken once per
    thread however deeply sessions nest (the lock is not recursive)."""

    __slots__ = ("core",)

    def __init__(self, core):
        self.core = core

    def __enter__(self):
        self.core._begin_read()

    def __exit__(self, *exc):
        self.core._end_read()
        return False


cdef class VAECore:
    """One C model (vf_vae) and its readers-writer lock.

    Readers (encode, decode, get_buffer, and whole Python-level operations
    through reading()) run concurrently; writers (each step of train_steps,
    train_step, loss_and_grad, set_buffer) exclude them, so a reader sees the
    weights of a completed step. The VAE class also serialises training
    calls. encode/decode use a caller-given workspace per thread."""

    cdef vf_vae *m
    cdef readonly int64_t n_features, latent_dim, num_params, n_conditions, out_width, n_cat
    cdef readonly int n_layers
    cdef object _reads  # threading.local: this thread's reading() depth
    cdef bint _write_held  # hold_write(True) took the write lock
    # Optimizer steps taken (VAE.step_). train_steps advances it in the same
    # call as the steps themselves, so a KeyboardInterrupt raised as that
    # call returns cannot leave it behind the weights.
    cdef public uint64_t step

    def __cinit__(self, int64_t n_features, enc_hidden, dec_hidden, int64_t latent_dim,
                  int likelihood, float beta, int64_t n_conditions=0, str variance="unit",
                  categorical=(), bint deep=True, bint encode=False, dispersion="gene",
                  dispersion_covariate=None, dispersion_levels=None):
        cdef int64_t[::1] enc = _np.ascontiguousarray(enc_hidden, dtype=_np.int64).reshape(-1)
        cdef int64_t[::1] dec = _np.ascontiguousarray(dec_hidden, dtype=_np.int64).reshape(-1)
        cdef int64_t dummy = 1
        cdef const int64_t *pe = &enc[0] if enc.shape[0] > 0 else &dummy
        cdef const int64_t *pd = &dec[0] if dec.shape[0] > 0 else &dummy
        cdef vf_vae_config cfg
        cdef vf_vae_covariates cov
        cdef int64_t[::1] lev = _np.ascontiguousarray(categorical, dtype=_np.int64).reshape(-1)
        cdef int status
        cfg.n_features = n_features
        cfg.n_conditions = n_conditions
        cfg.latent = latent_dim
        cfg.n_enc = <int>enc.shape[0]
        cfg.enc_hidden = pe
        cfg.n_dec = <int>dec.shape[0]
        cfg.dec_hidden = pd
        cfg.likelihood = likelihood  # an enum code: vf_vae_create_config checks it
        cfg.variance = _VARIANCE_CODES[variance]
        cfg.beta = beta
        self.m = NULL
        self._reads = _threading.local()
        if lev.shape[0] > 0:  # categorical covariates (csrc/covariates.h)
            cov.n_cat = lev.shape[0]
            cov.levels = &lev[0]
            cov.deep = deep
            cov.encode = encode
            status = vf_vae_create_covariates(&cfg, &cov, &self.m)
        else:
            status = vf_vae_create_config(&cfg, &self.m)
        check_status(status, "vf_vae_create")
        _set_dispersion(self.m, dispersion, dispersion_covariate, dispersion_levels, likelihood,
                        lev.shape[0])
        self.n_cat = lev.shape[0]
        self.n_features = n_features
        self.latent_dim = latent_dim
        self.n_conditions = n_conditions
        self.num_params = vf_vae_num_params(self.m)
        self.n_layers = <int>(enc.shape[0] + dec.shape[0] + 2)
        self.out_width = self.layer_info(self.n_layers - 1)[1]

    def layer_info(self, int l):
        """(in, out, offset of W, offset of b) of layer l, as the C core laid it out."""
        cdef int64_t info[4]
        check_status(vf_vae_layer_info(self.m, l, info), "layer_info")
        return (info[0], info[1], info[2], info[3])

    def dispersion_info(self):
        """(mode, code column or -1, offset of the log θ table or -1, its rows
        or 0): where θ lives (csrc/vae_dispersion.h has the layout)."""
        return _dispersion_info(self.m)

    def set_dropout(self, float encoder_rate, float decoder_rate):
        """Training-only dropout rates of the encoder's and decoder's hidden layers."""
        check_status(vf_vae_set_dropout(self.m, encoder_rate, decoder_rate), "set_dropout")

    def set_norm(self, int batch_norm_sides, int layer_norm_sides):
        """Batch / layer normalisation of the hidden layers (sides: bit 0 the
        encoder, bit 1 the decoder), once, before the parameters are set:
        batch norm's scale and shift join the parameter buffer."""
        check_status(vf_vae_set_norm(self.m, batch_norm_sides, layer_norm_sides), "set_norm")
        self.num_params = vf_vae_num_params(self.m)

    def held_updates(self):
        """Training steps whose optimizer step ran held, at the start of the
        next step beside its forward pass (csrc/vae_step.c), since creation."""
        with self.reading():
            return (<vf_vae_internals *>self.m).held_updates

    def get_norm_stats(self):
        """Copy of the running statistics of the batch-norm layers."""
        cdef int64_t n = vf_vae_norm_stats_size(self.m)
        out = _np.empty(n, dtype=_np.float32)
        cdef float[::1] o = out
        with self.reading():
            if n > 0:
                memcpy(&o[0], vf_vae_norm_stats(self.m), n * sizeof(float))
        return out

    def set_norm_stats(self, const float[::1] values):
        """Overwrite the running statistics (vf_vae_norm_stats_size floats)."""
        cdef int64_t n = vf_vae_norm_stats_size(self.m)
        if values.shape[0] != n:
            raise ValueError(f"values must hold {n} floats, got {values.shape[0]}")
        self._check_can_write("set_norm_stats")
        if n == 0:
            return
        with nogil:
            vf_vae_lock(self.m, 1)
            memcpy(vf_vae_norm_stats(self.m), &values[0], n * sizeof(float))
            vf_vae_unlock(self.m)

    def cov_table(self, int l):
        """(offset, rows) of layer l's categorical covariate table, (0, 0) if none."""
        cdef int64_t info[2]
        check_status(vf_vae_cov_table(self.m, l, info), "cov_table")
        return (info[0], info[1])

    def __dealloc__(self):
        if self._write_held and self.m != NULL:
            vf_vae_unlock(self.m)  # a lock is not destroyed held
        vf_vae_destroy(self.m)
        self.m = NULL

    # ------------------------------------------------------------ locking
    def reading(self):
        """Context manager: every call inside sees the same weights (the read
        lock, waited for without the GIL: at most one training step)."""
        return _ReadSession(self)

    def _begin_read(self):
        cdef int depth = getattr(self._reads, "depth", 0)
        if depth == 0:
            with nogil:
                vf_vae_lock(self.m, 0)
        self._reads.depth = depth + 1

    def _end_read(self):
        cdef int depth = self._reads.depth - 1
        self._reads.depth = depth
        if depth == 0:
            vf_vae_unlock(self.m)

    cdef int _check_can_write(self, str what) except -1:
        if getattr(self._reads, "depth", 0):
            raise RuntimeError(f"{what}: this thread is reading the model (inside "
                               "reading()); a write here would wait for itself")
        return 0

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
        """Copy of buffer `which` (PARAMS, GRADS, MOMENT1 or MOMENT2)."""
        cdef float *src = self._buffer(which)
        out = _np.empty(self.num_params, dtype=_np.float32)
        cdef float[::1] o = out
        cdef int64_t i
        with self.reading():
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
        self._check_can_write("set_buffer")
        with nogil:
            vf_vae_lock(self.m, 1)
            for i in range(self.num_params):
                dst[i] = values[i]
            vf_vae_unlock(self.m)

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

    def encode(self, const float[:, ::1] X, work=None, c=None, csr=None, int precision=0):
        """X (B, D) -> (mu (B, Z), clamped logvar (B, Z)). work: optional
        float32 scratch of work_size(B) floats (one per concurrent caller);
        c (B, C): the conditions of a conditional model. csr: the rows in
        CSR form (a CSRBatch) for the first layer; X is then None."""
        if (X is None) == (csr is None):
            raise ValueError("encode takes exactly one of X and csr")
        cdef int64_t B = X.shape[0] if csr is None else csr.shape[0], Z = self.latent_dim
        cdef int64_t D = X.shape[1] if csr is None else csr.shape[1]
        if D != self.n_features:
            raise ValueError(f"X must have {self.n_features} columns, got {D}")
        cdef _Rows rows = _Rows(B, self.n_conditions, c, None, precision)
        cdef const float *px = NULL
        if csr is not None:
            rows.set_csr(B, csr)
        elif B > 0:
            px = &X[0, 0]
        mu = _np.empty((B, Z), dtype=_np.float32)
        lv = _np.empty((B, Z), dtype=_np.float32)
        work = self._work(work, B)
        cdef float[:, ::1] mv = mu
        cdef float[:, ::1] lvv = lv
        cdef float[::1] wv = work
        cdef int status = VF_OK
        if B > 0:
            with self.reading():
                with nogil:
                    status = vf_vae_encode_rows(self.m, B, px, self.n_features,
                                                rows.ptr(), &mv[0, 0], Z, &lvv[0, 0], Z, &wv[0])
        if status == VF_ERR_NONFINITE:  # bf16: X checked while converted (vaefast.h)
            raise ValueError("X contains NaN or infinity")
        check_status(status, "encode")
        return mu, lv

    def decode(self, const float[:, ::1] z, bint mean, work=None, c=None, size_factors=None,
               int precision=0):
        """z (B, Z) -> output-layer values (B, out_width), or the mean of p(x|z)
        (B, D), with conditions c (B, C) and size factors (B) if any."""
        cdef int64_t B = z.shape[0], D = self.n_features if mean else self.out_width
        if z.shape[1] != self.latent_dim:
            raise ValueError(f"Z must have {self.latent_dim} columns, got {z.shape[1]}")
        cdef _Rows rows = _Rows(B, self.n_conditions, c, size_factors, precision)
        out = _np.empty((B, D), dtype=_np.float32)
        work = self._work(work, B)
        cdef float[:, ::1] ov = out
        cdef float[::1] wv = work
        cdef int status = VF_OK
        if B > 0:
            with self.reading():
                with nogil:
                    status = vf_vae_decode_rows(self.m, B, &z[0, 0], self.latent_dim, rows.ptr(),
                                                1 if mean else 0, &ov[0, 0], D, &wv[0])
        check_status(status, "decode")
        return out

    def elbo_work_size(self):
        """Floats of workspace elbo needs, whatever the row count."""
        return max(vf_vae_elbo_work_size(self.m), 1)

    def elbo(self, const float[:, ::1] X, const float[:, ::1] eps, work=None, c=None,
             size_factors=None, csr=None, int precision=0):
        """Per-sample ELBO (B,) float64 of X (B, D) at noise eps (B, Z), with
        conditions c (B, C) and size factors (B) if any. work: optional
        float32 scratch of elbo_work_size() floats (one per concurrent caller).
        csr: X's rows in CSR form (a CSRBatch) for the first layer."""
        cdef int64_t B = X.shape[0]
        if X.shape[1] != self.n_features:
            raise ValueError(f"X must have {self.n_features} columns, got {X.shape[1]}")
        if eps.shape[0] != B or eps.shape[1] != self.latent_dim:
            raise ValueError(f"eps must have shape ({B}, {self.latent_dim}), "
                             f"got ({eps.shape[0]}, {eps.shape[1]})")
        cdef _Rows rows = _Rows(B, self.n_conditions, c, size_factors, precision)
        if csr is not None:
            rows.set_csr(B, csr)
        cdef int64_t need = self.elbo_work_size()
        if work is None:
            work = _np.empty(need, dtype=_np.float32)
        elif work.dtype != _np.float32 or work.ndim != 1 or work.shape[0] < need:
            raise ValueError(f"work must be a float32 vector of at least {need} floats")
        out = _np.empty(B, dtype=_np.float64)
        cdef double[::1] ov = out
        cdef float[::1] wv = work
        cdef int status = VF_OK
        if B > 0:
            with self.reading():
                with nogil:
                    status = vf_vae_elbo_rows(self.m, B, &X[0, 0], rows.ptr(), &eps[0, 0],
                                              &ov[0], &wv[0])
        check_status(status, "elbo")
        return out

    def loss_and_grad(self, const float[:, ::1] X, eps, uint64_t seed, uint64_t step,
                      float kl_weight=1.0, c=None, size_factors=None, csr=None,
                      int precision=0):
        """Per-sample (recon, kl) and the batch-mean loss; grads land in buffer 1.
        csr: X's rows in CSR form for the first layer (as train_steps).

        Raises NonFiniteError if the loss or a gradient is not finite."""
        cdef int64_t B = X.shape[0]
        if X.shape[1] != self.n_features:
            raise ValueError(f"X must have {self.n_features} columns, got {X.shape[1]}")
        if B < 1:
            raise ValueError("X must have at least one row")
        cdef _Rows rows = _Rows(B, self.n_conditions, c, size_factors, precision)
        if csr is not None:
            rows.set_csr(B, csr)
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
        self._check_can_write("loss_and_grad")
        with nogil:
            vf_vae_lock(self.m, 1)
            status = vf_vae_loss_and_grad_rows(self.m, B, &X[0, 0], rows.ptr(), pe, seed, step,
                                               kl_weight, &rv[0], &kv[0], &loss)
            vf_vae_unlock(self.m)
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
        self._check_can_write("train_step")
        with nogil:
            vf_vae_lock(self.m, 1)
            status = vf_vae_train_step(self.m, B, &X[0, 0], seed, step, lr, beta1, beta2,
                                       adam_eps, weight_decay, opt, kl_weight, out3)
            vf_vae_unlock(self.m)
        check_status(status, f"training step {step}")
        return out3[0], out3[1], out3[2]

    def train_steps(self, const float[:, ::1] X, order, int64_t batch, int64_t first_batch,
                    int64_t n_steps, uint64_t seed, uint64_t step0, float lr, float beta1,
                    float beta2, float adam_eps, float weight_decay, str optimizer,
                    float kl_weight, double[::1] sums, c=None, size_factors=None,
                    csr=None, int precision=0):
        """Up to n_steps fused steps in one C call (vf_vae_train_steps).

        order: int64 row permutation of X, or None. csr: X's rows in CSR
        form (a CSRBatch), for the first layer (vaefast.h, vf_vae_rows);
        X None: the loss's targets are csr's rows made dense in C, a batch
        at a time (csrc/vae_csr_steps.c). sums (3) is incremented
        by rows·{loss, recon, KL}; self.step advances by the steps done.
        Returns (steps done, status); a failing
        status is not raised here so that the caller learns how far it got
        (turn it into an exception with status_error)."""
        if X is None and csr is None:
            raise ValueError("X must be given unless csr is")
        cdef int64_t n = csr.shape[0] if X is None else X.shape[0]
        if X is not None and X.shape[1] != self.n_features:
            raise ValueError(f"X must have {self.n_features} columns, got {X.shape[1]}")
        if X is None and csr.shape[1] != self.n_features:
            raise ValueError(f"csr must have {self.n_features} columns, got {csr.shape[1]}")
        if n < 1:
            raise ValueError("X must have at least one row")
        if sums.shape[0] != 3:
            raise ValueError("sums must have 3 entries")
        cdef _Rows rows = _Rows(n, self.n_conditions, c, size_factors, precision)
        if csr is not None:
            rows.set_csr(n, csr)
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
        self._check_can_write("train_steps")  # each step locks (vf_vae_train_steps)
        cdef const float *px = NULL
        if X is not None:
            px = &X[0, 0]
        cdef int64_t ldx = self.n_features if X is None else X.shape[1]
        with nogil:
            status = vf_vae_train_steps_rows(self.m, n, px, ldx, rows.ptr(), pidx,
                                             batch, first_batch, n_steps, seed, step0, lr,
                                             beta1, beta2, adam_eps, weight_decay, opt,
                                             kl_weight, &sums[0], &done)
        self.step += <uint64_t>done
        return done, status

    # ---- the split step (vaefast/distributed.py)
    def grads_array(self):
        """The C gradient buffer itself as a float32 ndarray (no copy), valid
        while the array lives (it keeps this core alive) and no use_grads."""
        return self.buffer_array(GRADS)

    def use_grads(self, float[::1] grads):
        """vf_vae_use_grads: gradients go to `grads` (num_params floats, kept
        alive until use_grads(None)), or with None to the model's own buffer."""
        cdef float *p = NULL
        if grads is not None and grads.shape[0] != self.num_params:
            raise ValueError(f"grads must hold {self.num_params} floats, got {grads.shape[0]}")
        if grads is not None:
            p = &grads[0]
        cdef int status
        with nogil:
            vf_vae_lock(self.m, 1)
            status = vf_vae_use_grads(self.m, p)
            vf_vae_unlock(self.m)
        check_status(status, "use_grads")

    def use_params(self, float[::1] params):
        """vf_vae_use_params: the parameters live in `params` (num_params
        floats that already hold them, kept alive until use_params(None)),
        or with None in the model's own buffer again (the current values
        copied there)."""
        cdef float *p = NULL
        if params is not None and params.shape[0] != self.num_params:
            raise ValueError(f"params must hold {self.num_params} floats, "
                             f"got {params.shape[0]}")
        if params is not None:
            p = &params[0]
        cdef int status
        with nogil:
            vf_vae_lock(self.m, 1)
            status = vf_vae_use_params(self.m, p)
            vf_vae_unlock(self.m)
        check_status(status, "use_params")

    def hold_write(self, bint on):
        """Take (True) or release (False) the model's write lock across
        calls, for the data-parallel exchange while the ranks write their
        slices of a shared parameter buffer (apply_update_slice with
        locked=True meanwhile): readers of the model wait for whole steps.
        Taking it twice, or releasing it untaken, is a RuntimeError."""
        if on == self._write_held:
            raise RuntimeError("hold_write(True) twice" if on else
                               "hold_write(False) without hold_write(True)")
        with nogil:
            if on:
                vf_vae_lock(self.m, 1)
            else:
                vf_vae_unlock(self.m)
        self._write_held = on

    def buffer_array(self, int which):
        """Buffer `which` (as get_buffer) itself as a float32 ndarray, no
        copy and no lock: for the data-parallel exchange, which writes the
        gradient and the optimizer's moments in place (the parameters only
        under the model's write lock: hold_write, set_buffer)."""
        return _np.asarray(_FloatView(self, <size_t>self._buffer(which), self.num_params))

    def shard_grads(self, const float[:, ::1] X, uint64_t seed, uint64_t step,
                    int64_t row0, int64_t batch_total, float kl_weight, double[::1] sums,
                    int precision=0, on_layer=None, c=None):
        """vf_vae_shard_grads on X (B may be 0); sums (3) receives this shard's
        {loss, recon, KL} sums. Returns the status (not raised). on_layer(l),
        if given, is called as soon as layer l's gradient is final
        (_grad_hook.pxi); an exception it raises is raised after the call.
        c: the rows' side inputs as _Rows takes them (with comm=: the codes)."""
        cdef int64_t B = X.shape[0]
        if X.shape[1] != self.n_features:
            raise ValueError(f"X must have {self.n_features} columns, got {X.shape[1]}")
        if sums.shape[0] != 3:
            raise ValueError("sums must have 3 entries")
        cdef const float *px = &X[0, 0] if B > 0 else NULL
        cdef _Rows rows = _Rows(B, self.n_conditions, c, None, precision)
        cdef int status
        with _LayerHook(self, on_layer):
            with nogil:
                status = vf_vae_shard_grads(self.m, B, px, rows.ptr(), seed, step, row0,
                                            batch_total, kl_weight, &sums[0])
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

    def apply_update_slice(self, int64_t lo, int64_t hi, float[::1] params, uint64_t step,
                           float lr, float beta1, float beta2, float adam_eps,
                           float weight_decay, str optimizer, bint locked=False):
        """vf_vae_apply_update_slice: params (hi - lo floats: the model's own
        parameters [lo, hi), or a copy of them the caller keeps) and the
        moments [lo, hi) updated in place; returns the status. locked: the
        caller holds the write lock (hold_write), the _locked variant."""
        if locked and not self._write_held:
            raise RuntimeError("apply_update_slice(locked=True) needs hold_write(True)")
        if lo < 0 or hi < lo or hi > self.num_params:
            raise ValueError(f"lo, hi must satisfy 0 <= lo <= hi <= {self.num_params}, "
                             f"got {lo}, {hi}")
        if params.shape[0] != hi - lo:
            raise ValueError(f"params must hold hi - lo = {hi - lo} floats, "
                             f"got {params.shape[0]}")
        cdef int opt = _OPTIMIZER_CODES[optimizer]
        cdef float *po = &params[0] if hi > lo else NULL
        cdef int status
        with nogil:
            if locked:
                status = vf_vae_apply_update_slice_locked(self.m, lo, hi, po, step, lr, beta1,
                                                          beta2, adam_eps, weight_decay, opt)
            else:
                status = vf_vae_apply_update_slice(self.m, lo, hi, po, step, lr, beta1, beta2,
                                                   adam_eps, weight_decay, opt)
        return status


def status_error(int status, str what):
    """Raise the exception for a C status code (nothing for VF_OK)."""
    check_status(status, what)


NONFINITE_STATUS = VF_ERR_NONFINITE
