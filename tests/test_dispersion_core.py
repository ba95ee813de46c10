"""The NB/ZINB dispersion modes of the C model (csrc/vae_dispersion.c,
VAECore(dispersion=…, dispersion_covariate=…)) against the float64 twin
(vaefast.reference.covariate_model), the twin against central differences,
and one step's gradients against PyTorch autograd.

scVI's modes (scvi-tools 1.4 scvi/module/_vae.py): log θ per gene, a
(levels × D) table indexed by the batch or the label code ("gene-batch",
"gene-label"), or a decoder head ("gene-cell"). In the C core the label is
one of the categorical code columns (dispersion_covariate=k), so the twin is
given labels = codes[:, k].

Tolerances are tests/test_covariate_core.py's (float32 model, same loss):
the loss to 2e-5 relative, the gradients to 1e-3 relative plus 1e-4 of the
largest entry of their block.
"""

import os
import sys

import numpy as np
import pytest

import vaefast
from vaefast import _core
from vaefast._spec import dispersion as disp
from vaefast._spec.likelihoods import REGISTRY
from vaefast.reference.covariate_model import CovariateModel, loss_and_grad

sys.path.insert(0, os.path.dirname(__file__))  # tests/core_buffers.py (tests/ is no package)
from core_buffers import f32, grads_like, layers_of, theta_slot, to_flat  # noqa: E402

D, Z, HID = 9, 3, (8, 6)
LEVELS = (3, 2, 4)
LABEL = 2  # the code column that holds the label in these tests
CORE_LIK = {"zinb": "zinb", "nb": "scvi_nb"}  # twin name -> the core's likelihood
MODES = ["gene", "gene-batch", "gene-label", "gene-cell"]


def column_of(mode):
    return {"gene-batch": 0, "gene-label": LABEL}.get(mode)


def build(mode, likelihood="zinb", beta=0.8):
    spec = CovariateModel(D, HID, Z, LEVELS, likelihood=likelihood, dispersion=mode,
                          n_labels=LEVELS[LABEL])
    core = _core.VAECore(D, list(HID), list(reversed(HID)), Z, REGISTRY[CORE_LIK[likelihood]].code,
                         beta, categorical=list(LEVELS), dispersion=mode,
                         dispersion_covariate=column_of(mode))
    return spec, core


def data(rng, B=16):
    x = rng.poisson(1.5, (B, D)).astype(np.float32)
    x[rng.random(x.shape) < 0.5] = 0
    x[:, 0] += 1
    codes = np.stack([rng.integers(0, n, B) for n in LEVELS], axis=1).astype(np.int32)
    eps = rng.standard_normal((B, Z)).astype(np.float32)
    return x, codes, eps


def twin(spec, params, x, codes, eps, beta=0.8):
    return loss_and_grad(spec, params, x.astype(np.float64), codes, None, codes[:, LABEL],
                         eps.astype(np.float64), beta=beta)


def close(got, want, what):
    atol = 1e-4 * max(float(np.abs(want).max()), 1e-12)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=atol, err_msg=what)


def test_mode_names_are_the_registrys():
    assert set(_core.DISPERSION_CODES) == set(disp.REGISTRY)
    for mode in MODES:
        _, core = build(mode)
        name, col, off, rows = core.dispersion_info()
        assert name == mode and col == (-1 if column_of(mode) is None else column_of(mode))
        assert rows == (LEVELS[col] if col >= 0 else 0)
        assert (off == core.num_params - rows * D) if rows else off == -1
        assert core.out_width == (3 if disp.REGISTRY[mode].head else 2) * D


@pytest.mark.parametrize("likelihood", ["zinb", "nb"])
@pytest.mark.parametrize("mode", MODES)
def test_loss_and_gradients_match_the_twin(rng, mode, likelihood, kernel_set):
    spec, core = build(mode, likelihood)
    params = f32(spec.init(rng))
    core.set_buffer(_core.PARAMS, to_flat(core, params))
    x, codes, eps = data(rng)
    loss, recon, kl = core.loss_and_grad(x, eps, 0, 0, 1.0, c=(None, codes))
    want, per_row, want_g = twin(spec, params, x, codes, eps)
    np.testing.assert_allclose(loss, want, rtol=2e-5)
    np.testing.assert_allclose(recon + 0.8 * kl, per_row, rtol=2e-5)
    got, got_lt = grads_like(core, core.get_buffer(_core.GRADS), params)
    for l, (g, w) in enumerate(zip(got, layers_of(want_g))):
        assert set(g) == set(w), l
        for k in w:
            close(g[k], w[k], f"{l}.{k}")
    if "log_theta" in want_g:
        close(got_lt, want_g["log_theta"], "log_theta")
        if mode != "gene":  # every level drawn: each table row has a gradient
            assert (np.abs(got_lt).sum(axis=1) > 0).all()
    else:
        assert got_lt is None


