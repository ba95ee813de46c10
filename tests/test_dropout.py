"""Dropout on the hidden layers (csrc/vae_dropout.c) against its NumPy twin
(vaefast/reference/dropout.py), central differences and PyTorch autograd.

The mask is exact integer maths (Philox words against a threshold), so core
and twin must agree bit for bit. The model's loss is float32 in the core and
float64 in the twin: sums over ~20 terms per row give relative errors ~1e-6,
so rtol 1e-5 on the loss; gradients pass through a few float32 GEMMs, hence
rtol 1e-4 with atol 1e-4 × the gradient's largest entry (as test_model_torch).
"""

import pickle

import numpy as np
import pytest

import vaefast
from vaefast import _core
from vaefast.reference import from_named
from vaefast.reference import dropout as twin
from vaefast.reference.hidden import HiddenLayer, loss as twin_loss
from vaefast.reference.rng import reparam_eps


D, Z, ENC, DEC = 7, 3, (6, 5), (4,)


def core_mask(seed, step, layer, row0, M, N, p):
    out = np.full((M, N), -1.0, np.float32)
    _core.dropout_mask(seed, step, layer, row0, p, out)
    return out


@pytest.mark.parametrize("N", [1, 5, 256, 259, 300])
def test_mask_matches_twin_on_every_kernel_set(on_each_kernel_set, N):
    want = twin.dropout_mask(2**40 + 9, 2**33 + 5, 3, 70, 13, N, 0.3)
    got = on_each_kernel_set(lambda: core_mask(2**40 + 9, 2**33 + 5, 3, 70, 13, N, 0.3))
    for isa, mask in got.items():
        np.testing.assert_array_equal(mask, want, err_msg=isa)


def test_mask_is_a_function_of_seed_step_layer_row_column():
    base = core_mask(1, 2, 3, 0, 40, 33, 0.5)
    # rows are addressed by their global index: a shard starting at row 10
    # draws rows 10.. of the whole batch
    np.testing.assert_array_equal(core_mask(1, 2, 3, 10, 30, 33, 0.5), base[10:])
    np.testing.assert_array_equal(core_mask(1, 2, 3, 0, 40, 20, 0.5), base[:, :20])
    for other in [core_mask(9, 2, 3, 0, 40, 33, 0.5), core_mask(1, 7, 3, 0, 40, 33, 0.5),
                  core_mask(1, 2, 4, 0, 40, 33, 0.5)]:
        assert 0.3 < np.mean(other != base) < 0.7  # independent draws differ in ~half


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9])
def test_keep_rate_within_binomial_bounds(p):
    mask = core_mask(5, 11, 0, 0, 400, 257, p)
    n = mask.size
    keep = 1.0 - float(np.float32(p))
    sd = np.sqrt(n * keep * (1 - keep))
    assert abs(mask.sum() - n * keep) <= 6 * sd + 1e-9
    assert set(np.unique(mask)) <= {0.0, 1.0}
    if p == 0.0:
        assert mask.all()


def small_model(p=0.4, on="both", seed=3, likelihood="bernoulli"):
    return vaefast.VAE(D, hidden=ENC, decoder_hidden=DEC, latent_dim=Z, seed=seed,
                       likelihood=likelihood, dropout_rate=p, dropout_on=on)


def data(B, seed=0):
    return (np.random.default_rng(seed).random((B, D)) < 0.4).astype(np.float32)


def twin_setup(m, B, p_enc, p_dec):
    masks = twin.layer_masks(m.seed, m.step_, 0, B, ENC, DEC, p_enc, p_dec)
    eps = reparam_eps(m.seed, m.step_, 0, B, Z)
    return masks, eps


def named64(m):
    return {k: v.astype(np.float64) for k, v in m.get_weights().items()}


