"""The float64 twin of the covariate model (vaefast.reference.covariate_model)
and the dispersion registry (vaefast/_spec/dispersion.py).

The twin's analytic gradients are checked by central finite differences for
covariates deep and shallow, in the encoder or not, each dispersion mode and
NB/ZINB; a stack of layers run with the float32 kernels (vaefast.ops: the
GEMM, then the gather-add) is checked against it.
"""

import numpy as np
import pytest

from vaefast import ops
from vaefast._spec import dispersion as disp
from vaefast.reference import covariates as twin_cov
from vaefast.reference.covariate_model import CovariateModel, _forward_side, loss_and_grad

U = 2.0**-24
PLACES = [dict(deep=True, encode=False), dict(deep=False, encode=False),
          dict(deep=True, encode=True), dict(deep=False, encode=True)]


def problem(rng, spec, B=7):
    x = rng.poisson(1.5, (B, spec.n_features)).astype(np.float64)
    x[:, 0] += 1  # every row's library > 0
    x[rng.random(x.shape) < 0.4] = 0
    x[:, 1] += 1
    codes = np.stack([rng.integers(0, n, B) for n in spec.levels], axis=1) \
        if spec.levels else None
    cont = rng.standard_normal((B, spec.n_continuous))
    labels = rng.integers(0, max(spec.n_labels, 1), B)
    eps = rng.standard_normal((B, spec.latent))
    return x, codes, cont, labels, eps


def leaves(params, prefix=""):
    """(path, array) of every parameter array."""
    if isinstance(params, dict):
        for k in sorted(params):
            yield from leaves(params[k], f"{prefix}/{k}")
    elif isinstance(params, list):
        for i, p in enumerate(params):
            yield from leaves(p, f"{prefix}/{i}")
    else:
        yield prefix, params


def grad_at(grads, path):
    for key in path.strip("/").split("/"):
        grads = grads[int(key)] if isinstance(grads, list) else grads[key]
    return grads


@pytest.mark.parametrize("place", PLACES, ids=lambda p: f"deep{p['deep']:d}-enc{p['encode']:d}")
@pytest.mark.parametrize("dispersion", list(disp.REGISTRY))
@pytest.mark.parametrize("likelihood", ["nb", "zinb"])
def test_twin_gradients_by_central_differences(rng, place, dispersion, likelihood):
    spec = CovariateModel(5, (4, 3), 2, levels=(2, 3), n_continuous=2, likelihood=likelihood,
                          dispersion=dispersion, n_labels=3, **place)
    params = spec.init(rng)
    x, codes, cont, labels, eps = problem(rng, spec)
    _, per_row, grads = loss_and_grad(spec, params, x, codes, cont, labels, eps, beta=0.7)
    assert per_row.shape == (7,) and np.isfinite(per_row).all()
    h = 1e-6  # truncation O(h²·f''') ~ 1e-12, cancellation ~ 1e-16·|f|/h ~ 1e-9
    checked = 0
    for path, a in leaves(params):
        g = grad_at(grads, path)
        assert g.shape == a.shape, path
        fd = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + h
            fp = loss_and_grad(spec, params, x, codes, cont, labels, eps, beta=0.7)[0]
            a[idx] = old - h
            fm = loss_and_grad(spec, params, x, codes, cont, labels, eps, beta=0.7)[0]
            a[idx] = old
            fd[idx] = (fp - fm) / (2 * h)
        np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-7, err_msg=path)
        checked += a.size
    # the tables the placement asks for exist (and were checked above)
    enc_T = ["T" in L for L in [*params["encoder"], params["head"]]]
    dec_T = ["T" in L for L in [*params["decoder"], params["output"]]]
    assert dec_T == [True, place["deep"], False]
    assert enc_T == ([True, place["deep"], False] if place["encode"] else [False] * 3)
    assert ("log_theta" in params) == (dispersion != "gene-cell")
    assert checked > 100


def test_placement_without_hidden_layers():
    # no hidden layer on a side: its first layer (head / output) receives them
    spec = CovariateModel(4, (), 2, levels=(3,), encode=True)
    assert spec.receives("encoder") == [True] and spec.receives("decoder") == [True]
    assert CovariateModel(4, (8,), 2).receives("decoder") == [False, False]  # no covariates
    deep = CovariateModel(4, (8, 8, 8), 2, levels=(2,))
    assert deep.receives("decoder") == [True, True, True, False]
    assert deep.receives("encoder") == [False] * 4