@pytest.mark.parametrize("mode", ["gene-batch", "gene-label", "gene-cell"])
def test_twin_theta_gradients_by_central_differences(rng, mode):
    """The twin's log θ gradient (table rows or the head's columns of the
    output layer) against central differences of its own loss."""
    spec = CovariateModel(4, (3,), 2, LEVELS, likelihood="zinb", dispersion=mode,
                          n_labels=LEVELS[LABEL])
    params = spec.init(rng)
    x = rng.poisson(2.0, (6, 4)).astype(np.float64)
    x[:, 0] += 1
    codes = np.stack([rng.integers(0, n, 6) for n in LEVELS], axis=1)
    eps = rng.standard_normal((6, 2))
    f = lambda: loss_and_grad(spec, params, x, codes, None, codes[:, LABEL], eps)  # noqa: E731
    _, _, grads = f()
    if mode == "gene-cell":
        a, g = params["output"]["W"], grads["output"]["W"]
        cols = list(range(8, 12))  # [rho | pi | log θ]: the head's columns
    else:
        a, g = params["log_theta"], grads["log_theta"]
        cols = list(range(4))
    h = 1e-6  # truncation O(h²) ~ 1e-12; cancellation ~ 1e-16·|f|/h ~ 1e-9
    for idx in np.ndindex(a.shape):
        if idx[1] not in cols:
            continue
        old = a[idx]
        a[idx] = old + h
        fp = f()[0]
        a[idx] = old - h
        fm = f()[0]
        a[idx] = old
        np.testing.assert_allclose(g[idx], (fp - fm) / (2 * h), rtol=1e-5, atol=1e-8,
                                   err_msg=str(idx))


@pytest.mark.parametrize("mode", ["gene-batch", "gene-cell"])
def test_elbo_and_decode(rng, mode):
    spec, core = build(mode)
    params = f32(spec.init(rng))
    core.set_buffer(_core.PARAMS, to_flat(core, params))
    x, codes, eps = data(rng, B=300)  # the ELBO's passes of 256 rows: two
    elbo = core.elbo(x, eps, c=(None, codes))
    _, per_row, _ = twin(spec, params, x, codes, eps)
    np.testing.assert_allclose(-elbo, per_row, rtol=2e-5)
    z = rng.standard_normal((5, Z)).astype(np.float32)
    out = core.decode(z, False, c=(None, codes[:5]))
    assert out.shape == (5, core.out_width)
    mean = core.decode(z, True, c=(None, codes[:5]))  # library 1: softmax of rho
    rho = out[:, :D].astype(np.float64)
    want = np.exp(rho - rho.max(axis=1, keepdims=True))
    np.testing.assert_allclose(mean, want / want.sum(axis=1, keepdims=True), rtol=1e-5)


def fit(mode, x, codes, order, steps, threads):
    vaefast.set_num_threads(threads)
    spec, core = build(mode)
    core.set_buffer(_core.PARAMS, to_flat(core, spec.init(np.random.default_rng(3))))
    sums = np.zeros(3)
    done, status = core.train_steps(x, order, 64, 0, steps, 11, 0, 1e-2, 0.9, 0.999, 1e-8,
                                    0.0, "adam", 1.0, sums, c=(None, codes))
    assert (done, status) == (steps, 0)
    return core, sums


@pytest.mark.parametrize("mode", ["gene-label", "gene-cell"])
def test_fits_are_bit_identical_for_any_thread_count(rng, mode, threads_setting):
    x, codes, _ = data(rng, B=500)
    order = rng.permutation(500).astype(np.int64)
    results = [fit(mode, x, codes, order, 8, n)[0].get_buffer(_core.PARAMS) for n in (1, 2, 3)]
    spec, core = build(mode)
    assert not np.array_equal(results[0], to_flat(core, spec.init(np.random.default_rng(3))))
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