@pytest.mark.parametrize("on", ["encoder", "decoder", "both"])
def test_loss_and_gradients_match_twin_by_central_differences(on, assert_named_gradients):
    p = 0.4
    p_enc, p_dec = (p if on != "decoder" else 0.0), (p if on != "encoder" else 0.0)
    m = small_model(p, on)
    m.step_ = 17
    X = data(9)
    loss, grads = m.loss_and_grad(X)
    masks, eps = twin_setup(m, 9, p_enc, p_dec)
    assert any((mk == 0).any() for side in masks for mk in side)  # something is dropped
    w = named64(m)
    x64 = X.astype(np.float64)

    enc = [HiddenLayer(k, p_enc) for k in masks[0]]
    dec = [HiddenLayer(k, p_dec) for k in masks[1]]

    def loss_of(named):
        return twin_loss(from_named(named, len(ENC), len(DEC)), x64, eps, enc, dec)

    np.testing.assert_allclose(loss, loss_of(w), rtol=1e-5)
    assert_named_gradients(grads, loss_of, w)


def test_gradients_match_torch_autograd(torch_loss_hidden):
    torch = pytest.importorskip("torch")
    p = 0.25
    m = small_model(p, "both")
    m.step_ = 4
    X = data(11, seed=1)
    loss, grads = m.loss_and_grad(X)
    (enc_masks, dec_masks), eps = twin_setup(m, 11, p, p)
    t = {k: torch.tensor(v, requires_grad=True) for k, v in named64(m).items()}
    masks = {"encoder": enc_masks, "decoder": dec_masks}
    want_loss = torch_loss_hidden(
        t, X, eps, lambda y, side, i: torch.relu(y) * torch.tensor(masks[side][i]) / (1 - p))
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    for k, v in t.items():
        want = v.grad.numpy()
        np.testing.assert_allclose(grads[k], want, rtol=1e-4,
                                   atol=1e-4 * np.abs(want).max() + 1e-7, err_msg=k)


def test_same_step_same_mask_next_step_another():
    m = small_model(0.5)
    X = data(16)
    l1, g1 = m.loss_and_grad(X)
    l2, g2 = m.loss_and_grad(X)
    assert l1 == l2 and all(np.array_equal(g1[k], g2[k]) for k in g1)
    m.step_ = 1
    l3, _ = m.loss_and_grad(X)
    assert l3 != l1


def test_off_in_inference():
    X = data(20)
    a, b = small_model(0.6), small_model(0.0)
    Zs = np.random.default_rng(1).standard_normal((20, Z)).astype(np.float32)
    for got, want in [(a.encode(X), b.encode(X)), (a.decode(Zs), b.decode(Zs)),
                      (a.elbo(X, seed=2), b.elbo(X, seed=2))]:
        for g, w in zip(np.atleast_1d(got), np.atleast_1d(want)):
            np.testing.assert_array_equal(g, w)
    # while training differs: the dropout model's loss is another function
    assert a.loss_and_grad(X)[0] != b.loss_and_grad(X)[0]


def fit_weights(threads, p=0.3, sparse=False, **fit_kw):
    vaefast.set_num_threads(threads)
    m = vaefast.VAE(40, hidden=(200,), latent_dim=8, likelihood="poisson", seed=1,
                    dropout_rate=p)
    X = np.random.default_rng(2).poisson(1.0, (520, 40)).astype(np.float32)
    if sparse:
        sp = pytest.importorskip("scipy.sparse")
        X = sp.csr_matrix(X)
        fit_kw["sparse_first_layer"] = True
    m.fit(X, epochs=2, batch_size=256, progress=False, **fit_kw)
    return m.get_weights()


def test_seeded_fit_bit_identical_for_1_2_3_threads(threads_setting):
    want = fit_weights(1)
    for threads in (2, 3):
        got = fit_weights(threads)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], err_msg=f"{threads} threads: {k}")


def test_sparse_first_layer_applies_the_same_dropout(threads_setting):
    """The CSR first layer is another summation order, not another model:
    close to the dense fit (float32 rounding), far from a fit without dropout."""
    dense, sparse = fit_weights(1), fit_weights(1, sparse=True)
    plain = fit_weights(1, p=0.0)
    w = "encoder.0.weight"
    np.testing.assert_allclose(sparse[w], dense[w], rtol=1e-3, atol=1e-4)
    assert np.abs(plain[w] - dense[w]).max() > 1e-3


