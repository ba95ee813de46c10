"""The held update (csrc/vae_step.c): on more than one thread, a training
call from CSR rows runs each step's optimizer step at the start of the next
step, in one lane beside that step's forward pass up to the output layer
(the other lane updates the output layer's W), and the last step's at the
end of the call; its backward pass runs in two lanes too (the output
layer's weight gradient beside everything below it).

Oracle: the same fit on one thread, where the update is never held and runs
at the end of its own step. Both update every parameter with the same
element-wise kernels and run the same forward pass on the updated
parameters, so weights, loss history and step count must be equal bit for
bit, including a fit that fails part way (a step's failure counts no step
after the last applied update, and leaves that update in place).
"""

import numpy as np
import pytest

sp = pytest.importorskip("scipy.sparse")

import vaefast  # noqa: E402

GENES = 260  # the output layer's W: 128 x 520 (ZINB's two heads), held from 65,536 entries


@pytest.fixture(autouse=True)
def calls_of_many_steps(monkeypatch):
    """fit paces its C calls at 0.1 s each (vaefast/training/loop.py), so on
    a slow kernel set (bf16's scalar emulation) every call would be one step
    and nothing held; here the calls grow to 4x the last one's steps."""
    from vaefast.training import loop

    monkeypatch.setattr(loop, "_SECONDS_PER_CALL", 1e6)


@pytest.fixture(scope="module")
def counts():
    """(128, GENES) counts, about 90% zeros, no empty row."""
    rng = np.random.default_rng(11)
    X = rng.poisson(2.0, (128, GENES)).astype(np.float32) + 1
    X[rng.random(X.shape) >= 0.1] = 0
    X[:, 0] += 1
    return sp.csr_matrix(X)


# model variants: the scVI defaults, batch codes injected into every layer
# of the decoder and the encoder with a per-batch dispersion, and no
# normalisation or dropout with two hidden layers
VARIANTS = {
    "scvi": dict(use_batch_norm="both", dropout_rate=0.1),
    "covariates": dict(use_batch_norm="both", dropout_rate=0.1, categorical_covariates=(3,),
                       deeply_inject_covariates=True, encode_covariates=True,
                       dispersion="gene-batch"),
    "plain": dict(hidden=(128, 64), use_batch_norm="none", dropout_rate=0.0),
}


def fit(X, threads, precision="fp32", epochs=2, variant="scvi", **kw):
    vaefast.set_num_threads(threads)
    model_kw = {"hidden": (128,), **VARIANTS[variant]}
    m = vaefast.VAE(GENES, latent_dim=10, likelihood="zinb", seed=4, precision=precision,
                    **model_kw)
    if "categorical_covariates" in model_kw:
        kw["codes"] = (np.arange(X.shape[0]) % 3).astype(np.int32)[:, None]
    error = None
    try:
        history = m.fit(X, epochs=epochs, batch_size=32, progress=False, **kw)
    except vaefast.NonFiniteError as e:
        history, error = None, e
    return m, history, error


def assert_same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_array_equal(wa[k].view(np.uint32), wb[k].view(np.uint32), err_msg=k)


_one_thread = {}


def one_thread_fit(counts, precision, variant):
    """The oracle, once per (precision, variant) for every thread count."""
    key = (precision, variant)
    if key not in _one_thread:
        _one_thread[key] = fit(counts, 1, precision, variant=variant)
    return _one_thread[key]


# every variant in both precisions on 2 threads; 3 threads (one lane on two
# threads, the other on one) once per precision
CASES = [(v, p, 2) for v in VARIANTS for p in ("fp32", "bf16")] + [
    ("covariates", "fp32", 3), ("plain", "bf16", 3)]


@pytest.mark.parametrize("variant,precision,threads", CASES)
def test_same_bits_as_one_thread(counts, threads_setting, precision, threads, variant):
    want, h_want, _ = one_thread_fit(counts, precision, variant)
    got, h_got, _ = fit(counts, threads, precision, variant=variant)
    assert want._core.held_updates() == 0  # one thread: never held
    # calls of 1, 3 and 4 steps: every step but the last of a call is held
    assert got._core.held_updates() == 5
    assert got.step_ == want.step_ == 8
    assert_same_weights(got, want)
    assert h_got.history["loss"] == h_want.history["loss"]
    np.testing.assert_array_equal(got._core.get_norm_stats(), want._core.get_norm_stats())


@pytest.mark.parametrize("learning_rate", [5e5, 2e6])
def test_a_failing_fit_stops_where_one_thread_stops(counts, threads_setting, learning_rate):
    """A large learning rate makes a step non-finite (its loss, a gradient,
    or the optimizer's own arithmetic) inside a training call of more than
    one step (here steps 2 and 1): the held fit raises at the same step as
    the one-thread fit, with the same weights and step count."""
    want, _, e_want = fit(counts, 1, epochs=8, learning_rate=learning_rate)
    got, _, e_got = fit(counts, 2, epochs=8, learning_rate=learning_rate)
    assert e_want is not None and e_got is not None
    assert str(e_got) == str(e_want)  # names the same epoch and step
    assert got._core.held_updates() >= 1  # the failing call held an update
    assert got.step_ == want.step_ >= 1
    assert_same_weights(got, want)
    for w in got.get_weights().values():
        assert np.isfinite(w).all()


def test_dense_rows_are_not_held(counts, threads_setting):
    """Dense input: the forward up to the output layer is a large product,
    which a lane would run on one thread, so the update is not held."""
    m, _, _ = fit(counts.toarray(), 2)
    assert m._core.held_updates() == 0
