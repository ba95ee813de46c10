"""The C model (vaefast.VAE) against the NumPy twin (vaefast.reference).

Tolerances: the C core computes in float32 with a different summation order
(blocked GEMM, FMA) than NumPy's float32 BLAS, so each output differs by a few
float32 ulps per accumulated term. Sums over at most a few hundred terms give
relative errors ~1e-6..1e-5; we allow rtol 1e-4 and, for gradients (whose
entries cancel), an absolute tolerance of 1e-4 × the gradient's largest entry.
The oracle is evaluated in float64 from the same float32 weights.
"""

import threading

import numpy as np
import pytest

import vaefast
from vaefast import reference as R

D, H, Z = 24, 16, 5


def make(likelihood="bernoulli", hidden=(H,), decoder_hidden=None, beta=1.0, seed=3):
    return vaefast.VAE(D, hidden=hidden, latent_dim=Z, likelihood=likelihood, beta=beta,
                       seed=seed, decoder_hidden=decoder_hidden)


def data(n, likelihood, seed=0):
    rng = np.random.default_rng(seed)
    if likelihood == "bernoulli":
        return (rng.random((n, D)) < 0.4).astype(np.float32)
    return rng.standard_normal((n, D)).astype(np.float32)


def params64(model):
    n_enc, n_dec = len(model.hidden), len(model.decoder_hidden)
    p = R.from_named(model.get_weights(), n_enc, n_dec)
    return R.unflatten(p, [a.astype(np.float64) for a in R.flatten(p)])


def close_grad(got, want):
    """rtol 1e-4 plus atol scaled by the largest entry (see module docstring)."""
    atol = 1e-4 * max(float(np.abs(want).max()), 1e-12)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=atol)


ARCHS = [
    dict(hidden=(H,)),
    dict(hidden=(H, 12), decoder_hidden=(9,)),
    dict(hidden=(), decoder_hidden=()),
]


