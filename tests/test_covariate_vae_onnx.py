"""ONNX export of a VAE with categorical covariates (vaefast/interop/onnx_export.py:
Gather + ReduceSum + Add after each receiving Gemm) run by onnxruntime
against the model's own encode / decode, within float32 rounding (1e-5 of
the outputs' scale: a different summation order of the same float32 terms)."""

import numpy as np
import pytest

import vaefast
import vaefast.interop

pytest.importorskip("onnx", reason="ONNX export needs the interop extra")
ort = pytest.importorskip("onnxruntime", reason="running the graph needs onnxruntime")

D, Z = 9, 3
LEVELS = (3, 2)
CASES = [dict(hidden=(8, 6), deeply_inject_covariates=True, encode_covariates=True),
         dict(hidden=(), encode_covariates=True),  # the mu/logvar heads receive them
         dict(hidden=(8,), deeply_inject_covariates=False),
         dict(hidden=(8, 6), use_batch_norm="both")]  # tables scaled with the folded norm


def model(rng, case, n_cont=0):
    m = vaefast.VAE(D, latent_dim=Z, likelihood="zinb", seed=1, n_conditions=n_cont,
                    categorical_covariates=LEVELS, **case)
    w = m.get_weights()
    for k in w:
        if k.endswith(".covariates"):  # larger than the init: the tables must matter
            w[k] = rng.standard_normal(w[k].shape).astype(np.float32)
        if k.endswith(".batch_norm.weight"):
            w[k] = rng.uniform(0.5, 2.0, w[k].shape).astype(np.float32)
    m.set_weights(w)
    if "use_batch_norm" in case:  # running statistics other than (0, 1)
        x, codes, _ = data(rng, 256)
        m.fit(x, epochs=1, batch_size=64, codes=codes, learning_rate=1e-6, progress=False)
    return m


def data(rng, B=30, n_cont=0):
    x = rng.poisson(1.5, (B, D)).astype(np.float32)
    x[:, 0] += 1
    codes = np.stack([rng.integers(0, n, B) for n in LEVELS], axis=1).astype(np.int64)
    return x, codes, rng.standard_normal((B, n_cont)).astype(np.float32) if n_cont else None


def run(m, part, path, feeds):
    vaefast.interop.to_onnx(m, path, part=part)
    session = ort.InferenceSession(str(path))
    names = [i.name for i in session.get_inputs()]
    return names, session.run(None, {k: v for k, v in feeds.items() if k in names})


@pytest.mark.parametrize("case", CASES, ids=range(len(CASES)))
def test_onnx_graphs_match_the_model(rng, case, tmp_path):
    n_cont = 2 if case.get("encode_covariates") else 0
    m = model(rng, case, n_cont)
    x, codes, cont = data(rng, n_cont=n_cont)
    feeds = {"x": x, "codes": codes, **({"c": cont} if n_cont else {})}
    mu, logvar = m.encode(x, cont, codes=codes)
    names, (o_mu, o_lv) = run(m, "encoder", tmp_path / "e.onnx", feeds)
    # the encoder part reads codes exactly when the encoder receives them
    assert ("codes" in names) == bool(case.get("encode_covariates"))
    np.testing.assert_allclose(o_mu, mu, rtol=1e-5, atol=1e-5 * np.abs(mu).max())
    np.testing.assert_allclose(o_lv, logvar, rtol=1e-5, atol=1e-5 * np.abs(logvar).max())
    names, (mean,) = run(m, "decoder", tmp_path / "d.onnx", {**feeds, "z": mu})
    assert "codes" in names
    want = m.decode(mu, cont, codes=codes)
    np.testing.assert_allclose(mean, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    other = codes.copy()
    other[:, 0] = (other[:, 0] + 1) % LEVELS[0]
    _, (moved,) = run(m, "decoder", tmp_path / "d.onnx", {**feeds, "z": mu, "codes": other})
    assert not np.allclose(moved, mean)  # the graph reads the codes
    _, (recon,) = run(m, "vae", tmp_path / "v.onnx", feeds)
    want = m.decode(mu, cont, codes=codes)  # reconstruct's z = mu, size factor 1
    np.testing.assert_allclose(recon, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