@pytest.mark.parametrize("mode", ["gene-batch", "gene-label", "gene-cell"])
def test_training_reduces_the_loss(rng, mode):
    # counts whose dispersion differs by batch and label: θ must move
    B = 512
    codes = np.stack([rng.integers(0, n, B) for n in LEVELS], axis=1).astype(np.int32)
    theta = np.where(codes[:, :1] == 0, 0.5, 5.0) * (1 + codes[:, LABEL:LABEL + 1])
    mu = np.exp(rng.standard_normal((1, D)))
    x = rng.negative_binomial(theta, theta / (theta + mu)).astype(np.float32)
    x[:, 0] += 1
    order = np.arange(B, dtype=np.int64)
    eps = np.random.default_rng(5).standard_normal((B, Z)).astype(np.float32)
    core, _ = fit(mode, x, codes, order, 2, 1)
    before = -core.elbo(x, eps, c=(None, codes)).mean()
    for epoch in range(20):  # 8 steps of 64 rows each
        done, status = core.train_steps(x, order, 64, 0, 8, 11, 2 + 8 * epoch, 1e-2, 0.9,
                                        0.999, 1e-8, 0.0, "adam", 1.0, np.zeros(3),
                                        c=(None, codes))
        assert (done, status) == (8, 0)
    after = -core.elbo(x, eps, c=(None, codes)).mean()
    assert after < 0.95 * before, (before, after)
    off, rows = theta_slot(core)
    if rows:  # the table's rows learned different θ
        table = core.get_buffer(_core.PARAMS)[off:off + rows * D].reshape(rows, D)
        assert np.ptp(table.mean(axis=1)) > 0.05


def test_errors(rng):
    nb, zinb = REGISTRY["negative_binomial"].code, REGISTRY["zinb"].code
    args = (D, [4], [4], Z)
    with pytest.raises(ValueError, match="dispersion must be one of"):
        _core.VAECore(*args, zinb, 1.0, categorical=[3], dispersion="gene-sample")
    with pytest.raises(ValueError, match="needs dispersion_covariate .* or dispersion_levels"):
        _core.VAECore(*args, zinb, 1.0, dispersion="gene-batch")
    with pytest.raises(ValueError, match=r"dispersion_covariate must be in \[0, 2\], got 3"):
        _core.VAECore(*args, zinb, 1.0, categorical=[3, 2], dispersion="gene-label",
                      dispersion_covariate=3)
    with pytest.raises(ValueError, match="dispersion_levels must be >= 1 for the side column"):
        _core.VAECore(*args, zinb, 1.0, categorical=[3, 2], dispersion="gene-label",
                      dispersion_covariate=2)
    with pytest.raises(ValueError, match="set_dispersion"):  # not column 1's level count
        _core.VAECore(*args, zinb, 1.0, categorical=[3, 2], dispersion="gene-label",
                      dispersion_covariate=1, dispersion_levels=5)
    with pytest.raises(ValueError, match="dispersion_levels is only for"):
        _core.VAECore(*args, zinb, 1.0, dispersion="gene-cell", dispersion_levels=2)
    for bad_column in (True, 1.0, "1"):
        with pytest.raises(ValueError, match="dispersion_covariate must be an int"):
            _core.VAECore(*args, zinb, 1.0, categorical=[3, 2], dispersion="gene-batch",
                          dispersion_covariate=bad_column)
    core = _core.VAECore(*args, zinb, 1.0, categorical=[3, 2], dispersion="gene-label",
                         dispersion_covariate=np.int64(1))  # NumPy's integers are fine
    assert core.dispersion_info()[1:] == (1, core.num_params - 2 * D, 2)
    with pytest.raises(ValueError, match="needs dispersion_covariate"):
        _core.VAECore(*args, zinb, 1.0, categorical=[3, 2], dispersion="gene-label")
    with pytest.raises(ValueError, match="only for 'gene-batch' and 'gene-label'"):
        _core.VAECore(*args, zinb, 1.0, categorical=[3], dispersion="gene-cell",
                      dispersion_covariate=0)
    for lik in (nb, REGISTRY["scvi_poisson"].code, REGISTRY["gaussian"].code):
        with pytest.raises(ValueError, match="needs a likelihood with θ per row"):
            _core.VAECore(*args, lik, 1.0, categorical=[3], dispersion="gene-cell")
    _, core = build("gene-batch")
    x, codes, eps = data(rng)
    bad = codes.copy()
    bad[3, 0] = LEVELS[0]  # out of range in the table's column
    with pytest.raises(ValueError, match="loss_and_grad"):
        core.loss_and_grad(x, eps, 0, 0, 1.0, c=(None, bad))
    with pytest.raises(ValueError, match="elbo"):
        core.elbo(x, eps)  # no codes