def test_init_is_reference_init():
    m = make(seed=7)
    want = R.to_named(R.init_params(D, (H,), Z, seed=7))
    got = m.get_weights()
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
        assert got[k].dtype == np.float32


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("arch", ARCHS)
def test_encode_decode_match_reference(likelihood, arch):
    m = make(likelihood, **arch)
    X = data(13, likelihood)
    p = params64(m)
    _, mu, lv, _ = R.encode(p, X.astype(np.float64))
    got_mu, got_lv = m.encode(X)
    np.testing.assert_allclose(got_mu, mu, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got_lv, lv, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(m.transform(X), got_mu)
    z = np.random.default_rng(1).standard_normal((13, Z)).astype(np.float32)
    _, out = R.decode(p, z.astype(np.float64))
    mean = R.sigmoid(out) if likelihood == "bernoulli" else out
    np.testing.assert_allclose(m.decode(z), mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(m.reconstruct(X), m.decode(got_mu), rtol=0, atol=0)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("beta", [1.0, 0.25])
def test_loss_and_grad_match_reference(likelihood, arch, beta):
    m = make(likelihood, beta=beta, **arch)
    X = data(17, likelihood)
    eps = np.random.default_rng(2).standard_normal((17, Z)).astype(np.float32)
    p = params64(m)
    loss, grads = m.loss_and_grad(X, eps=eps)
    want_loss, want_g = R.loss_and_grad(p, X.astype(np.float64), eps.astype(np.float64),
                                        likelihood, beta)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    want = R.to_named(want_g)
    assert set(grads) == set(want)
    for k in want:
        assert grads[k].shape == want[k].shape, k
        close_grad(grads[k], want[k])


def test_per_sample_loss_and_elbo():
    m = make("bernoulli")
    X = data(9, "bernoulli")
    seed = 11
    got = m.elbo(X, seed=seed)
    mu, lv = m.encode(X)
    eps = np.random.default_rng(seed).standard_normal(mu.shape).astype(np.float32)
    cache = R.forward(params64(m), X.astype(np.float64), eps.astype(np.float64))
    nelbo, _, _ = R.per_sample_loss(cache, X.astype(np.float64), "bernoulli", 1.0)
    np.testing.assert_allclose(got, -nelbo, rtol=1e-5)
    # core per-sample recon/KL agree with the oracle too
    loss, recon, kl = m._core.loss_and_grad(X, eps, 0, 0, 1.0)
    np.testing.assert_allclose(recon + kl, nelbo, rtol=1e-5)
    np.testing.assert_allclose(loss, nelbo.mean(), rtol=1e-5)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_elbo_over_several_passes_matches_the_float64_twin_row_by_row(likelihood):
    # 600 rows: three of the core's 256-row passes, the last one partial
    m = make(likelihood, beta=0.7)
    X = data(600, likelihood, seed=5)
    eps = np.random.default_rng(2).standard_normal((600, Z)).astype(np.float32)
    got = m.elbo(X, eps=eps)
    assert got.dtype == np.float64 and got.shape == (600,)
    cache = R.forward(params64(m), X.astype(np.float64), eps.astype(np.float64))
    nelbo, _, _ = R.per_sample_loss(cache, X.astype(np.float64), likelihood, 0.7)
    # float32 layers and row sums of D = 24 terms against float64
    np.testing.assert_allclose(got, -nelbo, rtol=1e-5)
    # a row's ELBO does not depend on the rows around it (Dask chunks rely on it)
    np.testing.assert_array_equal(got[250:260], m.elbo(X[250:260], eps=eps[250:260]))
    with pytest.raises(ValueError, match="eps"):
        m.elbo(X, eps=eps[:10])


def test_logvar_clamp_blocks_gradient():
    m = make("gaussian")
    w = m.get_weights()
    w["logvar.bias"][:2] = [45.0, -45.0]  # pushes two latents outside [-30, 30]
    m.set_weights(w)
    X = data(6, "gaussian") * 0.01
    eps = np.zeros((6, Z), np.float32)
    _, grads = m.loss_and_grad(X, eps=eps)
    _, lv = m.encode(X)
    assert np.all(lv[:, 0] == 30.0) and np.all(lv[:, 1] == -30.0)
    np.testing.assert_array_equal(grads["logvar.bias"][:2], 0.0)
    np.testing.assert_array_equal(grads["logvar.weight"][:, :2], 0.0)
    want = R.to_named(R.loss_and_grad(params64(m), X.astype(np.float64),
                                      eps.astype(np.float64), "gaussian")[1])
    close_grad(grads["logvar.bias"], want["logvar.bias"])


def test_default_eps_is_core_generator():
    """eps=None uses Philox at (seed, step): equal to passing that eps."""
    m = make()
    X = data(8, "bernoulli")
    eps = vaefast.random.reparam_eps(m.seed, m.step_, 0, 8, Z) if hasattr(
        vaefast.random, "reparam_eps") else None
    if eps is None:
        from vaefast import _core
        eps = np.empty((8, Z), np.float32)
        _core.reparam_eps(m.seed, m.step_, 0, eps)
    a, ga = m.loss_and_grad(X)
    b, gb = m.loss_and_grad(X, eps=eps)
    assert a == b
    for k in ga:
        np.testing.assert_array_equal(ga[k], gb[k])


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_one_step_matches_reference_optimizer(optimizer):
    m = make()
    X = data(10, "bernoulli")
    p = params64(m)
    from vaefast import _core
    eps = np.empty((10, Z), np.float32)
    _core.reparam_eps(m.seed, 0, 0, eps)
    _, g = R.loss_and_grad(p, X.astype(np.float64), eps.astype(np.float64))
    lr = 1e-2
    if optimizer == "adam":
        opt = R.Adam(p, lr=lr)
    else:
        opt = R.SGD(p, lr=lr, momentum=0.9)
    want = R.to_named(opt.step(p, g))
    m.fit(X, epochs=1, batch_size=10, learning_rate=lr, optimizer=optimizer, shuffle=False)
    got = m.get_weights()
    for k in want:
        # one Adam step moves each weight by ~lr·sign(g): the update is
        # exact to float32 rounding except where g ~ 0 (|m̂|/√v̂ ill-conditioned);
        # compare with atol = 1e-3·lr (a 0.1% error in the step).
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-3 * lr, err_msg=k)
    assert m.step_ == 1 and m.epoch_ == 1


def test_bit_identical_across_thread_counts():
    X = data(300, "bernoulli")
    results = []
    old = vaefast.get_num_threads()
    try:
        for t in (1, 2):
            vaefast.set_num_threads(t)
            m = vaefast.VAE(D, hidden=(64,), latent_dim=Z, seed=5)
            h = m.fit(X, epochs=2, batch_size=128, progress=False)
            results.append((m.get_weights(), h.history["loss"], m.encode(X)))
    finally:
        vaefast.set_num_threads(old)
    (w1, l1, e1), (w2, l2, e2) = results
    assert l1 == l2
    for k in w1:
        np.testing.assert_array_equal(w1[k], w2[k], err_msg=k)
    np.testing.assert_array_equal(e1[0], e2[0])


def test_exact_resume(tmp_path):
    X = data(200, "bernoulli")
    a = vaefast.VAE(D, hidden=(32,), latent_dim=Z, seed=9)
    a.fit(X, epochs=2, batch_size=64, progress=False, kl_warmup_epochs=3)
    b = vaefast.VAE(D, hidden=(32,), latent_dim=Z, seed=9)
    b.fit(X, epochs=1, batch_size=64, progress=False, kl_warmup_epochs=3)
    path = tmp_path / "half.vae"
    b.save(path)
    c = vaefast.VAE.load(path)
    c.fit(X, epochs=1, batch_size=64, progress=False, kl_warmup_epochs=3)
    assert c.step_ == a.step_ and c.epoch_ == a.epoch_ == 2
    wa, wc = a.get_weights(), c.get_weights()
    for k in wa:
        np.testing.assert_array_equal(wa[k], wc[k], err_msg=k)


def test_fit_chunks_equal_one_step_per_call():
    """fit runs many steps per C call (gathering the shuffled rows in C); the
    result must be bit-identical to one train_step call per minibatch with
    the rows gathered in NumPy, including the short last batch."""
    X = data(203, "bernoulli")
    a = vaefast.VAE(D, hidden=(32,), latent_dim=Z, seed=4)
    a.fit(X, epochs=2, batch_size=16, progress=False)
    b = vaefast.VAE(D, hidden=(32,), latent_dim=Z, seed=4)
    core, step = b._core, 0
    for epoch in range(2):
        order = np.random.default_rng([4, epoch]).permutation(len(X))
        for s in range(0, len(X), 16):
            core.train_step(np.ascontiguousarray(X[order[s:s + 16]]), 4, step, 1e-3, 0.9,
                            0.999, 1e-8, 0.0, "adam", 1.0)
            step += 1
    assert a.step_ == step == 2 * 13
    wa, wb = a.get_weights(), b.get_weights()
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)


