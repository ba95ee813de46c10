"""The fused scVI count losses (csrc/count.c, vaefast.ops.count_loss).

Oracle: the float64 twin vaefast.reference.count_loss (itself checked
against PyTorch autograd, finite differences and scipy in
tests/test_zinb_reference.py).

Tolerances, u = 2**-24. The kernel works in float32 apart from the lgamma /
digamma part of x >= 8, and of x >= 2 with a per-element θ (double); a
count of 1 (log θ) and counts 2–7 of a per-gene θ (x·log θ plus the float32
table's sum of log1p terms, minus log x!) are float32 too: a few ulp of
those terms, |Σ log1p| <= |d1| + x·|log θ| + log x!, so the parts below
count 2·(x·|log θ| + log x!) beside |d1|. log mu = (rho − m) +
(log L − log S) carries an absolute error lmerr ≈ u·(|rho − m| + |log L − log S| + 4). Each element
is a short chain of float32 operations (exp, log1p, division: a few ulp
each), so its loss and gradient are within 32u of the magnitude of their
parts, plus the effect of lmerr (|∂/∂log mu| · lmerr; for ZINB's zero case
the posterior adds a factor 1 + θσ). A row sum adds (N + 16)·u·Σ|parts| (the
float32 accumulation, worst case). drho = g − p·G also carries p times the
error of G = Σ g. Gradients also get 2**-120 absolute: float32 has no normal
numbers below 2**-126 (an exp(−80)-sized softmax weight times 1e-17 is 0).
"""

import numpy as np
import pytest

import vaefast
from vaefast import _core, ops
from vaefast import reference as ref

U = 2.0**-24
TINY = 2.0**-120


def _case(rng, M, N, per_cell_theta=False, zeros=0.9):
    x = rng.negative_binomial(1.5, 0.25, (M, N)).astype(np.float32)
    x[rng.random((M, N)) < zeros] = 0.0
    x[0, : min(N, 4)] = [40.0, 300.0, 5000.0, 1.0][: min(N, 4)]  # beyond the short sums
    rho = rng.normal(0.0, 2.0, (M, N)).astype(np.float32)
    lib = rng.uniform(20.0, 5000.0, M).astype(np.float32)
    lt = rng.normal(0.5, 1.5, (M, N) if per_cell_theta else N).astype(np.float32)
    w = rng.normal(-1.0, 2.0, (M, N)).astype(np.float32)
    return x, rho, lib, lt, w


def _tolerances(lik, x, rho, lib, lt, w, scale):
    """Per-row loss and per-element gradient bounds (see the module docstring)."""
    from scipy import special

    x, rho, lib = (np.asarray(a, np.float64) for a in (x, rho, lib))
    N = x.shape[1]
    m = rho.max(axis=1, keepdims=True)
    S = np.exp(rho - m).sum(axis=1, keepdims=True)
    c = np.log(lib)[:, None] - np.log(S)
    lm = rho - m + c
    lmerr = U * (np.abs(rho - m) + np.abs(c) + 4)
    mu, p = np.exp(lm), np.exp(rho - m) / S
    if lik == "poisson":
        lparts = mu + x * np.abs(lm) + special.gammaln(x + 1)
        gparts, amp = mu + x, 1.0
        tparts = None
    else:
        rc = np.clip(np.broadcast_to(lt, x.shape).astype(np.float64), -20, 20)
        th = np.exp(rc)
        a = lm - rc
        sp, sig = np.logaddexp(0, a), 1 / (1 + np.exp(-a))
        d1 = special.gammaln(x + th) - special.gammaln(th) - special.gammaln(x + 1)
        # d1 in float32 is x·log θ + Σ log1p(k/θ) − log x!: its terms' sizes
        lparts = th * sp + x * np.abs(sp - a) + np.abs(d1) + 2 * (x * np.abs(rc)
                                                                 + special.gammaln(x + 1))
        gparts = (x + th) * sig + x
        tparts = th * (sp + sig) + 2 * x
        amp = 1.0
        if lik == "zinb":
            wd = np.asarray(w, np.float64)
            lparts = lparts + np.logaddexp(0, wd) + np.abs(th * sp) + np.abs(wd)
            amp = 1 + th * sig
    eg = gparts * (32 * U + amp * lmerr)
    loss_tol = (32 * U * lparts + gparts * lmerr).sum(1) + (N + 16) * U * lparts.sum(1)
    G = gparts.sum(1, keepdims=True)
    drho_tol = scale * (eg + p * eg.sum(1, keepdims=True) + p * (N + 16) * U * G + 8 * U * p * G
                        + TINY)
    dlt_tol = dpi_tol = None
    if tparts is not None:
        dlt_tol = scale * tparts * (32 * U + amp * lmerr)
        if np.ndim(lt) == 1:
            dlt_tol = dlt_tol.sum(0) + scale * (x.shape[0] + 16) * U * tparts.sum(0)
    if lik == "zinb":
        dpi_tol = scale * (16 * U + 0.25 * (th * sig * lmerr + 8 * U * (th * sp + np.abs(wd))))
    return loss_tol, drho_tol, dlt_tol, dpi_tol


