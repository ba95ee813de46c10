"""Categorical covariates as a gather-add (csrc/covariates.c, vaefast.ops).

Oracles: the float64 one-hot twin (vaefast.reference.covariates), vaefast's
own dense GEMM on a materialised one-hot matrix, and the adjoint identity
<onehot·T, W> = <T, onehotᵀ·W> that ties the scatter-add to the gather-add.

Bounds (u = 2**-24, float32's unit roundoff): inputs are float32, so the
twin's float64 result is exact to ~1e-16 relative. The gather-add sums K + 1
float32 numbers per element (y, then the K table rows in order): its error
is at most K·u·(|y| + Σ_k |t_k|) (Higham, Accuracy and Stability of
Numerical Algorithms, 2nd ed., eq. 4.4, first order). A one-hot GEMM's
products are exact (1·t or 0·t) and exact zeros add exactly, so it sums the
same K numbers in another order: the two agree within twice that bound, and
exactly for K = 1 onto y = 0. A scatter-add entry sums the n rows that hit
it: error at most n·u·Σ|dy| over those rows (that sum is the twin's
scatter-add of |dy|; n <= M bounds n).
"""

import numpy as np
import pytest

import vaefast
from vaefast import ops
from vaefast.reference import covariates as twin

U = 2.0**-24
LEVELS = [3, 5, 2]


def make(rng, M=257, N=131, levels=LEVELS):
    codes = np.stack([rng.integers(0, n, M) for n in levels], axis=1)
    y = rng.standard_normal((M, N)).astype(np.float32)
    table = rng.standard_normal((sum(levels), N)).astype(np.float32)
    return y, codes, table


def gather_bound(y, codes, levels, table):
    K = len(levels)
    return K * U * twin.gather_add(np.abs(y).astype(np.float64), codes, levels,
                                   np.abs(table).astype(np.float64))


@pytest.mark.parametrize("activation", ["none", "relu"])
def test_gather_add_matches_the_twin(rng, activation):
    y, codes, table = make(rng)
    got = ops.covariate_gather_add(y, codes, LEVELS, table, activation)
    want = twin.gather_add(y.astype(np.float64), codes, LEVELS, table.astype(np.float64),
                           activation)
    assert got.dtype == np.float32 and got.shape == y.shape
    assert np.all(np.abs(got - want) <= gather_bound(y, codes, LEVELS, table))
    if activation == "relu":
        assert (got >= 0).all() and (got == 0).any()


def test_gather_add_matches_a_one_hot_gemm(rng):
    y, codes, table = make(rng)
    hot = twin.onehot(codes, LEVELS, np.float32)
    dense = ops.matmul(hot, table) + y
    got = ops.covariate_gather_add(y, codes, LEVELS, table)
    assert np.all(np.abs(got - dense) <= 2 * gather_bound(y, codes, LEVELS, table))
    # one covariate onto zeros: the GEMM's single non-zero product is exact
    one = ops.covariate_gather_add(np.zeros_like(y), codes[:, 1], 5, table[3:8])
    np.testing.assert_array_equal(one, ops.matmul(twin.onehot(codes[:, 1:2], [5], np.float32),
                                                  table[3:8]))
    np.testing.assert_array_equal(one, table[3:8][codes[:, 1]])


def scatter_bound(dy, codes, levels):
    return dy.shape[0] * U * twin.scatter_add(np.abs(dy).astype(np.float64), codes, levels)


def test_scatter_add_matches_the_twin_and_a_one_hot_gemm(rng):
    dy, codes, _ = make(rng)
    got = ops.covariate_scatter_add(dy, codes, LEVELS)
    want = twin.scatter_add(dy.astype(np.float64), codes, LEVELS)
    bound = scatter_bound(dy, codes, LEVELS)
    assert got.shape == (sum(LEVELS), dy.shape[1])
    assert np.all(np.abs(got - want) <= bound)
    dense = ops.matmul(twin.onehot(codes, LEVELS, np.float32), dy, trans_a=True)
    assert np.all(np.abs(got - dense) <= 2 * bound)
    # each entry is its rows' sum in row order, as a float32 loop does it
    np.testing.assert_array_equal(got, _in_order(dy, codes, LEVELS, np.zeros_like(got)))