def torch_loss(torch, spec, params, x, codes, eps, beta):
    """The batch-mean negative ELBO of the twin's model in torch ops (float64)
    and the autograd gradients, shaped like params. ZINB as scvi-tools 1.4
    writes it (scvi/distributions/_negative_binomial.py, log_zinb_positive):
    a zero is log(σ(π) + σ(−π)·NB(0)), a count log σ(−π) + log NB(x)."""
    from vaefast.reference import LOGVAR_MAX, LOGVAR_MIN
    from vaefast.reference.count import LOG_THETA_MAX, LOG_THETA_MIN

    t = lambda a: torch.tensor(a, dtype=torch.float64, requires_grad=True)  # noqa: E731
    tp = {k: ([{n: t(a) for n, a in L.items()} for L in v] if isinstance(v, list) else
              {n: t(a) for n, a in v.items()} if isinstance(v, dict) else t(v))
          for k, v in params.items()}
    X = torch.tensor(x, dtype=torch.float64)
    onehot = torch.cat([torch.nn.functional.one_hot(torch.tensor(codes[:, k], dtype=torch.int64),
                                                    n).double()
                        for k, n in enumerate(LEVELS)], dim=1)

    def side(layers, h):
        for i, L in enumerate(layers):
            h = h @ L["W"] + L["b"] + (onehot @ L["T"] if "T" in L else 0)
            h = h if i == len(layers) - 1 else torch.relu(h)
        return h

    H = side([*tp["encoder"], tp["head"]], torch.log1p(X))
    mu, lv = H[:, :Z], torch.clamp(H[:, Z:], LOGVAR_MIN, LOGVAR_MAX)
    z = mu + torch.exp(0.5 * lv) * torch.tensor(eps, dtype=torch.float64)
    out = side([*tp["decoder"], tp["output"]], z)
    rho, pi = out[:, :D], out[:, D:2 * D]
    mode = spec.dispersion
    lt = (out[:, -D:] if mode == "gene-cell" else
          tp["log_theta"][torch.tensor(codes[:, column_of(mode)], dtype=torch.int64)])
    lt = torch.clamp(lt, LOG_THETA_MIN, LOG_THETA_MAX)
    theta = torch.exp(lt)
    log_mu = torch.log(X.sum(dim=1, keepdim=True)) + torch.log_softmax(rho, dim=1)
    log_tm = torch.logaddexp(lt, log_mu)  # log(θ + μ)
    nb0 = theta * (lt - log_tm)
    log_nb = (torch.lgamma(X + theta) - torch.lgamma(theta) - torch.lgamma(X + 1) + nb0
              + X * (log_mu - log_tm))
    sp = torch.nn.functional.softplus
    logp = torch.where(X > 0, -sp(pi) + log_nb, sp(-pi + nb0) - sp(-pi))
    kl = 0.5 * torch.sum(torch.exp(lv) + mu * mu - 1 - lv, dim=1)
    loss = torch.mean(-logp.sum(dim=1) + beta * kl)
    loss.backward()
    g = lambda a: a.grad.numpy()  # noqa: E731
    grads = {k: ([{n: g(a) for n, a in L.items()} for L in v] if isinstance(v, list) else
                 {n: g(a) for n, a in v.items()} if isinstance(v, dict) else g(v))
             for k, v in tp.items()}
    return float(loss.detach()), grads


@pytest.mark.parametrize("mode", ["gene-batch", "gene-cell"])
def test_one_steps_gradients_match_torch_autograd(rng, mode):
    torch = pytest.importorskip("torch")
    spec, core = build(mode)
    params = f32(spec.init(rng))
    core.set_buffer(_core.PARAMS, to_flat(core, params))
    x, codes, eps = data(rng)
    loss, _, _ = core.loss_and_grad(x, eps, 0, 0, 1.0, c=(None, codes))
    want, want_g = torch_loss(torch, spec, params, x.astype(np.float64), codes,
                              eps.astype(np.float64), 0.8)
    np.testing.assert_allclose(loss, want, rtol=2e-5)
    got, got_lt = grads_like(core, core.get_buffer(_core.GRADS), params)
    for l, (g, w) in enumerate(zip(got, layers_of(want_g))):
        for k in w:
            close(g[k], w[k], f"{l}.{k}")
    if mode == "gene-batch":
        close(got_lt, want_g["log_theta"], "log_theta")


