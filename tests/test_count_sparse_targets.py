"""The count losses with CSR targets (vf_count_loss_csr, ops.count_loss of a
CSR x): the counts are read from the stored entries, never from a dense
matrix.

Oracle: the dense-target path on the same counts. The CSR path writes a
row's entries into a zeroed scratch row and runs the dense path's own code
on it, so the stated bound is 0: every output equal bit for bit (any
deviation is a bug, not rounding). The dense path itself is checked against
the float64 twin in tests/test_zinb.py; one case here repeats that check on
the CSR path directly, with test_zinb's tolerances.
"""

import numpy as np
import pytest

import vaefast
from vaefast import ops
from vaefast import reference as ref

sp = pytest.importorskip("scipy.sparse")

LIKS = ["poisson", "nb", "zinb"]


def _case(rng, M, N, per_cell_theta=False, zeros=0.9):
    x = rng.negative_binomial(1.5, 0.25, (M, N)).astype(np.float32)
    x[rng.random((M, N)) < zeros] = 0.0
    if M and N >= 3:
        x[0, :3] = [40.0, 300.0, 1.0]  # beyond the small-count table, and a 1
    rho = rng.normal(0.0, 2.0, (M, N)).astype(np.float32)
    lib = rng.uniform(20.0, 5000.0, M).astype(np.float32)
    lt = rng.normal(0.5, 1.5, (M, N) if per_cell_theta else N).astype(np.float32)
    w = rng.normal(-1.0, 2.0, (M, N)).astype(np.float32)
    return x, rho, lib, lt, w


def _run(lik, x, rho, lib, lt, w, scale=0.37, need_grad=True):
    return ops.count_loss(x, rho, lib, None if lik == "poisson" else lt,
                          w if lik == "zinb" else None, lik, scale, need_grad)


def _assert_same(a, b):
    for name, u, v in zip(("loss", "drho", "dlog_theta", "dpi"), a, b):
        if u is None:
            assert v is None, name
        else:
            assert u.dtype == v.dtype and u.shape == v.shape, name
            assert np.array_equal(u, v), (name, float(np.abs(u - v).max()))


@pytest.mark.parametrize("lik", LIKS)
@pytest.mark.parametrize("per_cell_theta", [False, True])
@pytest.mark.parametrize("M, N, zeros", [(1, 1, 0.0), (5, 7, 0.5), (130, 300, 0.9),
                                         (70, 2001, 0.93), (64, 33, 1.0)])
def test_csr_targets_equal_dense_targets(rng, lik, per_cell_theta, M, N, zeros):
    x, rho, lib, lt, w = _case(rng, M, N, per_cell_theta, zeros)
    dense = _run(lik, x, rho, lib, lt, w)
    _assert_same(_run(lik, sp.csr_matrix(x), rho, lib, lt, w), dense)
    _assert_same(_run(lik, sp.csc_matrix(x), rho, lib, lt, w), dense)
    only = _run(lik, sp.csr_matrix(x), rho, lib, lt, w, need_grad=False)
    assert np.array_equal(only[0], dense[0]) and only[1:] == (None, None, None)


def test_csr_targets_with_stored_zeros_and_an_offset_base(rng):
    """Explicit zeros among the entries, and rows sliced out of a larger
    matrix (indptr starting above 0): the same results."""
    x, rho, lib, lt, w = _case(rng, 40, 90)
    big = sp.csr_matrix(np.vstack([np.ones((3, 90), np.float32), x]))
    from vaefast._sparse_batch import CSRBatch

    part = CSRBatch(big.data, big.indices, big.indptr[3:], x.shape)  # scipy wants 0
    assert part.indptr[0] > 0
    with_zeros = sp.csr_matrix(x)
    with_zeros.data[::5] = 0.0  # stored, not removed
    x_zeroed = with_zeros.toarray()
    for lik in LIKS:
        _assert_same(_run(lik, part, rho, lib, lt, w), _run(lik, x, rho, lib, lt, w))
        _assert_same(_run(lik, with_zeros, rho, lib, lt, w),
                     _run(lik, x_zeroed, rho, lib, lt, w))


