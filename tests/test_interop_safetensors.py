"""VAE.save(path, format="safetensors") and VAE.load reading both formats.

Exactness: weights, optimizer moments and counters are float32/int copies,
so a round trip is bit-identical and training resumed from a loaded file
equals training that never stopped. The independent oracle for the file
layout is the safetensors package itself (it reads our files; we read its).
"""

import json
import pickle

import numpy as np
import pytest

import vaefast
from vaefast.io import safetensors as _safetensors

D = 12


def trained(optimizer="adam"):
    m = vaefast.VAE(D, hidden=(8,), latent_dim=3, beta=0.8, seed=4)
    X = (np.random.default_rng(0).random((40, D)) < 0.4).astype(np.float32)
    m.fit(X, epochs=2, batch_size=8, optimizer=optimizer, progress=False)
    return m, X


def assert_same_model(a, b):
    assert a.get_config() == b.get_config()
    assert (a.step_, a.epoch_, a.optimizer_) == (b.step_, b.epoch_, b.optimizer_)
    for which in (0, 2, 3):  # params, both moments
        np.testing.assert_array_equal(a._core.get_buffer(which), b._core.get_buffer(which))


@pytest.mark.parametrize("optimizer", ["adam", "sgd", None])
def test_round_trip_is_exact_and_training_resumes(tmp_path, optimizer):
    if optimizer is None:
        m, X = vaefast.VAE(D, hidden=(8,), latent_dim=3), None
    else:
        m, X = trained(optimizer)
    path = tmp_path / "model.bin"  # the name says nothing about the format
    m.save(path, format="safetensors")
    back = vaefast.VAE.load(path)
    assert_same_model(m, back)
    if X is not None:
        m.fit(X, epochs=1, batch_size=8, optimizer=optimizer, progress=False)
        back.fit(X, epochs=1, batch_size=8, optimizer=optimizer, progress=False)
        assert_same_model(m, back)


# (likelihood, variance, n_conditions) beyond the plain Bernoulli model above.
FAMILY = [("gaussian", "feature", 0), ("gaussian", "sample", 2), ("poisson", "unit", 0),
          ("negative_binomial", "unit", 3), ("bernoulli", "unit", 2)]


@pytest.mark.parametrize("likelihood, variance, n_conditions", FAMILY)
def test_model_family_round_trip_is_exact(tmp_path, likelihood, variance, n_conditions):
    """Every configuration, with its per-feature likelihood parameters
    (likelihood.logvar, likelihood.log_theta) and conditions, trained a little
    so moments exist: the file holds get_weights() and resumes exactly."""
    st = pytest.importorskip("safetensors.numpy", reason="cross-check needs safetensors")
    m = vaefast.VAE(D, hidden=(8,), latent_dim=3, likelihood=likelihood, variance=variance,
                    n_conditions=n_conditions, seed=2)
    rng = np.random.default_rng(1)
    X = (rng.poisson(2.0, (40, D)) if likelihood in ("poisson", "negative_binomial")
         else rng.random((40, D)) < 0.4).astype(np.float32)
    c = rng.standard_normal((40, n_conditions)).astype(np.float32) if n_conditions else None
    m.fit(X, epochs=1, batch_size=8, c=c, progress=False)
    m.save(tmp_path / "m.st", format="safetensors")
    back = vaefast.VAE.load(tmp_path / "m.st")
    assert_same_model(m, back)
    tensors = st.load_file(str(tmp_path / "m.st"))
    weights = m.get_weights()
    assert {k for k in tensors if not k.startswith("optimizer.")} == set(weights)
    for k, v in weights.items():
        np.testing.assert_array_equal(tensors[k], v)
    m.fit(X, epochs=1, batch_size=8, c=c, progress=False)
    back.fit(X, epochs=1, batch_size=8, c=c, progress=False)
    assert_same_model(m, back)


def test_format_is_detected_from_content_not_name(tmp_path):
    m, _ = trained()
    m.save(tmp_path / "a.npz", format="safetensors")
    m.save(tmp_path / "b.safetensors")  # default: the npz-based format
    assert (tmp_path / "b.safetensors").read_bytes()[:4] == b"PK\x03\x04"
    assert (tmp_path / "a.npz").read_bytes()[8:9] == b"{"
    assert_same_model(m, vaefast.VAE.load(tmp_path / "a.npz"))
    assert_same_model(m, vaefast.VAE.load(tmp_path / "b.safetensors"))
    with pytest.raises(ValueError, match="format must be one of"):
        m.save(tmp_path / "c", format="pickle")
    assert not (tmp_path / "c").exists()


