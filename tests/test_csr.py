"""The CSR-input first layer (vaefast.ops.sparse_linear and
sparse_linear_weight_grad) against its float64 NumPy twin, the dense
path, and across thread counts; the batch gatherer; bad input.

Tolerance. An output entry is a float32 sum of n terms t_p = T(v_p)·w_p
(n = the non-zeros of its row for the forward, of its feature column for
dW), accumulated by one multiply-add each, plus the bias. Each rounding
adds at most u·|partial sum| <= u·S with S = Σ|t_p| + |b| (u = 2^-24), and
T(v) (log1p through the kernel set's vector log, csrc/vaefast.h) is within
2.5u of log1p(v) relatively (test_log1p_transform_accuracy; 2.07u measured),
so |got − exact| <= (n + 1 + 2.5)·u·S < (n + 4)·u·S. The test asserts that
bound per entry with n taken per entry; an index error or a dropped term
(an error of order one term) exceeds it.
"""

import numpy as np
import pytest

sp = pytest.importorskip("scipy.sparse")

import vaefast  # noqa: E402
from vaefast import ops  # noqa: E402
from vaefast import reference as ref  # noqa: E402

U = 2.0**-24


def counts(rng, m, k, density, empty_rows=()):
    """A (m, k) CSR matrix of integer counts (float32), about `density`
    non-zero, with the given rows left empty."""
    dense = rng.poisson(2.0, (m, k)).astype(np.float32) + 1
    dense[rng.random((m, k)) >= density] = 0
    dense[list(empty_rows)] = 0
    return sp.csr_matrix(dense)


def transformed(X, transform):
    d = X.toarray().astype(np.float64)
    return np.log1p(d) if transform == "log1p" else d


def assert_sum_close(got, exact, abs_terms, n_terms):
    """|got − exact| <= (n + 4)·u·S per entry (module docstring)."""
    bound = (n_terms + 4) * U * abs_terms + 1e-30
    err = np.abs(got.astype(np.float64) - exact)
    assert np.all(err <= bound), f"max excess {np.max(err - bound)}"


def forward_twin(X, W, b, act, transform):
    T = transformed(X, transform)
    exact = ref.linear_forward(T, W.astype(np.float64),
                               None if b is None else b.astype(np.float64), act)
    abs_terms = np.abs(T) @ np.abs(W.astype(np.float64))
    if b is not None:
        abs_terms += np.abs(b)
    n_terms = np.diff(X.indptr)[:, None]
    return exact, abs_terms, n_terms


def test_log1p_transform_accuracy(kernel_set):
    # T(v) read back through a one-feature product with W = 1 (y = T(v)):
    # integer counts, uniform reals and 60 decades, against float64 log1p
    rng = np.random.default_rng(5)
    v = np.concatenate([np.arange(2**18, dtype=np.float32),
                        (rng.random(2**18) * 1e4).astype(np.float32),
                        np.logspace(-30, 30, 2**16).astype(np.float32),
                        np.float32([3.4e38, 1e-45])])
    X = sp.csr_matrix((v, np.zeros(v.size, np.int32), np.arange(v.size + 1)),
                      shape=(v.size, 1))
    t = ops.sparse_linear(X, np.ones((1, 1), np.float32), transform="log1p")[:, 0]
    exact = np.log1p(v.astype(np.float64))
    assert t[0] == 0 and np.all(np.isfinite(t))
    assert np.max(np.abs(t[1:] - exact[1:]) / exact[1:]) <= 2.5 * U


SHAPES = [(1, 7, 1, 0.5), (5, 40, 5, 0.3), (33, 300, 127, 0.1), (64, 500, 128, 0.1),
          (17, 200, 129, 0.2), (9, 64, 300, 0.5), (128, 2000, 128, 0.1)]


@pytest.mark.parametrize("m, k, n, density", SHAPES)
@pytest.mark.parametrize("act, bias, transform", [(None, False, None), ("relu", True, "log1p"),
                                                  (None, True, "log1p"), ("relu", False, None)])