@pytest.mark.parametrize("mode", ["gene-label", "gene-cell"])
def test_batch_norm_comes_after_the_dispersion_parameters(rng, mode):
    """set_norm appends after the dispersion table (the layout of
    csrc/vae_dispersion.h), and a normalised model with the mode trains."""
    _, core = build(mode)
    before = core.dispersion_info(), [core.layer_info(l) for l in range(core.n_layers)]
    n = core.num_params
    core.set_norm(3, 0)
    assert (core.dispersion_info(), [core.layer_info(l) for l in range(core.n_layers)]) == before
    assert core.num_params == n + 2 * 2 * sum(HID)  # gamma and beta per hidden unit
    spec, plain = build(mode)
    flat = np.zeros(core.num_params, np.float32)
    flat[:n] = to_flat(plain, f32(spec.init(rng)))
    off = n
    for width in (*HID, *reversed(HID)):  # per hidden layer gamma (= 1 here), then beta
        flat[off:off + width] = 1.0
        off += 2 * width
    core.set_buffer(_core.PARAMS, flat)
    x, codes, eps = data(rng, B=256)
    first = core.loss_and_grad(x, eps, 0, 0, 1.0, c=(None, codes))[0]
    for epoch in range(10):
        assert core.train_steps(x, None, 64, 0, 4, 11, 4 * epoch, 1e-2, 0.9, 0.999, 1e-8,
                                0.0, "adam", 1.0, np.zeros(3), c=(None, codes)) == (4, 0)
    assert np.isfinite(core.get_buffer(_core.PARAMS)).all()
    assert core.loss_and_grad(x, eps, 0, 0, 1.0, c=(None, codes))[0] < first


SIDE_LEVELS = (3, 2)  # injected covariates; the label is a side column after them


def build_side(mode, likelihood="zinb", beta=0.8):
    """scVI's own arrangement: the label (column 2 of the codes, 4 values)
    indexes θ's table but is no covariate of the layers."""
    spec = CovariateModel(D, HID, Z, SIDE_LEVELS, likelihood=likelihood, dispersion=mode,
                          n_labels=LEVELS[LABEL])
    core = _core.VAECore(D, list(HID), list(reversed(HID)), Z,
                         REGISTRY[CORE_LIK[likelihood]].code, beta,
                         categorical=list(SIDE_LEVELS), dispersion=mode,
                         dispersion_levels=LEVELS[LABEL])
    return spec, core


@pytest.mark.parametrize("likelihood", ["zinb", "nb"])
def test_side_label_column_matches_the_twin(rng, likelihood, kernel_set):
    spec, core = build_side("gene-label", likelihood)
    assert core.dispersion_info()[1:] == (2, core.num_params - LEVELS[LABEL] * D, 4)
    params = f32(spec.init(rng))
    core.set_buffer(_core.PARAMS, to_flat(core, params))
    x, codes, eps = data(rng)  # columns: two covariates, then the label
    loss, recon, kl = core.loss_and_grad(x, eps, 0, 0, 1.0, c=(None, codes))
    want, per_row, want_g = loss_and_grad(spec, params, x.astype(np.float64), codes[:, :2],
                                          None, codes[:, LABEL], eps.astype(np.float64),
                                          beta=0.8)
    np.testing.assert_allclose(loss, want, rtol=2e-5)
    got, got_lt = grads_like(core, core.get_buffer(_core.GRADS), params)
    for l, (g, w) in enumerate(zip(got, layers_of(want_g))):
        assert set(g) == set(w), l
        for k in w:
            close(g[k], w[k], f"{l}.{k}")
    close(got_lt, want_g["log_theta"], "log_theta")
    elbo = core.elbo(x, eps, c=(None, codes))
    np.testing.assert_allclose(-elbo, per_row, rtol=2e-5)


def test_side_column_without_covariates_trains_bit_identically(rng, threads_setting):
    """A model with no injected covariates and θ per label (a side column):
    train_steps gathers the column with the rows; 1/2/3 threads agree."""
    x, codes, _ = data(rng, B=300)
    labels = np.ascontiguousarray(codes[:, LABEL:])
    order = rng.permutation(300).astype(np.int64)
    results = []
    for n in (1, 2, 3):
        vaefast.set_num_threads(n)
        core = _core.VAECore(D, list(HID), list(reversed(HID)), Z, REGISTRY["zinb"].code, 1.0,
                             dispersion="gene-label", dispersion_levels=4)
        assert core.dispersion_info()[1:] == (0, core.num_params - 4 * D, 4)
        core.set_buffer(_core.PARAMS, (0.2 * np.random.default_rng(2).standard_normal(
            core.num_params)).astype(np.float32))
        assert core.train_steps(x, order, 64, 0, 4, 11, 0, 1e-2, 0.9, 0.999, 1e-8, 0.0, "adam",
                                1.0, np.zeros(3), c=(None, labels)) == (4, 0)
        results.append(core.get_buffer(_core.PARAMS))
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    bad = labels.copy()
    bad[7, 0] = 4
    with pytest.raises(ValueError, match="loss_and_grad"):
        core.loss_and_grad(x, np.zeros((300, Z), np.float32), 0, 0, 1.0, c=(None, bad))
    with pytest.raises(ValueError, match="encode"):
        core.encode(x)  # the rows must carry the side column
