import os

import numpy as np
import pytest

from vaefast import VAE, cli


def _data(tmp_path, n=40, d=16, seed=0):
    X = np.random.default_rng(seed).random((n, d)).astype(np.float32)
    p = tmp_path / "x.npy"
    np.save(p, X)
    return X, str(p)


def _train(tmp_path, extra=()):
    X, p = _data(tmp_path)
    m = str(tmp_path / "m.vae")
    rc = cli.main(["train", p, "--latent-dim", "3", "--hidden", "8,6", "--epochs", "2",
                   "--batch-size", "16", "--out", m, *extra])
    assert rc == 0
    return X, p, m


def test_train_info_encode_sample_evaluate(tmp_path, capsys):
    X, p, m = _train(tmp_path)
    model = VAE.load(m)
    assert model.hidden == (8, 6) and model.latent_dim == 3 and model.step_ == 6  # 2 epochs × ceil(40/16)
    assert cli.main(["info", m]) == 0
    out = capsys.readouterr().out
    # 16->8->6 encoder, 6->2*3 head, 3->6->8 decoder, 8->16 output: weights + biases
    n = (16*8+8) + (8*6+6) + (6*6+6) + (3*6+6) + (6*8+8) + (8*16+16)
    assert f"parameters: {n}\n" in out and "training step: 6" in out
    z = str(tmp_path / "z.npy")
    assert cli.main(["encode", m, p, "--out", z]) == 0
    np.testing.assert_array_equal(np.load(z), model.transform(X))
    s = str(tmp_path / "s.npy")
    assert cli.main(["sample", m, "-n", "5", "--seed", "3", "--out", s,
                     "--png", str(tmp_path / "s.png")]) == 0
    np.testing.assert_array_equal(np.load(s), model.sample(5, seed=3))
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    assert cli.main(["evaluate", m, p, "--samples", "10"]) == 0
    out = capsys.readouterr().out
    elbo = float(np.mean(model.elbo(X, seed=0)))
    assert f"mean ELBO: {elbo:.4f}" in out


def test_npz_and_csv(tmp_path):
    X = np.random.default_rng(1).random((10, 4))
    np.savez(tmp_path / "one.npz", a=X)
    np.savez(tmp_path / "two.npz", a=X, b=X)
    np.savetxt(tmp_path / "x.csv", X, delimiter=",")
    np.testing.assert_allclose(cli.load_data(str(tmp_path / "one.npz")), X, rtol=1e-7)
    np.testing.assert_allclose(cli.load_data(str(tmp_path / "two.npz"), key="b"), X, rtol=1e-7)
    np.testing.assert_allclose(cli.load_data(str(tmp_path / "x.csv")), X, rtol=1e-7)
    with pytest.raises(cli.CLIError, match="--key"):
        cli.load_data(str(tmp_path / "two.npz"))


def _err(capsys, argv):
    rc = cli.main(argv)
    err = capsys.readouterr().err
    assert rc == 2
    assert "Traceback" not in err and err.strip().count("\n") == 0, err
    return err


def test_errors(tmp_path, capsys):
    X, p, m = _train(tmp_path)
    capsys.readouterr()
    assert "not found" in _err(capsys, ["info", str(tmp_path / "nope.vae")])
    assert "not found" in _err(capsys, ["encode", m, str(tmp_path / "nope.npy"), "--out", "z.npy"])
    assert "unknown data" in _err(capsys, ["train", "mnist-digits", "--out", "m"])
    np.save(tmp_path / "wide.npy", np.zeros((3, 5), np.float32))
    assert "expects 16" in _err(capsys, ["encode", m, str(tmp_path / "wide.npy"), "--out", "z.npy"])
    np.save(tmp_path / "big.npy", X * 3)
    err = _err(capsys, ["train", str(tmp_path / "big.npy"), "--out", str(tmp_path / "b")])
    assert "--likelihood gaussian" in err
    np.save(tmp_path / "flat.npy", np.zeros(5, np.float32))
    assert "2-D" in _err(capsys, ["train", str(tmp_path / "flat.npy"), "--out", "b"])
    assert "--hidden" in _err(capsys, ["train", p, "--hidden", "4,x", "--out", "b"])
    assert "not found" in _err(capsys, ["train", "fashion-mnist", "--data-dir",
                                        str(tmp_path / "none"), "--out", "b"])
    assert cli.main(["frobnicate"]) == 2


def test_gaussian_train_accepts_unscaled(tmp_path):
    np.save(tmp_path / "big.npy", np.random.default_rng(2).normal(size=(20, 5)).astype(np.float32))
    assert cli.main(["train", str(tmp_path / "big.npy"), "--likelihood", "gaussian",
                     "--hidden", "4", "--latent-dim", "2", "--epochs", "1",
                     "--out", str(tmp_path / "g.vae")]) == 0
    assert VAE.load(str(tmp_path / "g.vae")).likelihood == "gaussian"