def test_safetensors_package_reads_our_file_and_we_read_its(tmp_path):
    st = pytest.importorskip("safetensors.numpy", reason="cross-check needs safetensors")
    from safetensors import safe_open

    m, _ = trained()
    m.save(tmp_path / "m.st", format="safetensors")
    tensors = st.load_file(str(tmp_path / "m.st"))
    weights = m.get_weights()
    assert {k for k in tensors if not k.startswith("optimizer.")} == set(weights)
    for k, v in weights.items():
        np.testing.assert_array_equal(tensors[k], v)
        assert tensors[k].dtype == np.float32
    moments = m._named_from_flat(m._core.get_buffer(2))
    for k, v in moments.items():
        np.testing.assert_array_equal(tensors["optimizer.moment1." + k], v)
    with safe_open(str(tmp_path / "m.st"), "np") as f:
        metadata = f.metadata()
    assert json.loads(metadata["config"]) == m.get_config()
    assert json.loads(metadata["state"])["step"] == m.step_
    # The package writes tensors in its own order and layout; we still read it.
    st.save_file(tensors, str(tmp_path / "theirs.st"), metadata=metadata)
    assert_same_model(m, vaefast.VAE.load(tmp_path / "theirs.st"))


def test_foreign_safetensors_file_is_not_a_model(tmp_path):
    m, _ = trained()
    blob = _safetensors.encode(m.get_weights(), {"producer": "someone else"})
    (tmp_path / "w.st").write_bytes(blob)
    with pytest.raises(ValueError, match="not a vaefast model.*from_torch"):
        vaefast.VAE.load(tmp_path / "w.st")


def test_truncated_file_is_a_clear_error(tmp_path):
    m, _ = trained()
    m.save(tmp_path / "m.st", format="safetensors")
    blob = (tmp_path / "m.st").read_bytes()
    (n,) = np.frombuffer(blob[:8], "<u8")
    cuts = sorted({0, 4, 8, 9, 8 + int(n) // 2, 8 + int(n), 8 + int(n) + 1, len(blob) - 1,
                   *range(0, len(blob), 97)})
    for cut in cuts:
        (tmp_path / "t").write_bytes(blob[:cut])
        with pytest.raises(ValueError, match="truncated|corrupt|not a vaefast model file"):
            vaefast.VAE.load(tmp_path / "t")
    (tmp_path / "t").write_bytes(blob + b"\0")  # trailing bytes are damage too
    with pytest.raises(ValueError, match="corrupt"):
        vaefast.VAE.load(tmp_path / "t")


def header_and_data(blob):
    (n,) = np.frombuffer(blob[:8], "<u8")
    return json.loads(blob[8:8 + int(n)]), blob[8 + int(n):]


def rewrite(header, data):
    text = json.dumps(header).encode()
    return np.array([len(text)], "<u8").tobytes() + text + data


def test_tampered_file_is_a_clear_error(tmp_path):
    m, _ = trained()
    m.save(tmp_path / "m.st", format="safetensors")
    blob = (tmp_path / "m.st").read_bytes()
    header, data = header_and_data(blob)

    def load(new_blob):
        (tmp_path / "t").write_bytes(new_blob)
        return vaefast.VAE.load(tmp_path / "t")

    flipped = bytearray(blob)
    flipped[-5] ^= 0x40  # one bit of a weight
    with pytest.raises(ValueError, match="checksum mismatch"):
        load(bytes(flipped))
    h = json.loads(json.dumps(header))
    h["__metadata__"]["config"] = h["__metadata__"]["config"].replace('"beta": 0.8',
                                                                      '"beta": 0.5')
    with pytest.raises(ValueError, match="checksum mismatch"):
        load(rewrite(h, data))
    h = json.loads(json.dumps(header))  # swap two same-shaped tensors' data
    h["mu.weight"]["data_offsets"], h["logvar.weight"]["data_offsets"] = \
        h["logvar.weight"]["data_offsets"], h["mu.weight"]["data_offsets"]
    with pytest.raises(ValueError, match="checksum mismatch"):
        load(rewrite(h, data))
    h = json.loads(json.dumps(header))
    h["mu.weight"]["shape"] = [3, 8]
    with pytest.raises(ValueError, match="checksum mismatch|shape"):
        load(rewrite(h, data))
    h = json.loads(json.dumps(header))
    h["mu.weight"]["dtype"] = "F64"
    with pytest.raises(ValueError, match="'mu.weight' has shape .* but spans"):
        load(rewrite(h, data))
    h = json.loads(json.dumps(header))
    h["mu.weight"]["data_offsets"][1] += 4
    with pytest.raises(ValueError, match="'mu.weight'"):
        load(rewrite(h, data))
    h = json.loads(json.dumps(header))
    h["mu.weight"]["dtype"] = "O"
    with pytest.raises(ValueError, match="unsupported dtype 'O'"):
        load(rewrite(h, data))
    h = json.loads(json.dumps(header))
    del h["__metadata__"]["sha256"]
    with pytest.raises(ValueError, match="missing metadata 'sha256'"):
        load(rewrite(h, data))
    with pytest.raises(ValueError, match="unreadable safetensors header"):
        load(blob[:8] + b"{" + b"\xff" * (len(blob) - 9))
    huge = np.array([2**62], "<u8").tobytes() + b"{}"
    with pytest.raises(ValueError, match="not a vaefast model file|truncated"):
        load(huge)