def _run(lik, x, rho, lib, lt, w, scale=1.0, need_grad=True):
    return ops.count_loss(x, rho, lib, None if lik == "poisson" else lt,
                          w if lik == "zinb" else None, lik, scale, need_grad)


CASES = [("poisson", False), ("nb", False), ("nb", True), ("zinb", False), ("zinb", True)]


@pytest.mark.parametrize("lik, per_cell_theta", CASES)
@pytest.mark.parametrize("M, N", [(3, 1), (5, 7), (130, 300), (70, 2001)])
def test_count_loss_matches_twin(rng, lik, per_cell_theta, M, N):
    pytest.importorskip("scipy")
    x, rho, lib, lt, w = _case(rng, M, N, per_cell_theta)
    scale = 0.37
    got = _run(lik, x, rho, lib, lt, w, scale)
    want = ref.count_loss(x, rho, lib, lt, w, lik, scale)
    tols = _tolerances(lik, x, rho, lib, lt, w, scale)
    for name, g, v, tol in zip(("loss", "drho", "dlog_theta", "dpi"), got, want, tols):
        if v is None:
            assert g is None, name
            continue
        assert g.dtype == np.float32 and g.shape == v.shape, name
        err = np.abs(g - v)
        assert np.all(err <= tol), (name, float((err / tol).max()))


@pytest.mark.parametrize("lik", ["poisson", "nb", "zinb"])
def test_loss_only_equals_loss_with_gradients(rng, lik):
    x, rho, lib, lt, w = _case(rng, 20, 50)
    full = _run(lik, x, rho, lib, lt, w)
    only = _run(lik, x, rho, lib, lt, w, need_grad=False)
    assert np.array_equal(full[0], only[0])
    assert only[1:] == (None, None, None)


# 1,300 genes: the per-gene θ pass (θ, 1/θ, the small-count table) splits
# over the team in blocks of 256 genes, the last one partial
@pytest.mark.parametrize("per_cell_theta,genes", [(False, 257), (True, 257), (False, 1300)])
def test_bit_identical_across_thread_counts(rng, per_cell_theta, genes):
    x, rho, lib, lt, w = _case(rng, 300, genes, per_cell_theta)
    old = vaefast.get_num_threads()
    results = []
    try:
        for t in (1, 2, 3):
            vaefast.set_num_threads(t)
            results.append([a for lik in ("poisson", "nb", "zinb")
                            for a in _run(lik, x, rho, lib, lt, w, 0.5) if a is not None])
    finally:
        vaefast.set_num_threads(old)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert np.array_equal(a, b)


def test_extreme_inputs_stay_finite_and_match(rng):
    """Logits far apart (a softmax of 1 and ~0), θ beyond both clamps,
    zero-inflation logits at ±60."""
    pytest.importorskip("scipy")
    x = np.array([[0, 3, 0, 1, 0, 7], [2, 0, 0, 0, 1, 0]], np.float32)
    rho = np.array([[80, -80, 0, 40, -40, 1], [0, 0, 0, 0, 0, 0]], np.float32)
    lib = np.array([1e4, 3.0], np.float32)
    lt = np.array([30, -30, 0, 5, -5, 19], np.float32)
    w = np.array([[60, -60, 0, 3, -3, 1], [-60, 60, 1, -1, 0, 2]], np.float32)
    for lik in ("poisson", "nb", "zinb"):
        got = _run(lik, x, rho, lib, lt, w)
        want = ref.count_loss(x, rho, lib, lt, w, lik)
        tols = _tolerances(lik, x, rho, lib, lt, w, 1.0)
        for g, v, tol in zip(got, want, tols):
            if v is not None:
                assert np.isfinite(g).all()
                assert np.all(np.abs(g - v) <= tol)
        if lik != "poisson":  # the clamp: descent never pushes ρ further out
            assert not got[2][0] < 0 and not got[2][1] > 0