def test_train_steps_rejects_bad_rows_before_updating():
    m = make()
    X = data(10, "bernoulli")
    before = m.get_weights()
    sums = np.zeros(3)
    bad = np.arange(10, dtype=np.int64)
    bad[3] = 10  # one past the end
    done, status = m._core.train_steps(X, bad, 4, 0, 1, 0, 0, 1e-3, 0.9, 0.999, 1e-8, 0.0,
                                       "adam", 1.0, sums)
    assert done == 0
    with pytest.raises(ValueError):
        vaefast._core.status_error(status, "train_steps")
    done, status = m._core.train_steps(X, None, 4, 2, 2, 0, 0, 1e-3, 0.9, 0.999, 1e-8, 0.0,
                                       "adam", 1.0, sums)  # batch 3 does not exist
    assert done == 0 and status != 0
    for k, w in m.get_weights().items():
        np.testing.assert_array_equal(w, before[k], err_msg=k)


def test_nonfinite_stops_and_keeps_last_finite_weights():
    """A real divergence (SGD, learning_rate 1e6): the step whose loss is
    NaN/Inf raises NonFiniteError before updating, so the weights equal the
    snapshot taken after the last successful step (one step per epoch here)."""
    X = data(64, "gaussian") * 100
    m = vaefast.VAE(D, hidden=(32,), latent_dim=Z, likelihood="gaussian", seed=1)
    snaps = [m.get_weights()]
    with pytest.raises(vaefast.NonFiniteError, match="diverged"):
        m.fit(X, epochs=200, batch_size=64, learning_rate=1e6, optimizer="sgd",
              callbacks=[lambda e, logs: snaps.append(m.get_weights())], progress=False)
    assert issubclass(vaefast.NonFiniteError, FloatingPointError)
    assert m.step_ == len(snaps) - 1  # the failing step was not counted
    for k, v in m.get_weights().items():
        assert np.isfinite(v).all(), k
        np.testing.assert_array_equal(v, snaps[-1][k], err_msg=k)