def test_forward_matches_float64_twin(kernel_set, m, k, n, density, act, bias, transform):
    rng = np.random.default_rng(m * 1000 + n)
    X = counts(rng, m, k, density, empty_rows=[0] if m > 2 else ())
    W = rng.standard_normal((k, n)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32) if bias else None
    y = ops.sparse_linear(X, W, b, act, transform)
    exact, abs_terms, n_terms = forward_twin(X, W, b, act, transform)
    assert y.dtype == np.float32 and y.shape == (m, n)
    if act == "relu":
        assert np.all(y >= 0)
    assert_sum_close(y, exact, abs_terms, n_terms)
    if m > 2:  # the empty row is act(b) exactly
        want = np.zeros(n, np.float32) if b is None else b
        np.testing.assert_array_equal(y[0], np.maximum(want, 0) if act else want)


@pytest.mark.parametrize("m, k, n, density", SHAPES)
@pytest.mark.parametrize("relu, transform", [(True, "log1p"), (False, None)])
def test_weight_grad_matches_float64_twin(kernel_set, m, k, n, density, relu, transform):
    rng = np.random.default_rng(m + 7 * n)
    X = counts(rng, m, k, density, empty_rows=[m - 1] if m > 2 else ())
    y = np.maximum(rng.standard_normal((m, n)), 0).astype(np.float32) if relu else None
    dy = rng.standard_normal((m, n)).astype(np.float32)
    dW, db = ops.sparse_linear_weight_grad(X, dy, y, "relu" if relu else None, transform)
    T = transformed(X, transform)
    _, dW_exact, db_exact = ref.linear_backward(T, np.zeros((k, n)), dy.astype(np.float64),
                                                 None if y is None else y.astype(np.float64),
                                                 "relu" if relu else None)
    dz = np.abs(dy.astype(np.float64)) * (1 if y is None else (y > 0))
    n_terms = np.diff(X.tocsc().indptr)[:, None]  # non-zeros per feature
    assert_sum_close(dW, dW_exact, np.abs(T).T @ dz, n_terms)
    assert_sum_close(db, db_exact, dz.sum(0), m)
    absent = n_terms[:, 0] == 0  # features no row holds: exactly zero
    assert np.all(dW[absent] == 0)


def test_weight_grad_accumulates_and_overwrites(rng):
    X = counts(rng, 20, 90, 0.2)
    dy = rng.standard_normal((20, 33)).astype(np.float32)
    dW0 = rng.standard_normal((90, 33)).astype(np.float32)
    db0 = rng.standard_normal(33).astype(np.float32)
    fresh_dW, fresh_db = ops.sparse_linear_weight_grad(X, dy, transform="log1p")
    dW, db = dW0.copy(), db0.copy()
    out = ops.sparse_linear_weight_grad(X, dy, transform="log1p", dW=dW, db=db,
                                        accumulate=True)
    assert out[0] is dW and out[1] is db
    # old + sum, the order the dense GEMM accumulates in: exact, not close
    np.testing.assert_array_equal(dW, dW0 + fresh_dW)
    np.testing.assert_array_equal(db, db0 + fresh_db)
    stale = np.full((90, 33), np.nan, np.float32)  # overwrite reads nothing old
    ops.sparse_linear_weight_grad(X, dy, transform="log1p", dW=stale,
                                  db=np.full(33, np.nan, np.float32))
    np.testing.assert_array_equal(stale, fresh_dW)


