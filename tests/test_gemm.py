"""The fused GEMM core against float64 NumPy (the reference twins).

Tolerance: a float32 dot product of length K has rounding error bounded by
about K·u·Σ|a_k·b_k| (u = 2^-24), and typically sqrt(K)·u·Σ|a_k·b_k|. We
assert |got − exact| <= 8·sqrt(K+1)·u·(|a|·|b|)_ij + tiny, computed per
entry from the absolute product, so the bound scales with the data and a
wrong index or a missing term (an error of order |a|·|b|) cannot pass.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import vaefast
from vaefast import ops
from vaefast import reference as ref

U = 2.0**-24


def assert_product_close(got, exact, abs_a, abs_b, K):
    bound = 8 * np.sqrt(K + 1) * U * (abs_a @ abs_b) + 1e-30
    err = np.abs(got.astype(np.float64) - exact)
    assert np.all(err <= bound), f"max excess {np.max(err - bound)}"


def strided(rng, rows, cols, pad):
    """A (rows, cols) float32 view into a wider buffer: row stride cols + pad."""
    base = rng.standard_normal((rows, cols + pad)).astype(np.float32)
    return base[:, :cols]


dims = st.one_of(st.integers(1, 40), st.sampled_from([11, 12, 13, 31, 32, 33, 47, 48, 97,
                                                       191, 193, 255, 257, 300]))


@given(M=dims, K=dims, N=dims, pad=st.sampled_from([0, 0, 1, 5]),
       act=st.sampled_from([None, "relu"]), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_linear_forward(M, K, N, pad, act, bias, seed):
    rng = np.random.default_rng(seed)
    x, W = strided(rng, M, K, pad), strided(rng, K, N, pad)
    b = rng.standard_normal(N).astype(np.float32) if bias else None
    y = ops.linear(x, W, b, act)
    exact = ref.linear_forward(x.astype(np.float64), W.astype(np.float64),
                               None if b is None else b.astype(np.float64), act)
    abs_a = np.abs(np.hstack([x, np.ones((M, 1), np.float32)]))
    abs_b = np.abs(np.vstack([W, np.zeros((1, N), np.float32) if b is None else b[None]]))
    if act == "relu":  # ReLU is 1-Lipschitz, so the product bound carries over
        assert np.all(y >= 0)
    assert_product_close(y, exact, abs_a, abs_b, K + 1)
    assert y.dtype == np.float32 and y.shape == (M, N)


@pytest.mark.parametrize("K, N", [(784, 400), (800, 200), (20, 400), (400, 64), (70, 63)])
def test_one_row_forward(K, N):
    # one sample (the serving case) has its own path on the SIMD sets: rows
    # of B read in place several vectors wide, K in one or two blocks
    rng = np.random.default_rng(K + N)
    x, W = strided(rng, 1, K, 3), strided(rng, K, N, 5)
    b = rng.standard_normal(N).astype(np.float32)
    y = ops.linear(x, W, b, "relu")
    exact = ref.linear_forward(x.astype(np.float64), W.astype(np.float64),
                               b.astype(np.float64), "relu")
    assert_product_close(y, exact, np.abs(np.hstack([x, [[1.0]]])), np.abs(np.vstack([W, b])),
                         K + 1)
    raw = ops.matmul(x, W)
    assert_product_close(raw, x.astype(np.float64) @ W, np.abs(x), np.abs(W), K)
    # and the row does not depend on the rows batched with it
    X = np.vstack([x, rng.standard_normal((7, K)).astype(np.float32)])
    np.testing.assert_array_equal(ops.linear(X, W, b, "relu")[:1], y)


@given(M=dims, K=dims, N=dims, pad=st.sampled_from([0, 3]), act=st.sampled_from([None, "relu"]),
       need_dx=st.booleans(), seed=st.integers(0, 2**16))
def test_linear_backward(M, K, N, pad, act, need_dx, seed):
    rng = np.random.default_rng(seed)
    x, W, dy = strided(rng, M, K, pad), strided(rng, K, N, pad), strided(rng, M, N, pad)
    y = ops.linear(x, W, None, act)
    dx, dW, db = ops.linear_backward(x, W, dy, y if act else None, act, need_dx=need_dx)
    edx, edW, edb = ref.linear_backward(x.astype(np.float64), W.astype(np.float64),
                                        dy.astype(np.float64), y, act)
    dz = np.abs(np.where(y > 0, dy, 0) if act else dy)
    assert_product_close(dW, edW, np.abs(x).T, dz, M)
    assert_product_close(db[None], edb[None], np.ones((1, M)), dz, M)
    if need_dx:
        assert_product_close(dx, edx, dz, np.abs(W).T, N)
    else:
        assert dx is None


@given(M=dims, K=dims, N=dims, ta=st.booleans(), tb=st.booleans(), seed=st.integers(0, 2**16))
def test_matmul_transposes(M, K, N, ta, tb, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((K, M) if ta else (M, K)).astype(np.float32)
    b = rng.standard_normal((N, K) if tb else (K, N)).astype(np.float32)
    A = a.T if ta else a
    B = b.T if tb else b
    c = ops.matmul(a, b, trans_a=ta, trans_b=tb)
    assert_product_close(c, A.astype(np.float64) @ B, np.abs(A), np.abs(B), K)


@pytest.mark.parametrize("K", [29, 20, 40, 8, 13])  # the widths of different edge kernels
def test_c_level_mask_and_accumulate(K):
    """The C entry points' fused extras: the dX mask and dW/db accumulation."""
    rng = np.random.default_rng(1)
    M, N = 37, 45
    dy = rng.standard_normal((M, N)).astype(np.float32)
    W = rng.standard_normal((K, N)).astype(np.float32)
    mask = rng.standard_normal((M, K)).astype(np.float32)
    dx = np.empty((M, K), np.float32)
    vaefast._core.gemm_linear_backward_input(dy, W, mask, dx)
    exact = np.where(mask > 0, dy.astype(np.float64) @ W.T, 0)
    assert_product_close(dx, exact, np.abs(dy), np.abs(W).T, N)
    assert np.all(dx[mask <= 0] == 0)

    x = rng.standard_normal((M, K)).astype(np.float32)
    dW = rng.standard_normal((K, N)).astype(np.float32)
    db = rng.standard_normal(N).astype(np.float32)
    dW0, db0 = dW.astype(np.float64), db.astype(np.float64)
    vaefast._core.gemm_linear_backward_weight(x, dy, dW, db, True)
    assert_product_close(dW, dW0 + x.T.astype(np.float64) @ dy,
                         np.hstack([np.abs(x).T, np.ones((K, 1))]),
                         np.vstack([np.abs(dy), np.abs(dW0).max() * np.ones((1, N))]), M + 1)
    np.testing.assert_allclose(db, db0 + dy.astype(np.float64).sum(0), rtol=1e-5, atol=1e-5)


