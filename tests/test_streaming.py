"""Streaming fit: memmaps, row-block sequences, callables, Dask arrays.

Oracle: the in-memory fit of the same rows with the same seed, which the
exact cases (memmap; blocks with shuffle=False; an epoch that fits one
buffer) must equal bit for bit. Memory: tracemalloc (NumPy reports its
allocations to it) must stay near a few buffers on data many times larger.
"""

import math
import tracemalloc

import numpy as np
import pytest

import vaefast

D = 16


def data(n=1000, seed=0):
    return np.random.default_rng(seed).random((n, D)).astype(np.float32)


def fitted(X, **kw):
    m = vaefast.VAE(D, hidden=(12,), latent_dim=3, seed=4)
    kw = {"epochs": 2, "batch_size": 32, "progress": False, **kw}
    m.history_ = m.fit(X, **kw)
    return m


def params(m):
    return m._core.get_buffer(0)


def blocks_of(X, size=77):
    return [X[i:i + size] for i in range(0, len(X), size)]


@pytest.fixture(scope="module")
def npy(tmp_path_factory):
    path = tmp_path_factory.mktemp("stream") / "x.npy"
    np.save(path, data())
    return path


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("buffer_rows", [100, 5000])
def test_memmap_is_bit_identical_to_in_memory(npy, shuffle, buffer_rows):
    X = np.load(npy)
    want = fitted(X, shuffle=shuffle)
    got = fitted(np.load(npy, mmap_mode="r"), shuffle=shuffle, buffer_rows=buffer_rows)
    np.testing.assert_array_equal(params(got), params(want))
    assert got.step_ == want.step_
    np.testing.assert_array_equal(got.history_.history["loss"], want.history_.history["loss"])


SOURCES = {
    "sequence": lambda X: blocks_of(X),
    "callable": lambda X: (lambda: iter(blocks_of(X))),
    "generator function": lambda X: (lambda: (b for b in blocks_of(X))),
}


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_blocks_without_shuffle_are_exact(source):
    X = data()
    want = fitted(X, shuffle=False)
    got = fitted(SOURCES[source](X), shuffle=False, buffer_rows=100)
    np.testing.assert_array_equal(params(got), params(want))


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_shuffle_is_exact_when_the_epoch_fits_one_buffer(source):
    X = data()
    want = fitted(X)
    got = fitted(SOURCES[source](X))  # default buffer: 64 MiB, far above 1000 rows
    np.testing.assert_array_equal(params(got), params(want))


def test_dask_array_fit_is_exact():
    da = pytest.importorskip("dask.array")
    X = data()
    dX = da.from_array(X, chunks=(130, 8))  # column chunks are joined
    np.testing.assert_array_equal(params(fitted(dX, shuffle=False, buffer_rows=96)),
                                  params(fitted(X, shuffle=False)))
    np.testing.assert_array_equal(params(fitted(dX)), params(fitted(X)))


def test_approximate_shuffle_visits_every_row_once_and_is_reproducible():
    X = data()
    a = fitted(blocks_of(X), buffer_rows=96)
    b = fitted(blocks_of(X), buffer_rows=96)
    np.testing.assert_array_equal(params(a), params(b))
    # every epoch is ceil(n / batch) steps over all n rows ...
    assert a.step_ == 2 * math.ceil(len(X) / 32)
    # ... and the rows really are reordered (not the unshuffled run)
    assert not np.array_equal(params(a), params(fitted(blocks_of(X), shuffle=False)))
    # each epoch's loss is the mean over n rows: close to the in-memory one
    want = fitted(X).history_.history["loss"]
    np.testing.assert_allclose(a.history_.history["loss"], want, rtol=0.05)