def _in_order(dy, codes, levels, start):
    """start + onehotᵀ·dy in float32, adding dy's rows one after another."""
    acc = start.copy()
    offsets = np.concatenate([[0], np.cumsum(levels)[:-1]])
    for i in range(dy.shape[0]):
        for k in range(len(levels)):
            acc[offsets[k] + codes[i, k]] += dy[i]
    return acc


def test_scatter_add_through_the_relu(rng):
    pre, codes, table = make(rng)
    y = ops.covariate_gather_add(pre, codes, LEVELS, table, "relu")
    dy = rng.standard_normal(y.shape).astype(np.float32)
    got = ops.covariate_scatter_add(dy, codes, LEVELS, y=y)
    dz = np.where(y > 0, dy, np.float32(0))
    np.testing.assert_array_equal(got, ops.covariate_scatter_add(dz, codes, LEVELS))
    want = twin.scatter_add(dy.astype(np.float64), codes, LEVELS, y.astype(np.float64))
    assert np.all(np.abs(got - want) <= scatter_bound(dz, codes, LEVELS))
    with pytest.raises(ValueError, match="y must have the shape of dy"):
        ops.covariate_scatter_add(dy, codes, LEVELS, y=y[:5])


def test_scatter_add_is_the_adjoint_of_the_gather_add(rng):
    # d/dT Σ W ⊙ (onehot·T) = onehotᵀ·W: checked in float64 by central differences
    # on the twin, then the kernel's against the twin's
    _, codes, table = make(rng, M=40, N=6)
    W = rng.standard_normal((40, 6))
    f = lambda t: float(np.sum(W * twin.gather_add(np.zeros((40, 6)), codes, LEVELS, t)))
    h = 1e-3  # f is linear in t: central differences are exact up to rounding
    fd = np.zeros(table.shape)
    for idx in np.ndindex(table.shape):
        tp, tm = table.astype(np.float64), table.astype(np.float64)
        tp[idx] += h
        tm[idx] -= h
        fd[idx] = (f(tp) - f(tm)) / (2 * h)
    want = twin.scatter_add(W, codes, LEVELS)
    np.testing.assert_allclose(fd, want, rtol=1e-9, atol=1e-9)
    got = ops.covariate_scatter_add(W.astype(np.float32), codes, LEVELS)
    Wf = W.astype(np.float32).astype(np.float64)  # the kernel's input, exactly
    assert np.all(np.abs(got - twin.scatter_add(Wf, codes, LEVELS))
                  <= scatter_bound(W.astype(np.float32), codes, LEVELS))


def test_accumulate_and_out(rng):
    dy, codes, _ = make(rng, M=50, N=70)
    first = ops.covariate_scatter_add(dy, codes, LEVELS)
    out = first.copy()
    again = ops.covariate_scatter_add(dy, codes, LEVELS, out=out, accumulate=True)
    assert again is out
    np.testing.assert_array_equal(out, _in_order(dy, codes, LEVELS, first))
    y, _, table = make(rng, M=50, N=70)
    inplace = y.copy()
    res = ops.covariate_gather_add(inplace, codes, LEVELS, table, out=inplace)
    assert res is inplace
    np.testing.assert_array_equal(res, ops.covariate_gather_add(y, codes, LEVELS, table))


def test_empty_inputs(rng):
    _, _, table = make(rng, N=8)
    empty = np.zeros((0, 8), np.float32)
    assert ops.covariate_gather_add(empty, np.zeros((0, 3), int), LEVELS, table).shape == (0, 8)
    out = np.ones((10, 8), np.float32)
    ops.covariate_scatter_add(empty, np.zeros((0, 3), int), LEVELS, out=out)
    assert not out.any()  # no rows: a zero gradient


