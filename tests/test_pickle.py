"""Models pickle through their saved-model bytes (pickle, copy, cloudpickle).

The oracle is the original object: a copy must hold the same config, weights,
optimizer moments and counters, and continue training bit for bit as the
original does.
"""

import copy
import pickle

import numpy as np
import pytest

import vaefast


def data(n=120, d=12, seed=0):
    return np.random.default_rng(seed).random((n, d)).astype(np.float32)


def trained():
    m = vaefast.VAE(12, hidden=(10,), latent_dim=3, seed=5)
    m.fit(data(), epochs=2, batch_size=32, progress=False)
    return m


def cloudpickle_roundtrip(m):
    cloudpickle = pytest.importorskip("cloudpickle")
    return pickle.loads(cloudpickle.dumps(m))


ROUNDTRIPS = {
    "pickle": lambda m: pickle.loads(pickle.dumps(m)),
    "deepcopy": copy.deepcopy,
    "copy": copy.copy,
    "cloudpickle": cloudpickle_roundtrip,
    "bytes": lambda m: vaefast.VAE.from_bytes(m.to_bytes()),
}


def assert_same_state(a, b):
    assert a.get_config() == b.get_config()
    assert (a.step_, a.epoch_, a.optimizer_) == (b.step_, b.epoch_, b.optimizer_)
    for which in (0, 2, 3):  # parameters, Adam's first and second moments
        np.testing.assert_array_equal(a._core.get_buffer(which), b._core.get_buffer(which))


@pytest.mark.parametrize("how", sorted(ROUNDTRIPS))
def test_copy_holds_the_state_and_continues_training_bit_identically(how):
    original = trained()
    clone = ROUNDTRIPS[how](original)
    assert clone is not original and clone._core is not original._core
    assert_same_state(clone, original)
    X = data(seed=1)
    original.fit(X, epochs=1, batch_size=16, progress=False)
    clone.fit(X, epochs=1, batch_size=16, progress=False)
    assert_same_state(clone, original)


def test_untrained_model_round_trips():
    m = vaefast.VAE(5, hidden=(), latent_dim=2, likelihood="gaussian", beta=0.5, seed=9,
                    decoder_hidden=(4, 3))
    assert_same_state(pickle.loads(pickle.dumps(m)), m)


def test_to_bytes_is_the_saved_file(tmp_path):
    m = trained()
    m.save(tmp_path / "m.vae")
    loaded = vaefast.VAE.from_bytes((tmp_path / "m.vae").read_bytes())
    assert_same_state(loaded, m)
    assert m.to_bytes()[:4] == (tmp_path / "m.vae").read_bytes()[:4] == b"PK\x03\x04"


def test_from_bytes_rejects_damage():
    blob = trained().to_bytes()
    with pytest.raises(TypeError, match="data must be bytes"):
        vaefast.VAE.from_bytes("not bytes")
    with pytest.raises(ValueError):
        vaefast.VAE.from_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="not a vaefast model"):
        vaefast.VAE.from_bytes(b"hello world")
    # the temporary file's name never leaks into the message
    with pytest.raises(ValueError) as info:
        vaefast.VAE.from_bytes(b"hello world")
    assert "vaefast-" not in str(info.value)


def test_fitted_transformer_pickles():
    pytest.importorskip("sklearn")
    from vaefast.sklearn import VAETransformer

    X = data()
    est = VAETransformer(hidden=(8,), latent_dim=2, epochs=1, random_state=0).fit(X)
    for roundtrip in (ROUNDTRIPS["pickle"], ROUNDTRIPS["deepcopy"], cloudpickle_roundtrip):
        clone = roundtrip(est)
        assert_same_state(clone.model_, est.model_)
        np.testing.assert_array_equal(clone.transform(X), est.transform(X))
        np.testing.assert_array_equal(clone.score_samples(X), est.score_samples(X))