@pytest.mark.parametrize("deep", [True, False])
def test_float32_kernels_run_the_twins_layers(rng, deep):
    # what the C model's layers will run: GEMM (no activation), gather-add
    # with the ReLU; per element K+1 float32 additions after a GEMM of
    # length `in`: bound (in + K)·u·(Σ|x·W| + |b| + Σ|t|), propagated
    # through the layers by running the twin on the float32 inputs.
    spec = CovariateModel(6, (16, 8), 3, levels=(3, 4), deep=deep)
    params = spec.init(rng)
    layers = [{k: v.astype(np.float32) for k, v in L.items()}
              for L in [*params["decoder"], params["output"]]]
    z = rng.standard_normal((50, 3)).astype(np.float32)
    codes = np.stack([rng.integers(0, n, 50) for n in spec.levels], axis=1)
    h = z
    for i, L in enumerate(layers):
        pre = ops.linear(h, L["W"], L["b"])
        act = "relu" if i < len(layers) - 1 else "none"
        h = ops.covariate_gather_add(pre, codes, spec.levels, L["T"], act) if "T" in L \
            else (np.maximum(pre, 0) if act == "relu" else pre)
    want = _forward_side([{k: v.astype(np.float64) for k, v in L.items()} for L in layers],
                         z.astype(np.float64), codes, spec.levels)[-1]
    absl = [{k: np.abs(v).astype(np.float64) for k, v in L.items()} for L in layers]
    mag = _forward_side(absl, np.abs(z).astype(np.float64), codes, spec.levels)[-1]
    n_terms = max(L["W"].shape[0] for L in layers) + len(spec.levels) + 1
    assert np.all(np.abs(h - want) <= len(layers) * n_terms * U * mag * 2)


def test_dispersion_registry_and_errors():
    assert tuple(disp.REGISTRY) == ("gene", "gene-batch", "gene-label", "gene-cell")
    assert disp.get("gene-batch", 4).table_rows(4, 0) == 4
    assert disp.get("gene-label", 1, 5).table_rows(1, 5) == 5
    assert disp.get("gene").table_rows(3, 2) == 1 and disp.get("gene-cell").head
    with pytest.raises(ValueError, match="dispersion must be one of"):
        disp.get("gene-batches")
    with pytest.raises(ValueError, match="n_labels must be >= 1"):
        disp.get("gene-label", 2, 0)
    d = disp.get("gene-batch", 3)
    with pytest.raises(ValueError, match="needs batch"):
        disp.row_codes(d, 4, None, None, 3, 0)
    with pytest.raises(ValueError, match=r"batch must lie in \[0, 3\), got 3"):
        disp.row_codes(d, 4, [0, 1, 3, 2], None, 3, 0)
    with pytest.raises(ValueError, match=r"batch must have shape \(4,\)"):
        disp.row_codes(d, 4, [0, 1], None, 3, 0)
    with pytest.raises(TypeError, match="batch must hold integer codes"):
        disp.row_codes(d, 2, [0.5, 1.0], None, 3, 0)
    lab = disp.get("gene-label", 1, 2)
    with pytest.raises(ValueError, match="needs labels"):
        disp.row_codes(lab, 2, [0, 0], None, 1, 2)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\), got -1"):
        disp.row_codes(lab, 2, None, [-1, 0], 1, 2)
    np.testing.assert_array_equal(disp.row_codes(lab, 2, None, [1, 0], 1, 2), [1, 0])
    assert disp.row_codes(disp.get("gene"), 2, None, None, 1, 0) is None


def test_gene_batch_theta_is_a_gather_of_the_table(rng):
    # "gene-batch" equals "gene-cell"-free per-row θ: the loss with the table
    # gathered by batch code is the loss with those rows passed per element
    spec = CovariateModel(5, (4,), 2, levels=(3,), dispersion="gene-batch", likelihood="nb")
    params = spec.init(rng)
    x, codes, cont, labels, eps = problem(rng, spec)
    _, per_row, grads = loss_and_grad(spec, params, x, codes, cont, labels, eps)
    gene = CovariateModel(5, (4,), 2, levels=(3,), dispersion="gene", likelihood="nb")
    for b in range(3):  # rows of batch b alone, with that batch's θ as the gene θ
        rows = codes[:, 0] == b
        if not rows.any():
            continue
        p = dict(params, log_theta=params["log_theta"][b:b + 1])
        _, pr, _ = loss_and_grad(gene, p, x[rows], codes[rows], cont[rows], None, eps[rows])
        np.testing.assert_allclose(per_row[rows], pr, rtol=1e-12)
    assert twin_cov.onehot(codes, [3]).sum() == len(codes)


@pytest.mark.parametrize("likelihood", ["nb", "zinb"])
def test_gene_batch_theta_with_the_float32_kernels(rng, likelihood):
    # "gene-batch" as the C model will run it: log θ rows gathered by batch
    # code (a gather-add onto zeros: bit-equal to indexing the table), the
    # count loss per element, the table's gradient a scatter-add of the
    # per-element gradient (bit-equal to a float32 sum of each batch's rows
    # in row order)
    M, D, n_batch = 40, 7, 3
    batch = rng.integers(0, n_batch, M)
    table = rng.uniform(-1.0, 2.0, (n_batch, D)).astype(np.float32)
    lt = ops.covariate_gather_add(np.zeros((M, D), np.float32), batch, n_batch, table)
    np.testing.assert_array_equal(lt, table[batch])
    x = rng.poisson(2.0, (M, D)).astype(np.float32)
    x[:, 0] += 1
    rho = rng.standard_normal((M, D)).astype(np.float32)
    pi = rng.standard_normal((M, D)).astype(np.float32) if likelihood == "zinb" else None
    _, _, dlt, _ = ops.count_loss(x, rho, x.sum(1), lt, pi, likelihood, scale=1.0 / M)
    got = ops.covariate_scatter_add(dlt, batch, n_batch)
    want = np.zeros_like(table)
    for i in range(M):
        want[batch[i]] += dlt[i]
    np.testing.assert_array_equal(got, want)