def test_set_weights_rejects_bad_input():
    m = make()
    w = m.get_weights()
    bad = dict(w)
    bad["mu.bias"] = np.full(Z, np.nan, np.float32)
    with pytest.raises(ValueError, match="mu.bias"):
        m.set_weights(bad)
    bad = dict(w)
    del bad["output.weight"]
    with pytest.raises(KeyError, match="output.weight"):
        m.set_weights(bad)
    bad = dict(w, extra=np.zeros(1))
    with pytest.raises(KeyError, match="extra"):
        m.set_weights(bad)
    bad = dict(w)
    bad["encoder.0.weight"] = np.zeros((H, D), np.float32)
    with pytest.raises(ValueError, match="encoder.0.weight"):
        m.set_weights(bad)
    # float64, non-contiguous input is accepted and converted
    good = {k: np.asfortranarray(v.astype(np.float64)) for k, v in w.items()}
    good["output.bias"] = good["output.bias"] + 1
    m.set_weights(good)
    np.testing.assert_array_equal(m.get_weights()["output.bias"], w["output.bias"] + 1)


@pytest.mark.parametrize("call, kwargs, match", [
    ("fit", dict(X=np.zeros((4, D + 1))), "X"),
    ("fit", dict(X=np.zeros(D)), "X"),
    ("fit", dict(X=np.zeros((0, D))), "X"),
    ("fit", dict(X=np.full((2, D), np.nan)), "X"),
    ("fit", dict(X=np.full((2, D), 2.0)), r"\[0, 1\]"),
    ("fit", dict(X=np.zeros((2, D)), batch_size=0), "batch_size"),
    ("fit", dict(X=np.zeros((2, D)), epochs=-1), "epochs"),
    ("fit", dict(X=np.zeros((2, D)), learning_rate=float("inf")), "learning_rate"),
    ("fit", dict(X=np.zeros((2, D)), learning_rate=0.0), "learning_rate"),
    ("fit", dict(X=np.zeros((2, D)), optimizer="rmsprop"), "optimizer"),
    ("fit", dict(X=np.zeros((2, D)), validation_data=np.zeros((2, 3))), "validation_data"),
    ("encode", dict(X=np.zeros((2, 3))), "X"),
    ("decode", dict(Z=np.zeros((2, Z + 1))), "Z"),
    ("sample", dict(n=0), "n"),
    ("log_likelihood", dict(X=np.zeros((2, D)), n_samples=0), "n_samples"),
])
def test_validation_errors(call, kwargs, match):
    m = make()
    with pytest.raises((ValueError, TypeError), match=match):
        getattr(m, call)(**kwargs)


def test_constructor_validation():
    with pytest.raises(ValueError, match="likelihood"):
        vaefast.VAE(4, likelihood="multinomial")
    with pytest.raises(ValueError, match="latent_dim"):
        vaefast.VAE(4, latent_dim=0)
    with pytest.raises(ValueError, match=r"hidden\[1\]"):
        vaefast.VAE(4, hidden=(3, 0))
    with pytest.raises(ValueError, match="beta"):
        vaefast.VAE(4, beta=-1)


def test_accepts_int_noncontiguous_float64():
    m = make()
    X = data(12, "bernoulli")
    Xi = X.astype(np.int64)
    Xf = np.asfortranarray(X.astype(np.float64))
    np.testing.assert_array_equal(m.transform(Xi), m.transform(X))
    np.testing.assert_array_equal(m.transform(Xf), m.transform(X))
    strided = np.hstack([X, X])[:, :D]  # a non-contiguous view equal to X
    assert not strided.flags.c_contiguous
    np.testing.assert_array_equal(m.transform(strided), m.transform(X))