@pytest.mark.parametrize("transform", [None, "log1p"])
def test_agrees_with_the_dense_path(kernel_set, transform):
    # the dense layer on T(X) densified: both within their float32 bounds of
    # the same exact value, so within the sum of the two bounds of each other
    rng = np.random.default_rng(3)
    X = counts(rng, 128, 2000, 0.1)
    W = (rng.standard_normal((2000, 128)) * 0.05).astype(np.float32)
    b = rng.standard_normal(128).astype(np.float32)
    T32 = X.toarray()
    T32 = np.log(np.float32(1) + T32) if transform else T32
    y_dense = ops.linear(T32, W, b, "relu")
    y = ops.sparse_linear(X, W, b, "relu", transform)
    _, abs_terms, n_terms = forward_twin(X, W, b, "relu", transform)
    bound = ((n_terms + 4) + 8 * np.sqrt(2001)) * U * abs_terms
    assert np.all(np.abs(y.astype(np.float64) - y_dense) <= bound)
    # each against the float64 value (a failure says which path drifted):
    # the CSR sum within (n + 4)·u·S; the dense one within its own part
    exact, _, _ = forward_twin(X, W, b, "relu", transform)
    assert_sum_close(y, exact, abs_terms, n_terms)
    assert np.all(np.abs(y_dense - exact) <= 8 * np.sqrt(2001) * U * abs_terms + 1e-30)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    _, dW_dense, db_dense = ops.linear_backward(T32, W, dy, y, "relu", need_dx=False)
    dW, db = ops.sparse_linear_weight_grad(X, dy, y, "relu", transform)
    dz = np.abs(dy.astype(np.float64)) * (y > 0)
    S = np.abs(T32).T.astype(np.float64) @ dz
    bound = (128 + 4 + 8 * np.sqrt(129)) * U * S
    assert np.all(np.abs(dW.astype(np.float64) - dW_dense) <= bound + 1e-30)
    # each against the float64 value: the CSR sum (one running sum over the
    # feature's non-zero rows, row order) within (n + 4)·u·S with n its
    # non-zeros, the dense GEMM's (all 128 rows, zeros too) within 8·√129·u·S
    dz_signed = dy.astype(np.float64) * (y > 0)
    dW_exact = transformed(X, transform).T @ dz_signed
    assert_sum_close(dW, dW_exact, S, np.diff(X.tocsc().indptr)[:, None])
    assert np.all(np.abs(dW_dense - dW_exact) <= 8 * np.sqrt(129) * U * S + 1e-30)
    np.testing.assert_allclose(db, db_dense, rtol=0, atol=1e-4)


@pytest.mark.parametrize("m, density", [(128, 0.1), (600, 0.12)])
def test_bit_identical_for_any_thread_count(kernel_set, m, density):
    # 600 rows: also the parallel check-and-transform pass (> 65536 entries)
    rng = np.random.default_rng(m)
    X = counts(rng, m, 2000, density)
    W = rng.standard_normal((2000, 128)).astype(np.float32)
    b = rng.standard_normal(128).astype(np.float32)
    dy = rng.standard_normal((m, 128)).astype(np.float32)
    before = vaefast.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            vaefast.set_num_threads(n)
            y = ops.sparse_linear(X, W, b, "relu", "log1p")
            results.append((y, *ops.sparse_linear_weight_grad(X, dy, y, "relu", "log1p")))
    finally:
        vaefast.set_num_threads(before)
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            np.testing.assert_array_equal(a, b_)


class _RowRun:
    """A CSR-like object for rows r0..r1 of X that shares X's arrays: its
    row pointers start at X.indptr[r0], not 0 (the core reads them in place)."""
    format = "csr"

    def __init__(self, X, r0, r1):
        self.data, self.indices = X.data, X.indices
        self.indptr = X.indptr[r0:r1 + 1]
        self.shape = (r1 - r0, X.shape[1])


def test_every_input_kind_gives_the_same_bits(rng):
    X = counts(rng, 40, 300, 0.15)
    W = rng.standard_normal((300, 70)).astype(np.float32)
    want = ops.sparse_linear(X, W, None, "relu", "log1p")
    csr64 = X.copy()
    csr64.indices = csr64.indices.astype(np.int64)
    csr64.indptr = csr64.indptr.astype(np.int64)
    kinds = [sp.csr_array(X), X.tocsc(), sp.csc_array(X), csr64, X.astype(np.float64),
             X.astype(np.int32), ops.gather_csr_rows(X, np.arange(40))]
    for kind in kinds:
        np.testing.assert_array_equal(ops.sparse_linear(kind, W, None, "relu", "log1p"), want)
    # a run of rows used in place (row pointers not from 0)
    np.testing.assert_array_equal(
        ops.sparse_linear(_RowRun(X, 10, 25), W, None, "relu", "log1p"), want[10:25])


