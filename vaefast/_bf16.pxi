# Binding of the bf16 GEMM (csrc/bf16.c). Matrices as in _gemm.pxi (2-D
# float32, rows contiguous; _ld/_ptr/_wptr/_vptr come from there); the
# Python layer is vaefast/ops/_bf16.py.

# the routes (csrc/vaefast.h): "emulated" and "native" give the same bits,
# and so do "amx" and "amx_emulated"
_BF16_IMPLS = {"auto": 0, "emulated": 1, "native": 2, "amx": 3, "amx_emulated": 4}
_BF16_MISSING = {
    "native": "this CPU has no AVX512_BF16 (x86) or BF16 (AArch64), or vaefast was built"
              " without the avx512 (neon) set",
    "amx": "this CPU or OS offers no AMX-BF16 to this process (cpu_features()['amx_bf16']"
           " is False: no AMX, no tile state in XCR0, or Linux refused the permission)",
}


cdef int _bf16_impl(str impl, str name="impl") except -1:
    if impl not in _BF16_IMPLS:
        raise ValueError(f"{name} must be one of {', '.join(_BF16_IMPLS)}, got {impl!r}")
    if impl != "auto" and not vf_bf16_impl_supported(_BF16_IMPLS[impl]):
        raise ValueError(f"{name}={impl!r}: {_BF16_MISSING[impl]}")
    return _BF16_IMPLS[impl]


def bf16_native_supported():
    """True if the bf16 instructions can run here: VDPBF16PS (AVX512_BF16 and
    the OS saves zmm) or, on AArch64, BFMLALT/BFMLALB (the BF16 hwcap)."""
    return bool(vf_bf16_native_supported())


def bf16_amx_supported():
    """True if TDPBF16PS can run in this process (AMX-BF16, the OS saves the
    tile state, and Linux granted the permission)."""
    return bool(vf_bf16_amx_supported())


def bf16_auto_impl():
    """The route precision='bf16' runs now: 'amx', 'native' or 'emulated'
    (or 'amx_emulated' if set_bf16_route chose it)."""
    cdef int im = vf_bf16_auto_impl()
    return next(n for n, v in _BF16_IMPLS.items() if v == im)


def set_bf16_route(str impl):
    """Fix what impl='auto' (and so precision='bf16') runs: a route name, or
    'auto' for the choice from the active kernel set. ValueError if unknown
    or not supported here (VAEFAST_BF16, vaefast/__init__.py)."""
    check_status(vf_bf16_set_auto(_bf16_impl(impl, "route")), "set_bf16_route")


def gemm_bf16(const float[:, :] a, const float[:, :] b, bint trans_a, bint trans_b,
              const float[::1] bias, bint relu, float[:, :] c, str impl="auto"):
    """c (M×N) = act(op(a)·op(b) + bias) in bf16 with float32 accumulation.
    Returns True if a value before the activation is NaN or ±Inf."""
    cdef int im = _bf16_impl(impl)
    cdef int64_t M = c.shape[0], N = c.shape[1]
    cdef int64_t K = a.shape[0] if trans_a else a.shape[1]
    cdef int64_t lda = _ld(a, "a"), ldb = _ld(b, "b"), ldc = _ld(c, "out")
    cdef const float *pa = _ptr(a)
    cdef const float *pb = _ptr(b)
    cdef const float *pbias = _vptr(bias)
    cdef float *pc = _wptr(c)
    cdef int status
    with nogil:
        status = vf_gemm_bf16(im, 1 if trans_a else 0, 1 if trans_b else 0, M, N, K,
                              pa, lda, pb, ldb, pbias, VF_ACT_RELU if relu else VF_ACT_NONE,
                              pc, ldc)
    return _nonfinite(status, "bf16 matmul")


def bf16_dot2_lanes(const float[::1] acc, const uint32_t[::1] a, const uint32_t[::1] b,
                    float[::1] out, str impl="auto"):
    """out[i] = one float32 lane of VDPBF16PS on (acc[i], a[i], b[i]), where
    a[i], b[i] hold two bf16 each (bits 0-15 the even, 16-31 the odd one)."""
    cdef int im = _bf16_impl(impl)
    cdef int64_t n = acc.shape[0]
    if a.shape[0] != n or b.shape[0] != n or out.shape[0] != n:
        raise ValueError("acc, a, b and out must have the same length")
    cdef int status
    with nogil:
        status = vf_bf16_dot2_lanes(im, n, &acc[0] if n else NULL, &a[0] if n else NULL,
                                    &b[0] if n else NULL, &out[0] if n else NULL)
    check_status(status, "bf16_dot2_lanes")