def test_concurrent_fit_is_rejected_and_inference_is_safe():
    X = data(2000, "bernoulli")
    m = vaefast.VAE(D, hidden=(64,), latent_dim=Z, seed=0)
    started, release, errors = threading.Event(), threading.Event(), []

    def slow_callback(epoch, logs):
        # hold the first fit inside its epoch loop until the main thread
        # has tried its concurrent calls (deterministic overlap)
        started.set()
        release.wait(30)

    def train():
        try:
            m.fit(X, epochs=2, batch_size=16, callbacks=[slow_callback], progress=False)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=train)
    t.start()
    started.wait(30)
    with pytest.raises(RuntimeError, match="another"):
        m.fit(X, epochs=1, progress=False)
    ref = m.encode(X[:5])  # concurrent inference works (values change over time)
    assert ref[0].shape == (5, Z) and np.isfinite(ref[0]).all()
    with pytest.raises(RuntimeError, match="another"):
        m.set_weights(m.get_weights())
    release.set()
    t.join()
    assert not errors
    # inference from several threads at once agrees with a single-threaded call
    want = m.transform(X)
    outs = [None] * 4

    def infer(i):
        outs[i] = m.transform(X)

    ts = [threading.Thread(target=infer, args=(i,)) for i in range(4)]
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    for o in outs:
        np.testing.assert_array_equal(o, want)


def test_history_callbacks_and_early_stopping():
    X = data(128, "bernoulli")
    m = vaefast.VAE(D, hidden=(16,), latent_dim=Z, seed=0)
    calls = []
    h = m.fit(X, epochs=5, batch_size=32, callbacks=[lambda e, logs: calls.append(e) or e == 1],
              progress=False)
    assert calls == [0, 1] and len(h) == 2 and h.stopped_early
    assert set(h.history) == {"loss", "recon", "kl", "val_loss", "seconds"}
    assert "loss" in str(h)
    # early stopping restores the best weights: with a huge learning rate the
    # validation loss gets worse, and the restored weights are the best epoch's
    m2 = vaefast.VAE(D, hidden=(16,), latent_dim=Z, seed=0)
    snaps = []
    h2 = m2.fit(X, epochs=30, batch_size=32, learning_rate=0.5, optimizer="sgd",
                validation_data=X, early_stopping_patience=2,
                callbacks=[lambda e, logs: snaps.append(m2.get_weights())], progress=False)
    assert h2.stopped_early and len(h2) < 30
    best = int(np.argmin(h2.history["val_loss"]))
    assert best == len(h2) - 3  # patience 2: two epochs without improvement
    for k, v in m2.get_weights().items():
        np.testing.assert_array_equal(v, snaps[best][k], err_msg=k)
    assert not np.array_equal(snaps[-1]["output.bias"], snaps[best]["output.bias"])


def test_sample_is_seeded():
    m = make()
    a, b = m.sample(5, seed=1), m.sample(5, seed=1)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (5, D) and (a >= 0).all() and (a <= 1).all()


def test_log_likelihood_iwae():
    """The estimator equals a float64 brute-force evaluation; it is finite,
    a log-probability of binary data (<= 0) and, on average, no looser with
    K = 200 than with K = 1 (IWAE bounds tighten with K)."""
    m = make()
    X = data(7, "bernoulli")
    ll1 = m.log_likelihood(X, n_samples=1, seed=4)
    el = m.elbo(X, seed=4)
    ll = m.log_likelihood(X, n_samples=200, seed=4)
    assert (ll <= 0).all() and np.isfinite(el).all()
    assert ll.mean() > ll1.mean() - 0.5
    # brute-force check of the estimator on one row in float64
    x = X[:1]
    K = 50
    rng = np.random.default_rng(8)
    got = m.log_likelihood(x, n_samples=K, seed=8)
    mu, lv = (a.astype(np.float64) for a in m.encode(x))
    eps = rng.standard_normal((1, K, Z)).astype(np.float32).astype(np.float64)[0]
    z = (mu + np.exp(0.5 * lv) * eps).astype(np.float32)
    _, logits = R.decode(params64(m), z.astype(np.float64))
    log_px = -np.sum(R.softplus(logits) - x * logits, axis=1)
    z = z.astype(np.float64)
    log_pz = -0.5 * np.sum(z * z, 1) - Z * R.HALF_LOG_2PI
    log_q = -0.5 * np.sum(eps * eps, 1) - 0.5 * lv.sum() - Z * R.HALF_LOG_2PI
    w = log_px + log_pz - log_q
    want = np.log(np.mean(np.exp(w - w.max()))) + w.max()
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_digits_training_lowers_validation_nelbo():
    load_digits = pytest.importorskip("sklearn.datasets").load_digits
    X = load_digits().data / 16.0
    train, val = X[:1500], X[1500:]
    m = vaefast.VAE(64, hidden=(128,), latent_dim=8, seed=0)
    before = -m.elbo(val, seed=0).mean()
    h = m.fit(train, epochs=15, batch_size=64, learning_rate=3e-3, validation_data=val,
              progress=False)
    after = h.history["val_loss"][-1]
    assert np.isfinite(after)
    assert before - after > 15.0, (before, after)
    np.testing.assert_allclose(after, -m.elbo(val, seed=0).mean(), rtol=1e-12)