def peak_traced_bytes(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_bounded_by_the_buffer_not_the_data(tmp_path):
    n, buffer_rows, block_rows = 100_000, 2048, 5000
    data_bytes = n * D * 4  # 6.4 MB of rows, 50x the buffer
    buffer_bytes = buffer_rows * D * 4

    def blocks():  # generated on the fly: never all in memory
        for i in range(0, n, block_rows):
            yield np.random.default_rng(i).random((block_rows, D)).astype(np.float32)

    m = vaefast.VAE(D, hidden=(8,), latent_dim=2, seed=0)
    m.fit(lambda: blocks(), epochs=1, batch_size=256, buffer_rows=buffer_rows,
          progress=False)  # warm-up: the C workspace and imports
    peak = peak_traced_bytes(lambda: m.fit(lambda: blocks(), epochs=1, batch_size=256,
                                           buffer_rows=buffer_rows, progress=False))
    # at most 4 buffers alive (held, next, queued, filling) + 2 blocks in flight
    bound = 4 * buffer_bytes + 2 * block_rows * D * 8 + (1 << 20)
    assert peak < bound < data_bytes / 2, (peak, bound)

    path = tmp_path / "big.npy"
    big = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, D))
    for i in range(0, n, block_rows):
        big[i:i + block_rows] = np.random.default_rng(i).random((block_rows, D))
    big.flush()
    del big
    X = np.load(path, mmap_mode="r")
    peak = peak_traced_bytes(lambda: m.fit(X, epochs=1, batch_size=256,
                                           buffer_rows=buffer_rows, progress=False))
    # the epoch's permutation (8 bytes a row) plus a few gathered buffers
    bound = n * 8 * 2 + 4 * buffer_bytes + (1 << 20)
    assert peak < bound < data_bytes, (peak, bound)


def test_bad_streams_are_rejected_naming_the_argument(npy):
    m = vaefast.VAE(D, hidden=(4,), latent_dim=2)
    X = data(200)
    bad_cols = [X[:50], X[50:100, :5]]
    with pytest.raises(ValueError, match="X block 1 must have 16 columns"):
        m.fit(bad_cols, epochs=1, progress=False)
    nan = X.copy()
    nan[150, 3] = np.nan
    with pytest.raises(ValueError, match="X block 1 contains NaN"):
        m.fit(lambda: iter([nan[:100], nan[100:]]), epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        m.fit([X * 3], epochs=1, progress=False)
    with pytest.raises(TypeError, match="fresh iterator"):
        m.fit(lambda: 42, epochs=1, progress=False)
    with pytest.raises(ValueError, match="empty"):
        m.fit(lambda: iter([]), epochs=1, progress=False)
    with pytest.raises(ValueError, match="buffer_rows applies only"):
        m.fit(X, epochs=1, buffer_rows=10, progress=False)
    with pytest.raises(ValueError, match="buffer_rows"):
        m.fit(blocks_of(X), epochs=1, buffer_rows=0, progress=False)
    with pytest.raises(ValueError, match="16 columns"):
        m.fit(np.load(npy, mmap_mode="r")[:, :4], epochs=1, progress=False)


def test_cli_train_memory_maps_a_npy(npy, tmp_path, capsys):
    from vaefast.cli import main

    out = tmp_path / "m.vae"
    assert main(["train", str(npy), "--hidden", "12", "--latent-dim", "3", "--epochs", "2",
                 "--batch-size", "32", "--seed", "4", "--out", str(out)]) == 0
    np.testing.assert_array_equal(params(vaefast.VAE.load(out)), params(fitted(np.load(npy))))


def test_early_stopping_and_progress_work_on_streams(npy, capsys):
    X = np.load(npy)
    val = data(200, seed=9)
    kw = dict(epochs=6, batch_size=64, validation_data=val, early_stopping_patience=1,
              learning_rate=0.05)
    want = fitted(X, **kw)
    assert want.history_.stopped_early and len(want.history_) < 6  # it does stop
    for streamed in (np.load(npy, mmap_mode="r"), blocks_of(X)):
        got = fitted(streamed, progress=True, **kw)
        assert got.history_.history["val_loss"] == want.history_.history["val_loss"]
        assert got.history_.stopped_early == want.history_.stopped_early
        np.testing.assert_array_equal(params(got), params(want))
    err = capsys.readouterr().err
    assert "epoch 1" in err and "rows" not in err.split("epoch 1")[0]
    fitted(lambda: iter(blocks_of(X)), epochs=1, progress=True)  # length unknown
    assert f"{len(X)} rows" in capsys.readouterr().err
