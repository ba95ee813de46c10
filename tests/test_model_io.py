"""VAE.save / VAE.load: round trip, atomicity, damaged and foreign files."""

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

import vaefast
from vaefast.io import serialize as _serialize

D, Z = 12, 3


def trained(tmp_path=None, optimizer="adam"):
    rng = np.random.default_rng(0)
    X = (rng.random((40, D)) < 0.5).astype(np.float32)
    m = vaefast.VAE(D, hidden=(8, 6), latent_dim=Z, seed=4, beta=0.5, decoder_hidden=(7,))
    m.fit(X, epochs=2, batch_size=16, optimizer=optimizer, progress=False)
    return m, X


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_round_trip(tmp_path, optimizer):
    m, X = trained(optimizer=optimizer)
    path = tmp_path / "model.vae"  # no .npz suffix: the file is exactly `path`
    m.save(path)
    assert sorted(os.listdir(tmp_path)) == ["model.vae"]  # no temp file left
    r = vaefast.VAE.load(path)
    assert r.get_config() == m.get_config()
    assert (r.step_, r.epoch_, r.optimizer_) == (m.step_, m.epoch_, m.optimizer_)
    for k, v in m.get_weights().items():
        np.testing.assert_array_equal(r.get_weights()[k], v, err_msg=k)
    for which in (2, 3):
        np.testing.assert_array_equal(r._core.get_buffer(which), m._core.get_buffer(which))
    np.testing.assert_array_equal(r.transform(X), m.transform(X))
    # continuing both gives the same weights (optimizer state was saved)
    m.fit(X, epochs=1, batch_size=16, optimizer=optimizer, progress=False)
    r.fit(X, epochs=1, batch_size=16, optimizer=optimizer, progress=False)
    for k, v in m.get_weights().items():
        np.testing.assert_array_equal(r.get_weights()[k], v, err_msg=k)


def test_save_overwrites_atomically(tmp_path):
    m, _ = trained()
    path = tmp_path / "m.vae"
    path.write_bytes(b"old content")
    m.save(str(path))
    assert vaefast.VAE.load(str(path)).step_ == m.step_


def test_file_is_plain_npz_without_pickles(tmp_path):
    m, _ = trained()
    path = tmp_path / "m.vae"
    m.save(path)
    with np.load(path, allow_pickle=False) as z:
        assert str(z["format"]) == "vaefast.VAE"
        assert int(z["version"]) == 2
        cfg = json.loads(str(z["config"]))
        assert cfg["hidden"] == [8, 6] and cfg["decoder_hidden"] == [7]
        state = json.loads(str(z["state"]))
        assert state["step"] == m.step_ and state["epoch"] == 2 and state["seed"] == 4
        assert z["params"].dtype == np.float32


def test_truncated_file(tmp_path):
    m, _ = trained()
    path = tmp_path / "m.vae"
    m.save(path)
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 10):
        bad = tmp_path / f"cut{cut}.vae"
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError):
            vaefast.VAE.load(bad)


def test_tampered_weights_detected(tmp_path):
    m, _ = trained()
    path = tmp_path / "m.vae"
    m.save(path)
    with np.load(path, allow_pickle=False) as z:
        payload = {k: z[k] for k in z.files}
    payload["params"] = payload["params"].copy()
    payload["params"][0] += 1.0
    bad = tmp_path / "tampered.vae"
    with open(bad, "wb") as f:
        np.savez(f, **payload)
    with pytest.raises(ValueError, match="checksum"):
        vaefast.VAE.load(bad)


def test_flipped_byte_detected(tmp_path):
    m, _ = trained()
    path = tmp_path / "m.vae"
    m.save(path)
    data = bytearray(path.read_bytes())
    # flip a byte inside the params array's data (past the zip/npy headers)
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("params.npy")
    data[info.header_offset + 200] ^= 0xFF
    bad = tmp_path / "flipped.vae"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError):
        vaefast.VAE.load(bad)


def test_foreign_files(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a"):
        vaefast.VAE.load(text)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.arange(3))
    with pytest.raises(ValueError, match="not a vaefast model"):
        vaefast.VAE.load(other)
    with pytest.raises(FileNotFoundError):
        vaefast.VAE.load(tmp_path / "missing.vae")


def test_future_version_rejected(tmp_path):
    m, _ = trained()
    path = tmp_path / "m.vae"
    m.save(path)
    with np.load(path, allow_pickle=False) as z:
        payload = {k: z[k] for k in z.files}
    payload["version"] = np.array(99, dtype=np.int64)
    payload["sha256"] = np.array(_serialize._digest(payload))
    bad = tmp_path / "v99.vae"
    with open(bad, "wb") as f:
        np.savez(f, **payload)
    with pytest.raises(ValueError, match="version 99"):
        vaefast.VAE.load(bad)


def test_version_1_file_still_loads():
    # Written by the code before format version 2 (conditions, new likelihoods),
    # with the parameters and embedding it had then.
    here = Path(__file__).parent / "data"
    m = vaefast.VAE.load(here / "model_v1_bernoulli.vae")
    with np.load(here / "model_v1_bernoulli_expect.npz") as want:
        np.testing.assert_array_equal(m._core.get_buffer(0), want["params"])
        # mu was computed by the avx2 kernels; other kernel sets round differently
        np.testing.assert_allclose(m.transform(want["X"]), want["mu"], rtol=1e-5, atol=1e-6)
        assert m.step_ == int(want["step"])
    assert m.n_conditions == 0 and m.variance == "unit" and m.likelihood == "bernoulli"


@pytest.mark.parametrize("kwargs", [
    dict(likelihood="negative_binomial"), dict(likelihood="gaussian", variance="feature"),
    dict(likelihood="gaussian", variance="sample"), dict(likelihood="poisson", n_conditions=3)])
def test_round_trip_new_models(tmp_path, kwargs):
    rng = np.random.default_rng(0)
    X = rng.poisson(2.0, (40, 6)).astype(np.float32)
    c = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 40)] if "n_conditions" in kwargs else None
    m = vaefast.VAE(6, hidden=(8,), latent_dim=2, seed=4, **kwargs)
    m.fit(X, epochs=2, batch_size=16, progress=False, c=c)
    m.save(tmp_path / "m.vae")
    back = vaefast.VAE.load(tmp_path / "m.vae")
    assert back.get_config() == m.get_config()
    for k, v in m.get_weights().items():
        np.testing.assert_array_equal(back.get_weights()[k], v, err_msg=k)
    np.testing.assert_array_equal(back.elbo(X, seed=1, c=c), m.elbo(X, seed=1, c=c))