def test_loading_never_unpickles(tmp_path, monkeypatch):
    m, _ = trained()
    m.save(tmp_path / "a", format="safetensors")
    m.save(tmp_path / "b")

    def refuse(*args, **kwargs):
        raise AssertionError("pickle used while loading a model")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    assert_same_model(m, vaefast.VAE.load(tmp_path / "a"))
    assert_same_model(m, vaefast.VAE.load(tmp_path / "b"))


def test_future_version_is_rejected(tmp_path):
    from vaefast.io import serialize as _serialize

    m, _ = trained()
    m.save(tmp_path / "m.st", format="safetensors")
    tensors, metadata = _safetensors.decode((tmp_path / "m.st").read_bytes(), "m.st")
    metadata = {**metadata, "version": "99"}
    metadata["sha256"] = _serialize._safetensors_digest(metadata, tensors)
    (tmp_path / "v99").write_bytes(_safetensors.encode(tensors, metadata))
    with pytest.raises(ValueError, match="version 99; this vaefast reads versions 1, 2"):
        vaefast.VAE.load(tmp_path / "v99")


def test_import_vaefast_imports_no_engine(run_python):
    out = run_python(
        "import sys, vaefast, vaefast.interop; "
        "print(sorted(m for m in ('onnx', 'onnxruntime', 'torch', 'safetensors') "
        "if m in sys.modules))")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("package, call", [
    ("onnx", lambda m, tmp: vaefast.interop.to_onnx(m, tmp / "m.onnx")),
    ("torch", lambda m, tmp: vaefast.interop.to_torch(m)),
])
def test_missing_engine_names_the_extra(tmp_path, monkeypatch, package, call):
    import sys

    import vaefast.interop

    monkeypatch.setitem(sys.modules, package, None)  # import now fails
    with pytest.raises(ImportError, match=rf"needs the '{package}' package: pip install "
                                          r"\"vaefast\[interop\]\""):
        call(vaefast.VAE(D, hidden=(4,), latent_dim=2), tmp_path)


def test_random_damage_is_always_a_clear_error(tmp_path):
    """A one-byte change anywhere is a ValueError, or loads the very same
    model (JSON whitespace in the header's padding may change harmlessly):
    never a crash, never a different model."""
    hypothesis = pytest.importorskip("hypothesis", reason="fuzzing needs hypothesis")
    st = hypothesis.strategies
    m = vaefast.VAE(D, hidden=(4,), latent_dim=2)
    m.save(tmp_path / "m.st", format="safetensors")
    blob = (tmp_path / "m.st").read_bytes()

    @hypothesis.settings(max_examples=150, deadline=None, database=None)
    @hypothesis.given(pos=st.integers(0, len(blob) - 1), value=st.integers(0, 255))
    def damaged(pos, value):
        hypothesis.assume(blob[pos] != value)
        bad = bytearray(blob)
        bad[pos] = value
        (tmp_path / "t").write_bytes(bytes(bad))
        try:
            loaded = vaefast.VAE.load(tmp_path / "t")
        except ValueError:
            return
        assert_same_model(m, loaded)

    damaged()