def test_gather_csr_rows(rng):
    X = counts(rng, 50, 80, 0.2, empty_rows=[7])
    for rows in ([3, 7, 3, 49, 0], np.array([], dtype=np.int64), slice(5, 20),
                 slice(0, 50, 3), np.arange(50)[::-1]):
        batch = ops.gather_csr_rows(X, rows)
        data, indices, indptr = batch  # unpacks as the three arrays
        assert (data.dtype, indices.dtype, indptr.dtype) == (np.float32, np.int32, np.int64)
        assert indptr[0] == 0 and batch.nnz == indptr[-1]
        want = X[rows].toarray() if not isinstance(rows, np.ndarray) or rows.size else \
            np.zeros((0, 80), np.float32)
        np.testing.assert_array_equal(batch.toarray(), want)
        np.testing.assert_array_equal(ops.gather_dense_rows(X, rows), want)
        np.testing.assert_array_equal(ops.gather_dense_rows(X.tocsc(), rows), want)
        np.testing.assert_allclose(ops.gather_dense_rows(X, rows, "log1p"), np.log1p(want),
                                   rtol=2e-7)
    contiguous = ops.gather_csr_rows(X, slice(5, 20))
    assert np.shares_memory(contiguous.data, X.data)  # a view, no copy of the entries


def test_gather_never_densifies_the_matrix():
    # 10^9 columns: a dense row would take 4 GB, the matrix 400 GB
    cols = 10**9
    X = sp.csr_matrix((np.array([1, 2, 3], np.float32), np.array([5, cols - 1, 12]),
                       np.array([0, 2, 2, 3])), shape=(3, cols))
    batch = ops.gather_csr_rows(X, [2, 0])
    assert batch.shape == (2, cols)
    np.testing.assert_array_equal(batch.indices, [12, 5, cols - 1])
    np.testing.assert_array_equal(batch.data, [3, 1, 2])
    W = np.ones((1, 1), np.float32)
    with pytest.raises(ValueError, match="x has 1000000000 features but W expects 1"):
        ops.sparse_linear(batch, W)


def _csr(data, indices, indptr, shape):
    return sp.csr_matrix((np.asarray(data, np.float32), np.asarray(indices, np.int32),
                          np.asarray(indptr)), shape=shape)


@pytest.mark.parametrize("x, transform, match", [
    (_csr([1, 2], [3, 1], [0, 2], (1, 5)), None, r"x\.indices must be sorted.*unsorted"),
    (_csr([1, 2], [1, 1], [0, 2], (1, 5)), None, r"x\.indices must be sorted.*duplicate"),
    (_csr([1, np.nan], [0, 1], [0, 2], (1, 5)), None, r"x\.data contains NaN"),
    (_csr([1, np.inf], [0, 1], [0, 2], (1, 5)), "log1p", r"x\.data contains NaN"),
    (_csr([1, -2], [0, 1], [0, 2], (1, 5)), "log1p", r"x\.data must be >= 0"),
])
def test_bad_entries_are_named(x, transform, match):
    W = np.ones((5, 3), np.float32)
    with pytest.raises(ValueError, match=match):
        ops.sparse_linear(x, W, transform=transform)
    with pytest.raises(ValueError, match=match):
        ops.sparse_linear_weight_grad(x, np.ones((1, 3), np.float32), transform=transform)


def test_negative_values_pass_without_log1p():
    x = _csr([1, -2], [0, 3], [0, 2], (1, 5))
    W = np.arange(15, dtype=np.float32).reshape(5, 3)
    np.testing.assert_array_equal(ops.sparse_linear(x, W), [W[0] - 2 * W[3]])


class _Raw:
    format = "csr"

    def __init__(self, data, indices, indptr, shape):
        self.data, self.indices, self.indptr, self.shape = data, indices, indptr, shape