def test_csr_targets_match_the_twin(rng):
    """The CSR path against the float64 twin directly (test_zinb's bounds)."""
    import importlib.util
    import pathlib

    # test_zinb's bounds (tests/ is no package: load the file itself)
    spec = importlib.util.spec_from_file_location(
        "_zinb_bounds", pathlib.Path(__file__).with_name("test_zinb.py"))
    zinb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(zinb)
    _tolerances = zinb._tolerances

    x, rho, lib, lt, w = _case(rng, 130, 300)
    for lik in LIKS:
        got = _run(lik, sp.csr_matrix(x), rho, lib, lt, w)
        want = ref.count_loss(x, rho, lib, lt, w, lik, 0.37)
        for g, v, tol in zip(got, want, _tolerances(lik, x, rho, lib, lt, w, 0.37)):
            if v is not None:
                assert np.all(np.abs(g - v) <= tol)


@pytest.mark.parametrize("per_cell_theta", [False, True])
def test_csr_targets_bit_identical_across_thread_counts(rng, per_cell_theta):
    x, rho, lib, lt, w = _case(rng, 300, 257, per_cell_theta)
    csr = sp.csr_matrix(x)
    old = vaefast.get_num_threads()
    results = []
    try:
        for t in (1, 2, 3):
            vaefast.set_num_threads(t)
            results.append([a for lik in LIKS for a in _run(lik, csr, rho, lib, lt, w, 0.5)
                            if a is not None])
    finally:
        vaefast.set_num_threads(old)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert np.array_equal(a, b)


def _broken(x, how):
    csr = sp.csr_matrix(x)
    data, indices, indptr = csr.data.copy(), csr.indices.copy(), csr.indptr.copy()
    if how == "unsorted":
        indices[[0, 1]] = indices[[1, 0]]
    elif how == "out of range":
        indices[-1] = x.shape[1] + 3
    elif how == "negative":
        data[2] = -1.0
    elif how == "fraction":
        data[2] = 1.5
    elif how == "nan":
        data[2] = np.nan
    return sp.csr_matrix((data, indices, indptr), shape=x.shape)


@pytest.mark.parametrize("how, match", [
    ("unsorted", "x.indices must be sorted"),
    ("out of range", r"x.indices must lie in \[0, 9\)"),
    ("negative", "x must be non-negative"),
    ("fraction", "x must hold integer counts"),
    ("nan", "x contains NaN or infinity"),
])
def test_bad_csr_targets_name_the_argument(rng, how, match):
    x, rho, lib, lt, w = _case(rng, 4, 9, zeros=0.0)
    x[0, :2] = [1.0, 2.0]
    bad = _broken(x, how)
    for lik in LIKS:
        with pytest.raises(ValueError, match=match):
            _run(lik, bad, rho, lib, lt, w)


def test_csr_targets_shape_mismatch_names_x(rng):
    x, rho, lib, lt, w = _case(rng, 4, 9)
    with pytest.raises(ValueError, match="x must have the shape of rho_logits"):
        _run("nb", sp.csr_matrix(x[:, :8]), rho, lib, lt, w)


@pytest.mark.parametrize("likelihood", ["zinb", "scvi_nb", "scvi_poisson"])
def test_training_step_reads_the_counts_from_the_csr_batch(rng, likelihood):
    """With the batch in CSR form, a training step of a scVI-count model
    takes its targets (and the observed library) from the CSR entries: the
    dense X passed beside it is not read (NaN here), and loss and gradients
    equal those of the same step with the true dense X, bit for bit."""
    from vaefast._internals import GRADS, internals
    from vaefast._sparse_batch import gather_csr_rows

    D = 37
    X = rng.negative_binomial(1.5, 0.3, (64, D)).astype(np.float32)
    X[rng.random(X.shape) < 0.85] = 0.0
    X[:, 0] += 1.0  # no empty row (the observed library)
    batch = gather_csr_rows(sp.csr_matrix(X), slice(0, 64))
    eps = np.random.default_rng(2).standard_normal((64, 4)).astype(np.float32)
    m = vaefast.VAE(D, hidden=(16,), latent_dim=4, likelihood=likelihood, seed=5)
    core = internals(m).core
    results = []
    for dense in (X, np.full_like(X, np.nan)):
        loss, recon, kl = core.loss_and_grad(dense, eps, m.seed, 0, 1.0, None, None, batch)
        results.append((loss, recon.copy(), core.get_buffer(GRADS).copy()))
    (l0, r0, g0), (l1, r1, g1) = results
    assert np.isfinite(l0) and l0 == l1
    assert np.array_equal(r0, r1) and np.array_equal(g0, g1)
