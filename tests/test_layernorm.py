"""Layer normalisation without affine (scVI's LayerNorm(elementwise_affine=
False), csrc/norm.c) against the float64 twin, central differences and
torch.nn.functional.layer_norm. Tolerances as in test_batchnorm.py.
"""

import numpy as np
import pytest

import vaefast
from vaefast import ops
from vaefast.reference import norm as twin

EPS = 1e-5  # torch.nn.LayerNorm's default, which scvi-tools keeps


def inputs(M=13, N=37, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.standard_normal((M, N)) * 3 + rng.standard_normal((M, 1))).astype(np.float32)
    return y, rng.standard_normal((M, N))


@pytest.mark.parametrize("relu", [False, True])
def test_forward_and_backward_match_twin_and_central_differences(relu, central_differences):
    y, w = inputs()
    out, cache = ops.layer_norm(y, EPS, relu)
    y64 = y.astype(np.float64)
    want_out, want_xhat, want_inv = twin.layer_norm_forward(y64, EPS, relu)
    np.testing.assert_allclose(out, want_out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cache.xhat, want_xhat, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cache.inv_std, want_inv, rtol=1e-6)
    dz = (w * (out > 0) if relu else w).astype(np.float32)
    dy = ops.layer_norm_backward(dz, cache)
    want = central_differences(
        lambda a: float((w * twin.layer_norm_forward(a, EPS, relu)[0]).sum()), y64)
    np.testing.assert_allclose(dy, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())
    np.testing.assert_allclose(dy, twin.layer_norm_backward(dz, want_xhat, want_inv),
                               rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_matches_torch_layer_norm():
    torch = pytest.importorskip("torch")
    y, w = inputs(M=20, N=130, seed=1)
    yt = torch.tensor(y, dtype=torch.float64, requires_grad=True)
    ref = torch.relu(torch.nn.functional.layer_norm(yt, (130,), eps=EPS))
    (torch.tensor(w) * ref).sum().backward()
    out, cache = ops.layer_norm(y, EPS, relu=True)
    np.testing.assert_allclose(out, ref.detach().numpy(), rtol=1e-5, atol=1e-5)
    dy = ops.layer_norm_backward((w * (out > 0)).astype(np.float32), cache)
    want = yt.grad.numpy()
    np.testing.assert_allclose(dy, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def test_bit_identical_for_1_2_3_threads(threads_setting):
    y, w = inputs(M=900, N=250, seed=2)
    runs = []
    for threads in (1, 2, 3):
        vaefast.set_num_threads(threads)
        out, cache = ops.layer_norm(y, EPS, True)
        runs.append([out, cache.xhat, cache.inv_std,
                     ops.layer_norm_backward((w * (out > 0)).astype(np.float32), cache)])
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_array_equal(a, b)


def test_bad_arguments_name_themselves():
    y, _ = inputs(M=3, N=4)
    for kw, exc, name in [(dict(y=np.zeros((3, 0))), ValueError, "y"),
                          (dict(y=np.full((2, 2), np.inf)), ValueError, "y"),
                          (dict(y=y, eps=-1.0), ValueError, "eps"),
                          (dict(y=y, relu="yes"), TypeError, "relu")]:
        with pytest.raises(exc, match=name):
            ops.layer_norm(**kw)
    _, cache = ops.layer_norm(y)
    with pytest.raises(ValueError, match="dz"):
        ops.layer_norm_backward(np.zeros((2, 4)), cache)