@pytest.mark.parametrize("lik", ["nb", "zinb"])
@pytest.mark.parametrize("N", [17, 1500])
def test_small_counts_of_a_per_gene_theta_match_twin(rng, lik, N):
    """Counts 1–7 of a per-gene θ take the vector path (a count of 1 in the
    main pass; 2–7 compressed into a list and read from the table with
    gathers, the list handled whenever 256 positions have piled up): dense
    rows of them (one in three zero, so a 1500-gene row fills the list
    several times) over log θ from −8 to 12, against the float64 twin."""
    pytest.importorskip("scipy")
    M = 9
    x = rng.integers(0, 8, (M, N)).astype(np.float32)
    x[rng.random((M, N)) < 0.3] = 0.0
    x[:, -1] = 9.0  # a count past the table in every row, one at a time
    rho = rng.normal(0.0, 1.0, (M, N)).astype(np.float32)
    lib = rng.uniform(1e3, 1e5, M).astype(np.float32)
    lt = np.linspace(-8.0, 12.0, N).astype(np.float32)
    rng.shuffle(lt)
    w = rng.normal(-1.0, 2.0, (M, N)).astype(np.float32)
    got = _run(lik, x, rho, lib, lt, w, 0.5)
    want = ref.count_loss(x, rho, lib, lt, w, lik, 0.5)
    tols = _tolerances(lik, x, rho, lib, lt, w, 0.5)
    for name, g, v, tol in zip(("loss", "drho", "dlog_theta", "dpi"), got, want, tols):
        if v is not None:
            err = np.abs(g - v)
            assert np.all(err <= tol), (name, float((err / tol).max()))


# ----------------------------------------------------------------- bad input
@pytest.fixture
def good(rng):
    x, rho, lib, lt, w = _case(rng, 4, 6)
    return dict(x=x, rho_logits=rho, library=lib, log_theta=lt, pi_logits=w)


@pytest.mark.parametrize("change, match", [
    (dict(x=-1.0), "x must be non-negative"),
    (dict(x=0.5), "x must hold integer counts"),
    (dict(x=np.inf), "x contains NaN or infinity"),
    (dict(x=np.nan), "x contains NaN or infinity"),
    (dict(x=2.0**25), "x must hold integer counts"),
    (dict(library=0.0), "library must be > 0"),
    (dict(library=-3.0), "library must be > 0"),
    (dict(library=np.nan), "library contains NaN"),
    (dict(rho_logits=np.nan), "rho_logits contains NaN"),
    (dict(log_theta=np.inf), "log_theta contains NaN or infinity"),
    (dict(pi_logits=np.nan), "pi_logits contains NaN"),
])
def test_bad_values_name_the_argument(good, change, match):
    (name, value), = change.items()
    args = dict(good)
    arr = np.array(args[name], dtype=np.float64)
    arr.flat[1] = value
    args[name] = arr
    with pytest.raises(ValueError, match=match):
        ops.count_loss(**args, likelihood="zinb")


@pytest.mark.parametrize("name, shape, match", [
    ("x", (4, 5), "x must have the shape of rho_logits"),
    ("library", (3,), "library must have 4 entries"),
    ("log_theta", (5,), "log_theta must have shape"),
    ("log_theta", (3, 6), "log_theta must have shape"),
    ("pi_logits", (4, 7), "pi_logits must have shape"),
    ("rho_logits", (4,), "rho_logits must be 2-dimensional"),
])
def test_mismatched_shapes_name_the_argument(good, name, shape, match):
    args = dict(good)
    args[name] = np.ones(shape, np.float32)
    with pytest.raises(ValueError, match=match):
        ops.count_loss(**args, likelihood="zinb")


def test_parameters_the_likelihood_lacks_or_needs(good):
    g = good
    with pytest.raises(ValueError, match="likelihood must be one of"):
        ops.count_loss(g["x"], g["rho_logits"], g["library"], likelihood="zip")
    with pytest.raises(ValueError, match="log_theta is required"):
        ops.count_loss(g["x"], g["rho_logits"], g["library"], likelihood="nb")
    with pytest.raises(ValueError, match="pi_logits is required"):
        ops.count_loss(g["x"], g["rho_logits"], g["library"], g["log_theta"], likelihood="zinb")
    with pytest.raises(ValueError, match="pi_logits is not a parameter"):
        ops.count_loss(**g, likelihood="nb")
    with pytest.raises(ValueError, match="log_theta is not a parameter"):
        ops.count_loss(g["x"], g["rho_logits"], g["library"], g["log_theta"],
                       likelihood="poisson")


@pytest.mark.parametrize("position, value", [((1, 2), -1.0), ((0, 0), 2.5), ((3, 5), np.nan),
                                             ((2, 1), np.inf)])
def test_core_rejects_bad_counts_itself(good, position, value):
    """The C entry point checks counts too (status VF_ERR_ARG), whatever the
    caller: here the binding is called directly, past the Python checks."""
    x = good["x"].copy()
    x[position] = value
    M, N = x.shape
    lt = good["log_theta"].reshape(1, N)
    args = (good["rho_logits"], x, good["library"], lt, good["pi_logits"],
            np.empty(M, np.float32), np.empty((M, N), np.float32), np.empty((1, N), np.float32),
            np.empty((M, N), np.float32), 1.0)
    with pytest.raises(ValueError, match="count_loss: invalid argument"):
        _core.count_loss_into("zinb", *args)
    bad_lib = good["library"].copy()
    bad_lib[1] = 0.0
    with pytest.raises(ValueError, match="count_loss: invalid argument"):
        _core.count_loss_into("zinb", good["rho_logits"], good["x"], bad_lib, *args[3:])