@pytest.mark.parametrize("shape", [(600, 200), (70, 1000), (5000, 9)])
def test_bit_identical_for_any_thread_count(rng, threads_setting, shape):
    # (600, 200) and (70, 1000) run several column blocks of the scatter-add
    # and several row ranges of the gather-add on 2 and 3 threads
    M, N = shape
    levels = [7, 3]
    y, codes, table = make(rng, M=M, N=N, levels=levels)
    results = []
    for n in (1, 2, 3):
        vaefast.set_num_threads(n)
        g = ops.covariate_gather_add(y, codes, levels, table, "relu")
        results.append((g, ops.covariate_scatter_add(y, codes, levels, y=g)))
    for g, s in results[1:]:
        np.testing.assert_array_equal(g, results[0][0])
        np.testing.assert_array_equal(s, results[0][1])


def test_errors_name_the_argument(rng):
    y, codes, table = make(rng, M=20, N=4)
    with pytest.raises(ValueError, match=r"codes\[:, 1\] must lie in \[0, 5\), got 5"):
        bad = codes.copy()
        bad[3, 1] = 5
        ops.covariate_gather_add(y, bad, LEVELS, table)
    with pytest.raises(ValueError, match=r"codes\[:, 0\].*got -1"):
        bad = codes.copy()
        bad[0, 0] = -1
        ops.covariate_scatter_add(y, bad, LEVELS)
    with pytest.raises(TypeError, match="codes must hold integer codes"):
        ops.covariate_gather_add(y, codes + 0.5, LEVELS, table)
    with pytest.raises(TypeError, match="codes must hold integer codes"):
        ops.covariate_gather_add(y, codes > 0, LEVELS, table)
    with pytest.raises(ValueError, match=r"codes must have shape \(20, 3\)"):
        ops.covariate_gather_add(y, codes[:, :2], LEVELS, table)
    with pytest.raises(ValueError, match=r"table must have shape \(10, 4\)"):
        ops.covariate_gather_add(y, codes, LEVELS, table[:9])
    with pytest.raises(ValueError, match=r"levels\[1\] must be >= 1"):
        ops.covariate_gather_add(y, codes, [3, 0, 2], table)
    with pytest.raises(TypeError, match=r"levels\[0\] must be an integer"):
        ops.covariate_gather_add(y, codes, [3.0, 5, 2], table)
    with pytest.raises(ValueError, match="activation"):
        ops.covariate_gather_add(y, codes, LEVELS, table, "tanh")
    with pytest.raises(ValueError, match="accumulate=True needs out"):
        ops.covariate_scatter_add(y, codes, LEVELS, accumulate=True)
    with pytest.raises(ValueError, match="table contains NaN"):
        ops.covariate_gather_add(y, codes, LEVELS, np.full_like(table, np.nan))
    with pytest.raises(ops.Float32OverflowError, match="covariate_gather_add"):
        ops.covariate_gather_add(np.full_like(y, 3e38), codes, LEVELS, np.full_like(table, 3e38))


def test_the_c_core_checks_codes_itself(rng):
    # the binding is reached past the Python checks: the C entry point must
    # refuse a code out of range (never read outside the table)
    y, codes, table = make(rng, M=20, N=4)
    bad = codes.astype(np.int32)
    bad[7, 2] = 2
    levels = np.asarray(LEVELS, np.int64)
    with pytest.raises(ValueError, match="cov_gather_add"):
        vaefast._core.cov_gather_add_into(bad, levels, table, 0, y.copy())
    with pytest.raises(ValueError, match="cov_scatter_add"):
        vaefast._core.cov_scatter_add_into(bad, levels, y, None, np.zeros_like(table), 0)
    before = y.copy()
    with pytest.raises(ValueError):
        vaefast._core.cov_gather_add_into(bad, levels, table, 0, y)
    np.testing.assert_array_equal(y, before)  # checked before anything is written