@pytest.mark.parametrize("x, match", [
    (_Raw(np.ones(2, np.float32), np.array([0, 5], np.int32), np.array([0, 2]), (1, 5)),
     r"x\.indices must lie in \[0, 5\)"),
    (_Raw(np.ones(2, np.float32), np.array([-1, 2], np.int32), np.array([0, 2]), (1, 5)),
     r"x\.indices must lie in \[0, 5\)"),
    (_Raw(np.ones(2, np.float32), np.array([0, 2**32 + 1], np.int64), np.array([0, 2]),
          (1, 5)), r"x\.indices must lie in \[0, 5\)"),  # would wrap to 1 as int32
    (_Raw(np.ones(2, np.float32), np.array([0, 1], np.int32), np.array([0, 2, 1]), (2, 5)),
     r"x\.indptr must be non-decreasing"),
    (_Raw(np.ones(2, np.float32), np.array([0, 1], np.int32), np.array([0, 2]), (2, 5)),
     r"x\.indptr must have 3 entries"),
    (_Raw(np.ones(1, np.float32), np.array([0, 1], np.int32), np.array([0, 2]), (1, 5)),
     r"x\.data has 1 entries but x\.indptr refers to 2"),
    (np.ones((1, 5), np.float32), r"x must be a CSR \(or CSC\) sparse matrix"),
])
def test_bad_structure_is_named(x, match):
    with pytest.raises((ValueError, TypeError), match=match):
        ops.sparse_linear(x, np.ones((5, 3), np.float32))


_BLOCK_CROSSING = [  # the weight gradient's transpose (its counting pass) must catch
    (np.array([100, 50], np.int32), r"x\.indices must be sorted"),    # a later block back
    (np.array([70, 70], np.int32), r"x\.indices must be sorted"),     # a duplicate
    (np.array([3, 200], np.int32), r"x\.indices must lie in \[0, 150\)"),  # past K
    (np.array([-70, 3], np.int32), r"x\.indices must lie in \[0, 150\)"),  # negative
]


@pytest.mark.parametrize("indices, match", _BLOCK_CROSSING)
@pytest.mark.parametrize("grad", [False, True])
def test_bad_columns_across_blocks_are_named(indices, match, grad):
    x = _Raw(np.ones(2, np.float32), indices, np.array([0, 0, 2]), (2, 150))
    with pytest.raises(ValueError, match=match):
        if grad:
            ops.sparse_linear_weight_grad(x, np.ones((2, 3), np.float32))
        else:
            ops.sparse_linear(x, np.ones((150, 3), np.float32))


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("row, how, match", [
    (0, "unsorted", r"x\.indices must be sorted"),
    (127, "duplicate", r"x\.indices must be sorted"),
    (64, "past", r"x\.indices must lie in \[0, 2000\)"),
    (100, "negative", r"x\.indices must lie in \[0, 2000\)"),
])
def test_bad_columns_in_a_threaded_transpose_are_named(threads, row, how, match):
    # a batch large enough (> 8192 entries) for the weight gradient's
    # transpose to split over threads: its checks run before anything is
    # counted or placed by column range, so a bad column is an error, not
    # an out-of-bounds write
    X = counts(np.random.default_rng(row), 128, 2000, 0.1)
    indices = X.indices.copy()
    q0, q1 = X.indptr[row], X.indptr[row + 1]
    assert q1 - q0 >= 2
    if how == "unsorted":
        indices[q0], indices[q0 + 1] = indices[q0 + 1], indices[q0]
    elif how == "duplicate":
        indices[q1 - 1] = indices[q1 - 2]
    else:
        indices[q0 + 1] = 2000 + 7 if how == "past" else -3
    x = _Raw(X.data.astype(np.float32), indices, X.indptr, X.shape)
    dW = np.full((2000, 16), 5.0, np.float32)
    before = vaefast.get_num_threads()
    try:
        vaefast.set_num_threads(threads)
        with pytest.raises(ValueError, match=match):
            ops.sparse_linear_weight_grad(x, np.ones((128, 16), np.float32), dW=dW)
    finally:
        vaefast.set_num_threads(before)
    assert np.all(dW == 5.0)  # refused before anything was written


