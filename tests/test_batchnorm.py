"""Batch normalisation (csrc/norm.c, vaefast.ops.batch_norm*) against the
float64 NumPy twin (vaefast/reference/norm.py), central differences of the
twin, and torch.nn.BatchNorm1d (momentum 0.01, eps 0.001, scvi-tools' values).

Tolerances: the kernel sums in double and normalises in float32, so outputs
of size O(1) carry a few float32 ulps (~1e-6 relative); backward sums M
products, so 1e-5 relative with an absolute floor scaled by the largest
gradient entry.
"""

import numpy as np
import pytest

import vaefast
from vaefast import _core, ops
from vaefast.reference import norm as twin

EPS, MOM = 1e-3, 0.01


def inputs(M=37, N=130, seed=0):
    """N = 130 spans three 64-column blocks, the last one partial."""
    rng = np.random.default_rng(seed)
    y = (rng.standard_normal((M, N)) * 2 + rng.standard_normal(N)).astype(np.float32)
    gamma = rng.uniform(0.5, 1.5, N).astype(np.float32)
    beta = rng.standard_normal(N).astype(np.float32) * 0.3
    w = rng.standard_normal((M, N))  # the loss Σ w ⊙ out
    return y, gamma, beta, w


def f64(*arrays):
    return [a.astype(np.float64) for a in arrays]


@pytest.mark.parametrize("relu", [False, True])
def test_forward_and_running_statistics_match_twin(relu):
    y, gamma, beta, _ = inputs()
    rm = np.linspace(-1, 1, y.shape[1]).astype(np.float32)
    rv = np.linspace(0.5, 2, y.shape[1]).astype(np.float32)
    want_out, want_xhat, want_inv, (want_rm, want_rv) = twin.batch_norm_train(
        *f64(y, gamma, beta), EPS, relu, MOM, tuple(f64(rm, rv)))
    out, cache = ops.batch_norm(y, gamma, beta, EPS, MOM, relu, rm, rv)
    np.testing.assert_allclose(out, want_out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cache.xhat, want_xhat, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cache.inv_std, want_inv, rtol=1e-6)
    np.testing.assert_allclose(rm, want_rm, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(rv, want_rv, rtol=1e-6)
    if relu:
        assert (out == 0).any() and (out >= 0).all()


@pytest.mark.parametrize("relu", [False, True])
def test_backward_matches_twin_and_central_differences(relu, central_differences):
    y, gamma, beta, w = inputs(M=9, N=7, seed=1)
    out, cache = ops.batch_norm(y, gamma, beta, EPS, relu=relu)
    dz = (w * (out > 0) if relu else w).astype(np.float32)
    dy, dgamma, dbeta = ops.batch_norm_backward(dz, cache)
    y64, g64, b64 = f64(y, gamma, beta)

    def loss(yy=y64, gg=g64, bb=b64):
        return float((w * twin.batch_norm_train(yy, gg, bb, EPS, relu)[0]).sum())

    for got, want in [(dy, central_differences(lambda a: loss(yy=a), y64)),
                      (dgamma, central_differences(lambda a: loss(gg=a), g64)),
                      (dbeta, central_differences(lambda a: loss(bb=a), b64))]:
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())
    _, xhat, inv, _ = twin.batch_norm_train(y64, g64, b64, EPS, relu)
    for got, want in zip((dy, dgamma, dbeta), twin.batch_norm_backward(dz, xhat, g64, inv)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_matches_torch_batchnorm1d_training_and_eval():
    torch = pytest.importorskip("torch")
    y0, gamma, beta, w = inputs(M=20, N=70, seed=2)
    bn = torch.nn.BatchNorm1d(70, eps=EPS, momentum=MOM, dtype=torch.float64)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(gamma, dtype=torch.float64))
        bn.bias.copy_(torch.tensor(beta, dtype=torch.float64))
    rm, rv = np.zeros(70, np.float32), np.ones(70, np.float32)  # torch's initial state
    for step in range(3):  # the running statistics accumulate over steps
        y = (y0 + step).astype(np.float32)
        bn.train()
        yt = torch.tensor(y, dtype=torch.float64, requires_grad=True)
        ref = torch.relu(bn(yt))
        (torch.tensor(w) * ref).sum().backward()
        out, cache = ops.batch_norm(y, gamma, beta, EPS, MOM, True, rm, rv)
        np.testing.assert_allclose(out, ref.detach().numpy(), rtol=1e-5, atol=1e-5)
        dy, dgamma, dbeta = ops.batch_norm_backward((w * (out > 0)).astype(np.float32), cache)
        for got, want in [(dy, yt.grad), (dgamma, bn.weight.grad), (dbeta, bn.bias.grad)]:
            want = want.numpy()
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())
        bn.weight.grad = bn.bias.grad = None
        np.testing.assert_allclose(rm, bn.running_mean.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(rv, bn.running_var.numpy(), rtol=1e-5)
    bn.eval()
    ref = torch.relu(bn(torch.tensor(y0, dtype=torch.float64))).detach().numpy()
    got = ops.batch_norm_inference(y0, gamma, beta, rm, rv, EPS, relu=True)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    want = twin.batch_norm_infer(*f64(y0, gamma, beta, rm, rv), EPS, True)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_bit_identical_for_1_2_3_threads(threads_setting):
    y, gamma, beta, w = inputs(M=700, N=300, seed=3)  # 210,000 elements: threaded
    runs = []
    for threads in (1, 2, 3):
        vaefast.set_num_threads(threads)
        rm, rv = np.zeros(300, np.float32), np.ones(300, np.float32)
        out, cache = ops.batch_norm(y, gamma, beta, EPS, MOM, True, rm, rv)
        grads = ops.batch_norm_backward((w * (out > 0)).astype(np.float32), cache)
        inf = ops.batch_norm_inference(y, gamma, beta, rm, rv, EPS, True)
        runs.append([out, cache.xhat, cache.inv_std, rm, rv, *grads, inf])
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_array_equal(a, b)


def test_bad_arguments_name_themselves():
    y, gamma, beta, _ = inputs(M=4, N=3)
    cases = [
        (dict(y=y[:1]), ValueError, "y"),
        (dict(gamma=gamma[:2]), ValueError, "gamma"),
        (dict(beta=np.full(3, np.nan)), ValueError, "beta"),
        (dict(eps=0.0), ValueError, "eps"),
        (dict(momentum=1.5), ValueError, "momentum"),
        (dict(relu=1), TypeError, "relu"),
        (dict(running_mean=np.zeros(3, np.float32)), ValueError, "running_var"),
        (dict(running_mean=np.zeros(3), running_var=np.ones(3)), ValueError, "running_mean"),
    ]
    for kw, exc, name in cases:
        args = {"y": y, "gamma": gamma, "beta": beta, **kw}
        with pytest.raises(exc, match=name):
            ops.batch_norm(**args)
    with pytest.raises(ValueError, match="running_var"):
        ops.batch_norm_inference(y, gamma, beta, np.zeros(3), -np.ones(3))
    out, cache = ops.batch_norm(y, gamma, beta)
    with pytest.raises(ValueError, match="dz"):
        ops.batch_norm_backward(y[:, :2], cache)


def test_core_rejects_a_single_row():
    """One row has no batch variance: the C entry point refuses it (as torch does)."""
    y = np.ones((1, 3), np.float32)
    v = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="batch_norm"):
        _core.batch_norm_train_into(y, v, v, EPS, MOM, 0, y.copy(), y.copy(), v.copy(),
                                    None, None)