def test_slices_need_no_copy():
    """mu and logvar halves of one head output are used in place."""
    rng = np.random.default_rng(2)
    head = rng.standard_normal((16, 40)).astype(np.float32)
    mu = head[:, :20]
    W = rng.standard_normal((20, 7)).astype(np.float32)
    out = np.zeros((16, 14), np.float32)
    y = ops.linear(mu, W, out=out[:, 7:])
    assert np.shares_memory(y, out)
    np.testing.assert_allclose(out[:, 7:], mu.astype(np.float64) @ W, rtol=1e-5, atol=1e-5)
    assert np.all(out[:, :7] == 0)


def test_k_zero_gives_bias_then_activation():
    b = np.array([1.0, -2.0, 0.5], np.float32)
    y = ops.linear(np.zeros((4, 0), np.float32), np.zeros((0, 3), np.float32), b, "relu")
    np.testing.assert_array_equal(y, np.tile([1.0, 0.0, 0.5], (4, 1)))


def test_empty_batch():
    y = ops.linear(np.zeros((0, 5)), np.ones((5, 3)), np.ones(3))
    assert y.shape == (0, 3)


def test_conversions_are_accepted():
    rng = np.random.default_rng(3)
    x64 = rng.standard_normal((9, 6))
    W = np.asfortranarray(rng.standard_normal((6, 5)))
    xi = (x64 * 3).astype(np.int32)
    np.testing.assert_allclose(ops.linear(x64, W), x64 @ W, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ops.linear(xi, W), xi @ W, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ops.linear(x64[::-1], W), x64[::-1] @ W, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("call, match", [
    (lambda: ops.linear(np.ones((2, 3)), np.ones((4, 5))), "x has 3 features"),
    (lambda: ops.linear(np.ones(3), np.ones((3, 5))), "x must be 2-dimensional"),
    (lambda: ops.linear(np.ones((2, 3)), np.ones((3, 5)), np.ones(4)), "b must have shape"),
    (lambda: ops.linear(np.ones((2, 3)), np.ones((3, 5)), activation="tanh"), "activation"),
    (lambda: ops.linear(np.ones((2, 3)), np.ones((3, 5)), out=np.ones((2, 5))), "out must have dtype"),
    (lambda: ops.linear(np.ones((2, 3)), np.ones((3, 5)), out=np.ones((2, 4), np.float32)), "out must have shape"),
    (lambda: ops.linear_backward(np.ones((2, 3)), np.ones((3, 5)), np.ones((2, 5)), activation="relu"), "y is required"),
    (lambda: ops.linear_backward(np.ones((2, 3)), np.ones((3, 5)), np.ones((2, 4))), "dy must have shape"),
    (lambda: ops.matmul(np.ones((2, 3)), np.ones((4, 5))), "inner dimensions"),
    (lambda: ops.matmul(np.array([["a"]]), np.ones((1, 1))), "a must hold real numbers"),
])
def test_errors_name_the_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


@pytest.mark.parametrize("shape", [(300, 784, 400), (1024, 400, 40), (200, 20, 400)])
def test_bit_identical_across_thread_counts(shape):
    M, K, N = shape
    rng = np.random.default_rng(4)
    x = rng.standard_normal((M, K)).astype(np.float32)
    W = rng.standard_normal((K, N)).astype(np.float32)
    b = rng.standard_normal(N).astype(np.float32)
    dy = rng.standard_normal((M, N)).astype(np.float32)
    before = vaefast.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            vaefast.set_num_threads(n)
            y = ops.linear(x, W, b, "relu")
            results.append((y, *ops.linear_backward(x, W, dy, y, "relu")))
    finally:
        vaefast.set_num_threads(before)
    for a, b_ in zip(*results):
        np.testing.assert_array_equal(a, b_)


def test_large_block_boundaries():
    """Sizes that cross the K, M and N cache blocks of every kernel set."""
    rng = np.random.default_rng(5)
    M, K, N = 421, 600, 4100 // 8
    x = rng.standard_normal((M, K)).astype(np.float32)
    W = rng.standard_normal((K, N)).astype(np.float32)
    assert_product_close(ops.matmul(x, W), x.astype(np.float64) @ W, np.abs(x), np.abs(W), K)


# ------------------------------------------------ NaN / Inf rejection
# The GEMM epilogue flags a non-finite pre-activation (or db) value; only
# then are the inputs scanned to name the culprit. Shapes: one that reads A
# and B in place (small), one with several K blocks (K > KC = 256) and
# edge tiles, one that packs everything.
NONFINITE_SHAPES = [(37, 29, 45), (50, 300, 70), (130, 20, 520)]
BAD_VALUES = [np.nan, np.inf, -np.inf]


def layer_data(rng, M, K, N):
    x = rng.standard_normal((M, K)).astype(np.float32)
    W = rng.standard_normal((K, N)).astype(np.float32)
    b = rng.standard_normal(N).astype(np.float32)
    dy = rng.standard_normal((M, N)).astype(np.float32)
    y = np.maximum(x @ W + b, 0)
    return dict(x=x, W=W, b=b, dy=dy, y=y)


def poke(rng, arr, value, where=None):
    """A copy of arr with `value` at one random position (of `where`, a mask)."""
    arr = arr.copy()
    flat = np.flatnonzero(where) if where is not None else np.arange(arr.size)
    arr.flat[rng.choice(flat)] = value
    return arr


CALLS = {
    "linear": (("x", "W", "b"), lambda d: ops.linear(d["x"], d["W"], d["b"])),
    "linear_relu": (("x", "W", "b"), lambda d: ops.linear(d["x"], d["W"], d["b"], "relu")),
    "linear_backward": (("x", "W", "dy"), lambda d: ops.linear_backward(d["x"], d["W"], d["dy"])),
    "linear_backward_relu": (("x", "W", "dy", "y"),
                             lambda d: ops.linear_backward(d["x"], d["W"], d["dy"], d["y"], "relu")),
    "matmul": (("x", "W"), lambda d: ops.matmul(d["x"], d["W"])),
    # a · bᵀ: with few rows of a, computed as b · aᵀ and transposed back
    "matmul_trans_b": (("x", "W"),
                       lambda d: ops.matmul(d["x"], np.ascontiguousarray(d["W"].T), trans_b=True)),
}
ARG_NAME = {"matmul": {"x": "a", "W": "b"}, "matmul_trans_b": {"x": "a", "W": "b"}}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_nonfinite_input_is_named(kernel_set, call):
    names, fn = CALLS[call]
    rng = np.random.default_rng(10)
    for shape in NONFINITE_SHAPES:
        data = layer_data(rng, *shape)
        fn(data)  # finite data: no false alarm
        for name in names:
            shown = ARG_NAME.get(call, {}).get(name, name)
            for value in BAD_VALUES:
                bad = dict(data, **{name: poke(rng, data[name], value)})
                with pytest.raises(ValueError, match=f"^{shown} contains NaN or infinity"):
                    fn(bad)


def test_relu_does_not_hide_nonfinite(kernel_set):
    """ReLU turns a -inf pre-activation into 0 and the backward mask drops
    dy where y <= 0; the check looks before both."""
    rng = np.random.default_rng(11)
    for M, K, N in NONFINITE_SHAPES:
        d = layer_data(rng, M, K, N)
        x_pos = np.abs(d["x"]) + 0.1
        W = d["W"].copy()
        W[rng.integers(K), rng.integers(N)] = -np.inf  # that column's y is all -inf
        with pytest.raises(ValueError, match="^W contains"):
            ops.linear(x_pos, W, d["b"], "relu")
        b = poke(rng, d["b"], -np.inf)  # a whole column of -inf pre-activations
        with pytest.raises(ValueError, match="^b contains"):
            ops.linear(d["x"], d["W"], b, "relu")
        dead = d["y"] <= 0
        for value in BAD_VALUES:
            dy = poke(rng, d["dy"], value, where=dead)  # masked out by the ReLU
            with pytest.raises(ValueError, match="^dy contains"):
                ops.linear_backward(d["x"], d["W"], dy, d["y"], "relu")
            with pytest.raises(ValueError, match="^dy contains"):
                ops.linear_backward(d["x"], d["W"], dy, d["y"], "relu", need_dx=False)
            y = poke(rng, d["y"], value)  # NaN and -inf look like y <= 0
            with pytest.raises(ValueError, match="^y contains"):
                ops.linear_backward(d["x"], d["W"], d["dy"], y, "relu", need_dx=False)


def test_overflow_is_reported(kernel_set):
    """Finite float32 inputs whose products overflow: not a NaN input."""
    rng = np.random.default_rng(12)
    x = rng.uniform(1, 2, (20, 30)).astype(np.float32) * np.float32(1e20)
    W = rng.uniform(1, 2, (30, 10)).astype(np.float32) * np.float32(1e20)
    dy = rng.uniform(1, 2, (20, 10)).astype(np.float32) * np.float32(1e20)
    for call in (lambda: ops.linear(x, W), lambda: ops.linear(x, W, None, "relu"),
                 lambda: ops.matmul(x, W), lambda: ops.linear_backward(x, W, dy)):
        with pytest.raises(ValueError, match="overflows float32") as info:
            call()
        assert isinstance(info.value, OverflowError)
    # one large bias entry overflows after the product: still an overflow
    b = np.zeros(10, np.float32)
    b[3] = np.float32(3e38)
    with pytest.raises(ValueError, match="overflows float32"):
        ops.linear(np.ones((4, 30), np.float32), np.full((30, 10), 1e37, np.float32), b)


def test_float64_too_large_for_float32():
    x = np.full((3, 4), 1e300)
    with pytest.raises(ValueError, match="^x has values too large for float32"):
        ops.linear(x, np.ones((4, 2)))


def test_nonfinite_in_empty_products():
    """No GEMM result carries the check: the inputs are scanned instead."""
    W = np.full((5, 3), np.nan, np.float32)
    with pytest.raises(ValueError, match="^W contains"):
        ops.linear(np.zeros((0, 5), np.float32), W)
    with pytest.raises(ValueError, match="^x contains"):
        ops.linear(np.full((4, 5), np.inf, np.float32), np.zeros((5, 0), np.float32))
    with pytest.raises(ValueError, match="^a contains"):
        ops.matmul(np.full((4, 5), np.nan, np.float32), np.zeros((5, 0), np.float32))
    with pytest.raises(ValueError, match="^x contains"):
        ops.linear_backward(np.full((4, 5), np.nan, np.float32), np.zeros((5, 0), np.float32),
                            np.zeros((4, 0), np.float32))


def test_entry_points_flag_nan_after_writing_every_output():
    """Every public GEMM entry point reports a NaN before the activation, and
    still writes its whole output (the NaN row stays NaN through the ReLU)."""
    x = np.ones((13, 7), np.float32)
    x[2, 3] = np.nan
    W = np.ones((7, 40), np.float32)
    y = np.empty((13, 40), np.float32)
    assert vaefast._core.gemm_linear_forward(x, W, None, True, y) is True
    assert np.isnan(y[2]).all()
    np.testing.assert_array_equal(np.delete(y, 2, axis=0), 7.0)
    x[2, 3] = 1.0
    assert vaefast._core.gemm_linear_forward(x, W, None, True, y) is False


def test_backward_relu_mask_is_folded():
    """dz = dy ⊙ [y > 0] is applied while packing: same as masking first."""
    rng = np.random.default_rng(13)
    for M, K, N in NONFINITE_SHAPES:
        d = layer_data(rng, M, K, N)
        dz = np.where(d["y"] > 0, d["dy"], np.float32(0))
        got = ops.linear_backward(d["x"], d["W"], d["dy"], d["y"], "relu")
        plain = ops.linear_backward(d["x"], d["W"], dz)
        for g, p in zip(got, plain):
            np.testing.assert_array_equal(g, p)


def test_fast_and_checked_paths_agree():
    """float32 arrays take the binding's fast path; anything converted
    (here float64 and a Python list for b) takes the checked Python path.
    Both must give the same bits."""
    rng = np.random.default_rng(14)
    x, W, dy = (rng.standard_normal(s) for s in ((33, 21), (21, 45), (33, 45)))
    b = rng.standard_normal(45)
    f = lambda a: a.astype(np.float32)  # noqa: E731
    y = ops.linear(f(x), f(W), f(b), "relu")
    np.testing.assert_array_equal(y, ops.linear(x, W, list(b), "relu"))
    np.testing.assert_array_equal(ops.matmul(f(x), f(W)), ops.matmul(x, W))
    np.testing.assert_array_equal(ops.matmul(f(W), f(x), True, True),
                                  ops.matmul(W, x, True, True))
    for got, want in zip(ops.linear_backward(f(x), f(W), f(dy), y, "relu"),
                         ops.linear_backward(x, W, dy, y.astype(np.float64), "relu")):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_backward_into_given_arrays(precision):
    """linear_backward's dW= and db= receive exactly the bits of fresh
    outputs, on the fast path (float32 in) and the checked one (float64 in),
    and are the arrays returned; stale contents are overwritten."""
    rng = np.random.default_rng(15)
    x, W, dy = (rng.standard_normal(s).astype(np.float32) for s in ((37, 29), (29, 51), (37, 51)))
    y = ops.linear(x, W, None, "relu")
    _, want_dW, want_db = ops.linear_backward(x, W, dy, y, "relu", precision=precision)
    for xin in (x, x.astype(np.float64)):
        dW = np.full((29, 51), np.nan, np.float32)
        db = np.full(51, np.nan, np.float32)
        dx, gW, gb = ops.linear_backward(xin, W, dy, y, "relu", need_dx=False,
                                         precision=precision, dW=dW, db=db)
        assert dx is None and gW is dW and gb is db
        np.testing.assert_array_equal(dW, want_dW)
        np.testing.assert_array_equal(db, want_db)


@pytest.mark.parametrize("name, bad, match", [
    ("dW", np.empty((51, 29), np.float32), "dW must have shape"),
    ("dW", np.empty((29, 51), np.float64), "dW must have dtype float32"),
    ("dW", np.empty((29, 102), np.float32)[:, ::2], "dW must be C-contiguous"),
    ("dW", np.empty((30, 51), np.float32)[1:], None),  # contiguous slice: accepted
    ("db", np.empty(50, np.float32), "db must have shape"),
    ("db", [0.0] * 51, "db must be a numpy.ndarray"),
])
def test_backward_given_arrays_are_checked(name, bad, match):
    x, W, dy = np.ones((3, 29), np.float32), np.ones((29, 51), np.float32), np.ones((3, 51), np.float32)
    if match is None:
        np.testing.assert_array_equal(ops.linear_backward(x, W, dy, **{name: bad})[1],
                                      ops.linear_backward(x, W, dy)[1])
        return
    with pytest.raises((TypeError, ValueError), match=match):
        ops.linear_backward(x, W, dy, **{name: bad})


def test_read_only_out_is_rejected():
    out = np.empty((2, 5), np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writeable"):
        ops.linear(np.ones((2, 3), np.float32), np.ones((3, 5), np.float32), out=out)


@pytest.mark.parametrize("N", [8, 16, 20, 24, 40, 48, 56, 400])
def test_narrow_edge_panels_read_in_place(kernel_set, N):
    """Few rows: B is read in place, edge panels too when their kernel reads
    exactly their width (8/16/24 columns); others are packed. 1 and 2
    threads give the same bits."""
    rng = np.random.default_rng(15)
    M, K = 33, 50
    x, W = strided(rng, M, K, 3), strided(rng, K, N, 5)
    b = rng.standard_normal(N).astype(np.float32)
    before = vaefast.get_num_threads()
    try:
        got = []
        for n in (1, 2):
            vaefast.set_num_threads(n)
            got.append(ops.linear(x, W, b, "relu"))
    finally:
        vaefast.set_num_threads(before)
    np.testing.assert_array_equal(got[0], got[1])
    exact = np.maximum(x.astype(np.float64) @ W + b, 0)
    abs_a = np.abs(np.hstack([x, np.ones((M, 1), np.float32)]))
    abs_b = np.abs(np.vstack([W, b[None]]))
    assert_product_close(got[0], exact, abs_a, abs_b, K + 1)
    assert_product_close(ops.matmul(x, W), x.astype(np.float64) @ W, np.abs(x), np.abs(W), K)
