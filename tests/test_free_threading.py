"""Readers and writers of one VAE from several Python threads (docs/threads.md,
"Free-threaded Python").

The compiled module declares itself safe without the GIL; these tests run on
any interpreter and check what that declaration rests on: encode from several
threads while another thread writes the weights (set_weights, fit) returns,
bit for bit, what a single thread gets under some whole set of weights. On a
free-threaded build (3.13t and later) they run truly in parallel, and one more
test checks that importing vaefast leaves the GIL off. Every join has a
timeout, so a deadlock fails the test instead of hanging the suite.
"""

import sys
import sysconfig
import threading

import numpy as np
import pytest

import vaefast
from vaefast.training import loop as _train

JOIN_TIMEOUT = 120.0  # seconds; the work below takes well under 5 s here
N_READERS = 3


def _run_threads(targets):
    """Start one thread per callable, join with a timeout, re-raise the first
    exception a thread raised."""
    errors = []

    def guard(fn):
        try:
            fn()
        except BaseException as exc:  # reported in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=guard, args=(fn,), daemon=True) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a thread is stuck (deadlock?)"
    if errors:
        raise errors[0]


def _reader(model, probe, out, running):
    def read():
        out.append(model.encode(probe)[0].tobytes())  # at least one read each
        while running.is_set():
            out.append(model.encode(probe)[0].tobytes())
    return read


def test_encode_during_set_weights_sees_one_whole_set(rng, threads_setting):
    """Readers see the encoding under weights A or weights B, never a mix,
    while a writer swaps the two sets; the oracle is single-threaded encode."""
    vaefast.set_num_threads(2)
    model = vaefast.VAE(48, hidden=(64,), latent_dim=4, seed=5)
    probe = rng.random((200, 48), dtype=np.float32)
    A = model.get_weights()
    B = {k: (v + rng.standard_normal(v.shape).astype(np.float32) * 0.1).astype(np.float32)
         for k, v in A.items()}
    expected = {}
    for name, w in (("A", A), ("B", B)):
        model.set_weights(w)
        expected[model.encode(probe)[0].tobytes()] = name
    assert len(expected) == 2
    model.set_weights(A)

    reads = [[] for _ in range(N_READERS)]
    running = threading.Event()
    running.set()

    def write():
        try:
            for i in range(60):
                model.set_weights(B if i % 2 == 0 else A)
        finally:
            running.clear()

    _run_threads([_reader(model, probe, r, running) for r in reads] + [write])
    names = [expected.get(s, "mixed") for r in reads for s in r]
    assert len(names) >= N_READERS
    assert "mixed" not in names, f"{names.count('mixed')} of {len(names)} reads saw a mix"
    # the model ends on A (the last write), and reads after it agree
    assert model.encode(probe)[0].tobytes() in expected
    assert expected[model.encode(probe)[0].tobytes()] == "A"


def test_encode_during_fit_matches_serial_steps(rng, threads_setting):
    """Readers during fit get the encoding after some whole step (computed by
    stepping a twin one step at a time), in order; fit's result is bit for
    bit that of a fit nobody read from."""
    vaefast.set_num_threads(2)
    n, batch, D = 1024, 32, 64
    X = rng.random((n, D), dtype=np.float32)
    probe = np.ascontiguousarray(X[:128])
    n_steps = n // batch

    twin = vaefast.VAE(D, hidden=(96,), latent_dim=5, seed=11)
    twin._core.reserve(batch)
    snapshots = {twin.encode(probe)[0].tobytes(): 0}
    for k in range(n_steps):
        sums = np.zeros(3)
        done, status = twin._core.train_steps(X, None, batch, k, 1, 11, k, 1e-3,
                                              _train.ADAM_BETA1, _train.ADAM_BETA2,
                                              _train.ADAM_EPS, 0.0, "adam", 1.0, sums)
        assert (done, status) == (1, 0)
        snapshots.setdefault(twin.encode(probe)[0].tobytes(), k + 1)
    assert len(snapshots) == n_steps + 1  # every step changes the encoding

    model = vaefast.VAE(D, hidden=(96,), latent_dim=5, seed=11)
    reads = [[] for _ in range(N_READERS)]
    running = threading.Event()
    running.set()

    def train():
        try:
            model.fit(X, epochs=1, batch_size=batch, shuffle=False)
        finally:
            running.clear()

    _run_threads([_reader(model, probe, r, running) for r in reads] + [train])
    assert model.step_ == n_steps
    np.testing.assert_array_equal(model.get_weights()["output.weight"],
                                  twin.get_weights()["output.weight"])
    for r in reads:
        steps = [snapshots.get(s, -1) for s in r]
        assert -1 not in steps, f"{steps.count(-1)} of {len(steps)} reads matched no step"
        assert steps == sorted(steps), "a read went back to an older step"


def test_second_writer_is_refused_not_raced(rng):
    """VAE._exclusive is the one Python lock of a model: set_weights from one
    thread while another holds it (as fit does for its whole run) raises
    RuntimeError at once, neither waiting nor interleaving its write."""
    model = vaefast.VAE(32, hidden=(32,), latent_dim=3, seed=1)
    probe = rng.random((8, 32), dtype=np.float32)
    before = model.encode(probe)[0]
    other = {k: v + np.float32(1) for k, v in model.get_weights().items()}
    held, release, refused = threading.Event(), threading.Event(), []

    def hold():
        with model._exclusive("fit"):
            held.set()
            assert release.wait(JOIN_TIMEOUT)

    def write():
        assert held.wait(JOIN_TIMEOUT)
        try:
            with pytest.raises(RuntimeError, match="set_weights"):
                model.set_weights(other)
            refused.append(True)
        finally:
            release.set()

    _run_threads([hold, write])
    assert refused == [True]
    np.testing.assert_array_equal(model.encode(probe)[0], before)  # nothing written
    model.set_weights(other)  # the lock was released: a write now goes through
    assert not np.array_equal(model.encode(probe)[0], before)


@pytest.mark.skipif(not sysconfig.get_config_var("Py_GIL_DISABLED"),
                    reason="needs a free-threaded CPython (3.13t or later); this one has a GIL")
def test_import_keeps_the_gil_disabled(run_python):
    """On a free-threaded build, importing a module not declared
    freethreading-compatible switches the GIL back on (with a warning)."""
    proc = run_python("import sys, vaefast; print(sys._is_gil_enabled())")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False", proc.stderr
    assert sys._is_gil_enabled() is False
