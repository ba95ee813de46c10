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


def test_c_level_mask_and_accumulate():
    """The C entry points' fused extras: the dX mask and dW/db accumulation."""
    rng = np.random.default_rng(1)
    M, K, N = 37, 29, 45
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
