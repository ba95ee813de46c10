"""Dask arrays in, Dask arrays out (vaefast.dask).

Oracle: the in-memory call on the same data with the same seed; chunk
boundaries must not change a single bit (each chunk runs the in-memory code
on its rows, the noisy methods from the generator advanced to those rows).
Runs on the threaded scheduler and on a 2-worker distributed.LocalCluster
bound to 127.0.0.1, which the test closes.
"""

import subprocess
import sys

import numpy as np
import pytest

import vaefast

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")


@pytest.fixture(scope="module")
def model_and_data():
    X = np.random.default_rng(0).random((1100, 24)).astype(np.float32)
    m = vaefast.VAE(24, hidden=(16,), latent_dim=4, seed=2)
    m.fit(X, epochs=1, batch_size=64, progress=False)
    return m, X


def lazy_and_eager(m, X, dX):
    """(name, lazy result, in-memory result) for every Dask-aware method."""
    mu, lv = m.encode(X)
    dmu, dlv = m.encode(dX)
    dZ = da.from_array(mu, chunks=(250, 4))
    return [
        ("encode.mu", dmu, mu),
        ("encode.logvar", dlv, lv),
        ("transform", m.transform(dX), m.transform(X)),
        ("decode", m.decode(dZ), m.decode(mu)),
        ("reconstruct", m.reconstruct(dX), m.reconstruct(X)),
        ("elbo", m.elbo(dX, seed=7), m.elbo(X, seed=7)),
        ("log_likelihood", m.log_likelihood(dX, n_samples=5, seed=7),
         m.log_likelihood(X, n_samples=5, seed=7)),
    ]


@pytest.mark.parametrize("chunks", [(300, 24), (128, 10), ((500, 1, 599), (24,))])
def test_threaded_scheduler_is_bit_identical(model_and_data, chunks):
    m, X = model_and_data
    dX = da.from_array(X, chunks=chunks)  # also uneven and column-split chunks
    with dask.config.set(scheduler="threads"):
        for name, lazy, eager in lazy_and_eager(m, X, dX):
            assert isinstance(lazy, da.Array), name
            want_chunks = (250,) * 4 + (100,) if name == "decode" else dX.chunks[0]
            assert lazy.chunks[0] == want_chunks, name  # row chunks kept
            got = lazy.compute()
            assert got.dtype == eager.dtype, name
            np.testing.assert_array_equal(got, eager, err_msg=name)


def test_seed_none_draws_one_seed_for_the_whole_array(model_and_data):
    m, X = model_and_data
    lazy = m.elbo(da.from_array(X, chunks=(200, 24)))
    first = lazy.compute(scheduler="threads")
    np.testing.assert_array_equal(lazy.compute(scheduler="threads"), first)


def test_transformer_accepts_dask(model_and_data):
    pytest.importorskip("sklearn")
    from vaefast.sklearn import VAETransformer

    _, X = model_and_data
    est = VAETransformer(hidden=(8,), latent_dim=3, epochs=1, random_state=0).fit(X)
    dX = da.from_array(X, chunks=(400, 24))
    np.testing.assert_array_equal(est.transform(dX).compute(scheduler="threads"),
                                  est.transform(X))
    np.testing.assert_array_equal(est.score_samples(dX).compute(scheduler="threads"),
                                  est.score_samples(X))


def test_bad_dask_input_is_rejected_clearly(model_and_data):
    m, X = model_and_data
    with pytest.raises(ValueError, match="X must have 24 columns"):
        m.encode(da.from_array(X[:, :5], chunks=(100, 5)))
    with pytest.raises(ValueError, match="Z must have 4 columns"):
        m.decode(da.from_array(X, chunks=(100, 24)))
    with pytest.raises(ValueError, match="2-dimensional"):
        m.transform(da.from_array(X[0], chunks=5))
    unknown = da.from_array(X, chunks=(100, 24))
    unknown = unknown[unknown[:, 0] > 0.5]  # row count unknown until computed
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        m.transform(unknown)


def test_import_vaefast_imports_no_optional_engine():
    code = ("import sys, vaefast, vaefast.dask, vaefast.distributed; "
            "bad = [m for m in ('dask', 'mpi4py', 'distributed', 'cloudpickle') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_local_cluster_bit_identical_and_model_shipped_once(model_and_data, monkeypatch):
    distributed = pytest.importorskip("distributed")
    m, X = model_and_data
    calls = []
    real = vaefast.VAE.to_bytes

    def counting_to_bytes(self):
        calls.append(1)
        return real(self)

    # pickling a VAE goes through to_bytes: count it in this (client) process
    monkeypatch.setattr(vaefast.VAE, "to_bytes", counting_to_bytes)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                                  processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        assert len(client.ncores()) == 2
        pickles = []
        for rows_per_chunk in (100, 550):  # 11 chunks, then 2
            dX = da.from_array(X, chunks=(rows_per_chunk, 24))
            del calls[:]
            mu = m.transform(dX).compute()
            elbo = m.elbo(dX, seed=3).compute()
            pickles.append(len(calls))
            np.testing.assert_array_equal(mu, m.transform(X))
            np.testing.assert_array_equal(elbo, m.elbo(X, seed=3))
    # the client pickles the model a fixed number of times per graph (the
    # graph and its submission message), whatever the number of chunks
    assert pickles[0] == pickles[1] <= 4