def test_demo_subprocess(run_python, tmp_path):
    pytest.importorskip("sklearn")
    r = run_python("import sys; from vaefast.__main__ import main; "
                   "sys.exit(main(['demo', '--epochs', '2', '--out', 'tmp']))")
    assert r.returncode == 0, r.stderr
    for name in ("samples.png", "reconstructions.png"):
        assert os.path.join("tmp", name) in r.stdout
        assert (tmp_path / "tmp" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert r.stdout.count("\n    2 ") == 1  # the epoch-2 table row


def test_demo_without_sklearn(monkeypatch, tmp_path, capsys):
    from vaefast import datasets

    def missing(return_y=False):
        raise ImportError("no sklearn")

    monkeypatch.setattr(datasets, "load_digits", missing)
    assert cli.main(["demo", "--out", str(tmp_path / "d")]) == 2
    assert 'pip install "vaefast[sklearn]"' in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_walkthrough_command(capsys):
    assert cli.main(["walkthrough"]) == 0
    assert "dKL/dsigma" in capsys.readouterr().out
    assert cli.main(["walkthrough", "--model", "scvi", "--dispersion", "gene"]) == 0
    out = capsys.readouterr().out
    assert "ZINB, dispersion 'gene'" in out and "dRecon/dpi" in out


def test_module_runs_from_the_source_checkout(request, tmp_path):
    """`python -m vaefast demo` in the repository root (the README's command)
    must use the installed compiled core, not fail on the source folder."""
    import os
    import subprocess
    import sys

    pytest.importorskip("sklearn")
    env = dict(os.environ)
    env.pop("VAEFAST_ISA", None)
    result = subprocess.run([sys.executable, "-m", "vaefast", "demo", "--epochs", "1",
                             "--out", str(tmp_path)], cwd=request.config.rootpath, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout


def test_conditional_train_encode_evaluate_sample(tmp_path, capsys):
    rng = np.random.default_rng(1)
    X = rng.random((30, 6)).astype(np.float32)
    labels = rng.integers(0, 3, 30)
    data = tmp_path / "xl.npy"
    np.save(data, np.concatenate([X, labels[:, None]], axis=1).astype(np.float32))
    m = str(tmp_path / "c.vae")
    assert cli.main(["train", str(data), "--conditions", "-1", "--latent-dim", "2",
                     "--hidden", "8", "--epochs", "1", "--out", m]) == 0
    model = VAE.load(m)
    assert model.n_conditions == 3 and model.n_features == 6
    c = np.eye(3, dtype=np.float32)[labels]
    z = str(tmp_path / "z.npy")
    assert cli.main(["encode", m, str(data), "--conditions", "-1", "--out", z]) == 0
    np.testing.assert_array_equal(np.load(z), model.transform(X, c))
    # labels from a file give the same conditions
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", labels)
    assert cli.main(["encode", m, str(tmp_path / "x.npy"), "--conditions",
                     str(tmp_path / "y.npy"), "--out", z]) == 0
    np.testing.assert_array_equal(np.load(z), model.transform(X, c))
    assert cli.main(["evaluate", m, str(data), "--conditions", "-1", "--samples", "3"]) == 0
    s = str(tmp_path / "s.npy")
    assert cli.main(["sample", m, "-n", "4", "--label", "2", "--seed", "0", "--out", s]) == 0
    np.testing.assert_array_equal(np.load(s), model.sample(4, seed=0, c=np.tile(np.eye(3, dtype=np.float32)[2], (4, 1))))
    capsys.readouterr()
    assert cli.main(["encode", m, str(tmp_path / "x.npy"), "--out", z]) == 2
    assert "--conditions" in capsys.readouterr().err
    assert cli.main(["sample", m, "-n", "4", "--out", s]) == 2
    assert "--label" in capsys.readouterr().err


def test_count_likelihood_from_cli(tmp_path):
    X = np.random.default_rng(2).poisson(4.0, (40, 5)).astype(np.float32)
    p = tmp_path / "counts.npy"
    np.save(p, X)
    m = str(tmp_path / "nb.vae")
    assert cli.main(["train", str(p), "--likelihood", "negative_binomial", "--latent-dim", "2",
                     "--hidden", "8", "--epochs", "1", "--out", m]) == 0
    assert VAE.load(m).likelihood == "negative_binomial"
    assert cli.main(["train", str(p), "--likelihood", "gaussian", "--variance", "feature",
                     "--latent-dim", "2", "--hidden", "8", "--epochs", "1", "--out", m]) == 0
    assert VAE.load(m).variance == "feature"
    np.save(p, -X)
    assert cli.main(["train", str(p), "--likelihood", "poisson", "--out", m]) == 2


def test_demo_conditional_writes_one_row_per_class(tmp_path, capsys):
    pytest.importorskip("sklearn")
    assert cli.main(["demo", "--epochs", "2", "--conditional", "--out", str(tmp_path)]) == 0
    png = (tmp_path / "samples_by_class.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # IHDR: width, height = (10 tiles of 8 px + padding) x 4, for 10 rows and 10 columns
    w, h = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert w == h and w > 10 * 8 * 4
    assert "row k: samples of digit k" in capsys.readouterr().out