def test_bad_dense_arguments_are_named(rng):
    X = counts(rng, 4, 6, 0.5)
    W = rng.standard_normal((6, 3)).astype(np.float32)
    y = ops.sparse_linear(X, W, activation="relu")
    with pytest.raises(ValueError, match="x has 6 features but W expects 7"):
        ops.sparse_linear(X, np.ones((7, 3), np.float32))
    with pytest.raises(ValueError, match=r"b must have shape \(3,\)"):
        ops.sparse_linear(X, W, np.ones(4))
    with pytest.raises(ValueError, match="transform must be None or 'log1p'"):
        ops.sparse_linear(X, W, transform="log")
    with pytest.raises(ValueError, match="activation must be"):
        ops.sparse_linear(X, W, activation="tanh")
    with pytest.raises(ValueError, match="dy must have 4 rows"):
        ops.sparse_linear_weight_grad(X, np.ones((5, 3)))
    with pytest.raises(ValueError, match="y is required"):
        ops.sparse_linear_weight_grad(X, np.ones((4, 3)), activation="relu")
    with pytest.raises(ValueError, match=r"y must have shape \(4, 3\)"):
        ops.sparse_linear_weight_grad(X, np.ones((4, 3)), np.ones((4, 2)), "relu")
    with pytest.raises(ValueError, match="accumulate=True needs dW and db"):
        ops.sparse_linear_weight_grad(X, np.ones((4, 3)), accumulate=True)
    with pytest.raises(ValueError, match=r"dW must have shape \(6, 3\)"):
        ops.sparse_linear_weight_grad(X, np.ones((4, 3)), dW=np.ones((5, 3), np.float32))
    with pytest.raises(ValueError, match="rows must lie in"):
        ops.gather_csr_rows(X, [4])
    with pytest.raises(ValueError, match="rows must lie in"):
        ops.gather_csr_rows(X, [-1])
    assert y.shape == (4, 3)


def test_nonfinite_dense_inputs_are_named(rng):
    X = _csr([1, 2], [0, 2], [0, 1, 2], (2, 4))  # feature 1 and 3 unused
    W = rng.standard_normal((4, 3)).astype(np.float32)
    bad = W.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="W contains NaN"):
        ops.sparse_linear(X, bad)
    unread = W.copy()
    unread[1, 0] = np.nan  # a row no entry reads: not read, not checked (documented)
    np.testing.assert_array_equal(ops.sparse_linear(X, unread), ops.sparse_linear(X, W))
    with pytest.raises(ValueError, match="b contains NaN"):
        ops.sparse_linear(X, W, np.array([0, np.inf, 0]))
    dy = np.ones((2, 3), np.float32)
    dy[1, 2] = np.nan
    with pytest.raises(ValueError, match="dy contains NaN"):
        ops.sparse_linear_weight_grad(X, dy)
    y = np.ones((2, 3), np.float32)
    y[0, 0] = np.inf
    with pytest.raises(ValueError, match="y contains NaN"):
        ops.sparse_linear_weight_grad(X, np.ones((2, 3)), y, "relu")
    huge = np.full((4, 3), 3e38, np.float32)
    two = _csr([2, 2], [0, 2], [0, 2, 2], (2, 4))
    with pytest.raises(ops.Float32OverflowError, match="overflows float32"):
        ops.sparse_linear(two, huge)


@pytest.mark.parametrize("threads", [1, 2])
def test_weight_grad_same_bits_whatever_dy_alignment(threads):
    # dy whose rows do not start on 64-byte boundaries is copied first
    # (csr.c): the gradient must not depend on where dy lies in memory
    rng = np.random.default_rng(31)
    X = counts(rng, 128, 2000, 0.1)
    base = np.empty(128 * 48 + 64, np.float32)
    start = (-base.ctypes.data % 64) // 4
    results = []
    before = vaefast.get_num_threads()
    try:
        vaefast.set_num_threads(threads)
        dy0 = rng.standard_normal((128, 48)).astype(np.float32)
        for shift in (0, 1, 3):  # floats past a 64-byte boundary
            dy = base[start + shift:start + shift + 128 * 48].reshape(128, 48)
            dy[...] = dy0
            results.append(ops.sparse_linear_weight_grad(X, dy, None, None, "log1p"))
        strided = np.zeros((128, 52), np.float32)[:, :48]  # rows 208 bytes apart
        strided[...] = dy0
        results.append(ops.sparse_linear_weight_grad(X, strided, None, None, "log1p"))
    finally:
        vaefast.set_num_threads(before)
    for dW, db in results[1:]:
        np.testing.assert_array_equal(dW, results[0][0])
        np.testing.assert_array_equal(db, results[0][1])