def test_progress_bar_only_when_asked(capsys):
    X = data(64, "bernoulli")
    m = make()
    m.fit(X, epochs=1, batch_size=16, progress=False)
    assert capsys.readouterr().err == ""
    m.fit(X, epochs=1, batch_size=16, progress=True)
    assert "64/64" in capsys.readouterr().err  # tqdm and the built-in bar both print n/total
    m.fit(X, epochs=1, batch_size=16)  # default: stderr is not a terminal under pytest
    assert capsys.readouterr().err == ""


def test_core_preconditions():
    """vf_vae_create / train_step reject bad arguments with a status, not a crash."""
    from vaefast import _core
    bernoulli = _core.LIKELIHOOD_ENUM["VF_LIKELIHOOD_BERNOULLI"]
    with pytest.raises(ValueError, match="vf_vae_create"):
        _core.VAECore(4, [3], [], 2, 99, 1.0)  # no such likelihood
    with pytest.raises(ValueError, match="vf_vae_create"):
        _core.VAECore(0, [], [], 2, bernoulli, 1.0)
    with pytest.raises(ValueError, match="vf_vae_create"):
        _core.VAECore(4, [3], [], 2, bernoulli, float("nan"))
    with pytest.raises(OverflowError):
        _core.VAECore(4, [2**40], [], 2, bernoulli, 1.0)
    c = _core.VAECore(4, [3], [3], 2, bernoulli, 1.0)
    X = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError):  # beta1 must be < 1
        c.train_step(X, 0, 0, 1e-3, 1.0, 0.999, 1e-8, 0.0, "adam", 1.0)
    with pytest.raises(ValueError):  # adam eps must be > 0
        c.train_step(X, 0, 0, 1e-3, 0.9, 0.999, 0.0, 0.0, "adam", 1.0)
    with pytest.raises(ValueError, match="columns"):
        c.encode(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="work"):
        c.encode(X, np.zeros(1, np.float32))


@pytest.mark.parametrize("comm", [42, "world", object()])
def test_fit_rejects_a_comm_that_is_not_a_communicator(comm):
    m = vaefast.VAE(4, hidden=(3,), latent_dim=2)
    with pytest.raises(TypeError, match="comm must be an mpi4py communicator"):
        m.fit(np.zeros((4, 4), np.float32), epochs=1, comm=comm)
    assert m.step_ == 0  # nothing trained


def test_fit_options_are_declared_once():
    """VAE.fit's signature and docstring come from the option table."""
    import inspect

    from vaefast import _fit_options

    params = list(inspect.signature(vaefast.VAE.fit).parameters)
    assert params == ["self", "X"] + [o.name for o in _fit_options.OPTIONS]
    for o in _fit_options.OPTIONS:
        assert f"\n{o.name} : " in vaefast.VAE.fit.__doc__
    with pytest.raises(TypeError, match="epoch"):
        vaefast.VAE(4).fit(np.zeros((2, 4)), epoch=3)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "poisson"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("call", ["fit", "elbo", "log_likelihood"])
def test_nonfinite_float32_X_is_named_before_any_work(likelihood, bad, call):
    """A float32 X checked as targets skips the separate finite scan (the
    targets' min and max carry any NaN or ±inf: model._check_X); a single
    bad value anywhere must still be refused by name, for a likelihood with
    a bounded target range and for ones without, and fit must leave the
    weights untouched."""
    rng = np.random.default_rng(0)
    X = rng.random((300, 12), dtype=np.float32)
    if likelihood == "poisson":
        X = np.floor(4 * X)
    X[rng.integers(300), rng.integers(12)] = bad
    m = vaefast.VAE(12, hidden=(8,), latent_dim=2, likelihood=likelihood, seed=0)
    before = m.get_weights()
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        if call == "fit":
            m.fit(X, epochs=1, batch_size=64, progress=False)
        elif call == "elbo":
            m.elbo(X)
        else:
            m.log_likelihood(X, n_samples=2)
    for k, v in m.get_weights().items():
        np.testing.assert_array_equal(v, before[k])