def test_save_load_and_pickle_carry_dropout(tmp_path):
    X = data(64)
    m = small_model(0.35, "encoder")
    m.fit(X, epochs=1, batch_size=16, progress=False)
    path = tmp_path / "m.npz"
    m.save(path)
    copies = [vaefast.VAE.load(path), pickle.loads(pickle.dumps(m))]
    m.fit(X, epochs=1, batch_size=16, progress=False)
    for c in copies:
        assert (c.dropout_rate, c.dropout_on) == (0.35, "encoder")
        assert c.get_config() == m.get_config()
        c.fit(X, epochs=1, batch_size=16, progress=False)
        for k, v in m.get_weights().items():
            np.testing.assert_array_equal(c.get_weights()[k], v, err_msg=k)


def test_config_without_dropout_is_unchanged():
    assert "dropout_rate" not in small_model(0.0).get_config()


@pytest.mark.parametrize("kw, exc, name", [
    ({"dropout_rate": 1.0}, ValueError, "dropout_rate"),
    ({"dropout_rate": -0.1}, ValueError, "dropout_rate"),
    ({"dropout_rate": float("nan")}, ValueError, "dropout_rate"),
    ({"dropout_rate": "0.1"}, TypeError, "dropout_rate"),
    ({"dropout_on": "middle"}, ValueError, "dropout_on"),
    ({"dropout_on": None}, ValueError, "dropout_on"),
])
def test_bad_arguments_name_themselves(kw, exc, name):
    with pytest.raises(exc, match=name):
        vaefast.VAE(D, hidden=(4,), latent_dim=2, **kw)


def test_core_rejects_bad_rates_and_mask_arguments():
    m = _core.VAECore(D, [4], [4], 2, 0, 1.0)
    for rates in [(1.0, 0.0), (0.0, -0.5), (float("nan"), 0.0)]:
        with pytest.raises(ValueError, match="set_dropout"):
            m.set_dropout(*rates)
    with pytest.raises(ValueError, match="dropout_mask"):
        _core.dropout_mask(0, 0, 300, 0, 0.5, np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="dropout_mask"):
        _core.dropout_mask(0, 0, 1, 2**32 - 1, 0.5, np.zeros((2, 2), np.float32))


def test_from_anndata_uses_scvi_encoder_dropout():
    ad = pytest.importorskip("anndata")
    adata = ad.AnnData(np.random.default_rng(0).poisson(1.0, (10, D)).astype(np.float32))
    m = vaefast.VAE.from_anndata(adata, hidden=(4,), latent_dim=2, likelihood="poisson")
    assert (m.dropout_rate, m.dropout_on) == (0.1, "encoder")
    m2 = vaefast.VAE.from_anndata(adata, hidden=(4,), latent_dim=2, likelihood="poisson",
                                  dropout_rate=0.0)
    assert m2.dropout_rate == 0.0


def test_shards_draw_the_rows_of_the_whole_batch(threads_setting):
    """Data-parallel shards address dropout rows by their global index, so the
    gradients of two half-batch shards sum to the whole batch's (float32
    summation order aside: rtol 1e-5, atol 1e-6 × the largest entry)."""
    m = small_model(0.5)
    core = m._core
    X = data(20, seed=3)
    m.step_ = 9
    _, want = m.loss_and_grad(X)
    got = None
    for row0 in (0, 10):
        sums = np.zeros(3)
        assert core.shard_grads(X[row0:row0 + 10], m.seed, 9, row0, 20, 1.0, sums) == 0
        part = m._named_from_flat(core.get_buffer(_core.GRADS))
        got = part if got is None else {k: got[k] + part[k] for k in got}
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5,
                                   atol=1e-6 * np.abs(want[k]).max(), err_msg=k)
    # with another row offset the second shard draws other noise and masks
    sums = np.zeros(3)
    core.shard_grads(X[10:], m.seed, 9, 0, 20, 1.0, sums)
    other = m._named_from_flat(core.get_buffer(_core.GRADS))
    first = {k: got[k] - part[k] for k in got}
    assert not np.allclose(first["encoder.0.weight"] + other["encoder.0.weight"],
                           want["encoder.0.weight"], rtol=1e-3)
