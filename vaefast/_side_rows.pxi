# Binding of a core call's per-row side inputs (vf_vae_rows in csrc/vaefast.h):
# conditions, categorical codes, size factors and the batch's CSR form, as
# the VAECore methods of _model.pxi pass them to C.


cdef class _Rows:
    """The per-row side inputs (conditions c, size factors) of one core call,
    as the vf_vae_rows the C functions take; holds the arrays alive. For a
    model with categorical covariates c is the pair (c or None, codes
    (n, K) int32): the C core checks K and every code. precision: 0 float32
    layers, 1 bf16 GEMM operands (vaefast/_precision.py)."""
    cdef vf_vae_rows r
    cdef object c_arr, s_arr, csr_arrs, k_arr

    def __cinit__(self, int64_t n, int64_t n_conditions, c, size_factors, int precision=0):
        cdef const float[:, ::1] cv
        cdef const float[::1] sv
        cdef const int32_t[:, ::1] kv
        if isinstance(c, tuple):
            c, codes = c
            kv = codes
            if kv.shape[0] != n:
                raise ValueError(f"codes must have {n} rows, got {kv.shape[0]}")
            self.k_arr = codes
            if n > 0 and kv.shape[1] > 0:
                self.r.codes = &kv[0, 0]
            self.r.ldk = kv.shape[1]
        self.r.c = NULL
        self.r.ldc = 0
        self.r.size_factors = NULL
        self.r.csr_indptr = NULL
        self.r.csr_indices = NULL
        self.r.csr_values = NULL
        self.r.precision = precision
        if (c is None) != (n_conditions == 0):
            raise ValueError("c must be given exactly when the model has conditions")
        if c is not None:
            cv = c
            if cv.shape[0] != n or cv.shape[1] != n_conditions:
                raise ValueError(f"c must have shape ({n}, {n_conditions}), "
                                 f"got ({cv.shape[0]}, {cv.shape[1]})")
            self.c_arr = c
            if n > 0:
                self.r.c = &cv[0, 0]
            self.r.ldc = n_conditions
        if size_factors is not None:
            sv = size_factors
            if sv.shape[0] != n:
                raise ValueError(f"size_factors must have {n} entries, got {sv.shape[0]}")
            self.s_arr = size_factors
            if n > 0:
                self.r.size_factors = &sv[0]

    cdef set_csr(self, int64_t n, csr):
        """The same n rows in CSR form, (data float32, indices int32, indptr
        int64 of n + 1 entries) as vaefast._sparse_batch.CSRBatch holds them."""
        cdef const float[::1] data = csr.data
        cdef const int32_t[::1] indices = csr.indices
        cdef const int64_t[::1] indptr = csr.indptr
        if indptr.shape[0] != n + 1:
            raise ValueError(f"csr must have {n} rows, got {indptr.shape[0] - 1}")
        if indptr[0] < 0 or indptr[n] > min(data.shape[0], indices.shape[0]):
            raise ValueError("csr.indptr refers past its data or indices")
        self.csr_arrs = (data, indices, indptr)
        self.r.csr_indptr = &indptr[0]
        # empty batches still need valid pointers: the kernels read none
        self.r.csr_indices = &indices[0] if indices.shape[0] else <const int32_t *>&indptr[0]
        self.r.csr_values = &data[0] if data.shape[0] else <const float *>&indptr[0]

    cdef const vf_vae_rows *ptr(self) noexcept nogil:
        return &self.r
