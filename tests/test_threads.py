"""Threads: concurrent readers of one model, readers during fit, the thread
setting under threadpoolctl / joblib / Dask, and Ctrl-C during fit.

The oracle for every result is the same computation done serially (the same
kernel set, so bit for bit), or, for readers during training, the model
stepped one step at a time.
"""

import os
import threading

import numpy as np
import pytest

import vaefast
from vaefast.training import loop as _train

HAVE_PROC_TASKS = os.path.isdir("/proc/self/task")
# A build without OpenMP runs single-threaded: the setting stays 1.
needs_threads = pytest.mark.skipif(vaefast._core.openmp_version() == 0,
                                   reason="built without OpenMP: single-threaded")


def _step_once(core, X, batch, k):
    """Step k of an unshuffled Adam epoch, as fit runs it (one C call)."""
    sums = np.zeros(3)
    done, status = core.train_steps(X, None, batch, k, 1, 11, k, 1e-3, _train.ADAM_BETA1,
                                    _train.ADAM_BETA2, _train.ADAM_EPS, 0.0, "adam", 1.0,
                                    sums)
    assert (done, status) == (1, 0)


def test_reader_during_fit_sees_whole_steps(rng, threads_setting):
    """encode() while another thread runs fit returns the encoding under the
    weights after some whole step, and never goes back to an older step: a
    read that overlapped a step's update would match none of them."""
    vaefast.set_num_threads(2)
    # 32 steps and a 64-row probe (64 steps and 256 rows took 132 s on
    # emulated AArch64)
    n, batch, D = 1024, 32, 784
    X = rng.random((n, D), dtype=np.float32)
    probe = np.ascontiguousarray(X[:64])
    n_steps = n // batch

    twin = vaefast.VAE(D, hidden=(400,), latent_dim=20, seed=11)
    twin._core.reserve(batch)
    snapshots = {twin.encode(probe)[0].tobytes(): 0}
    for k in range(n_steps):
        _step_once(twin._core, X, batch, k)
        snapshots.setdefault(twin.encode(probe)[0].tobytes(), k + 1)
    assert len(snapshots) == n_steps + 1  # every step changes the encoding

    model = vaefast.VAE(D, hidden=(400,), latent_dim=20, seed=11)
    seen, fitting = [], threading.Event()

    def read_while_fitting():
        fitting.wait()
        while fitting.is_set():
            seen.append(model.encode(probe)[0].tobytes())

    reader = threading.Thread(target=read_while_fitting)
    reader.start()
    fitting.set()
    try:
        model.fit(X, epochs=1, batch_size=batch, shuffle=False)
    finally:
        fitting.clear()
        reader.join()

    assert model.step_ == n_steps
    steps = [snapshots.get(s, -1) for s in seen]
    assert -1 not in steps, f"{steps.count(-1)} of {len(steps)} reads matched no step"
    assert steps == sorted(steps), "a read went back to an older step"
    # the reader really ran during training (else this test proves nothing)
    assert len({s for s in steps if 0 < s < n_steps}) >= 2, steps


def test_concurrent_inference_matches_serial(rng, threads_setting):
    """Four threads calling encode / decode / elbo / sample on one model at
    once get exactly what one thread gets."""
    vaefast.set_num_threads(2)
    X = rng.random((4 * 1500, 64), dtype=np.float32)
    model = vaefast.VAE(64, hidden=(128,), latent_dim=6, seed=2)
    model.fit(X, epochs=1, batch_size=256)
    chunks = np.split(X, 4)
    Z = rng.standard_normal((1500, 6)).astype(np.float32)

    def work(i):
        return (model.encode(chunks[i]), model.decode(Z), model.elbo(chunks[i], seed=i),
                model.sample(300, seed=i))

    expected = [work(i) for i in range(4)]
    got = [None] * 4
    start = threading.Barrier(4)

    def run(i):
        start.wait()
        for _ in range(3):
            got[i] = work(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        (mu, lv), dec, elbo, smp = got[i]
        (emu, elv), edec, eelbo, esmp = expected[i]
        for a, b in ((mu, emu), (lv, elv), (dec, edec), (elbo, eelbo), (smp, esmp)):
            np.testing.assert_array_equal(a, b)


def test_no_write_inside_a_read_session():
    """The lock is not recursive: a write from a thread that is reading would
    wait for itself, so it is refused with an error instead."""
    model = vaefast.VAE(8, hidden=(4,), latent_dim=2)
    with model._core.reading():
        with pytest.raises(RuntimeError, match="reading"):
            model.set_weights(model.get_weights())
    model.set_weights(model.get_weights())  # outside: fine


def test_setting_is_process_wide(threads_setting):
    vaefast.set_num_threads(1)
    box = []
    t = threading.Thread(target=lambda: box.append(vaefast.get_num_threads()))
    t.start()
    t.join()
    assert box == [1]


# ---------------------------------------------------------------- threadpoolctl

@needs_threads
def test_threadpool_info_lists_vaefast(threads_setting):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    vaefast.set_num_threads(3)
    mine = [i for i in threadpoolctl.threadpool_info() if i["internal_api"] == "vaefast"]
    assert len(mine) == 1
    assert mine[0]["user_api"] == "openmp"
    assert mine[0]["num_threads"] == 3
    assert mine[0]["version"] == vaefast.__version__


@needs_threads
@pytest.mark.parametrize("kwargs", [{}, {"user_api": "openmp"}])
def test_threadpool_limits_set_and_restore(kwargs, threads_setting):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    vaefast.set_num_threads(2)
    with threadpoolctl.threadpool_limits(limits=1, **kwargs):
        assert vaefast.get_num_threads() == 1
    assert vaefast.get_num_threads() == 2
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        assert vaefast.get_num_threads() == 2  # not ours to limit


_COUNT_THREADS = """
import os, sys, threading, time
import numpy as np
{imports}
from threadpoolctl import threadpool_limits
assert "threadpoolctl" in sys.modules
def os_threads():
    return len(os.listdir("/proc/self/task"))
vaefast.set_num_threads(2)
X = np.random.default_rng(0).random((1024, 784), dtype=np.float32)
m = vaefast.VAE(784, seed=1)
before = os_threads()
with threadpool_limits(1):
    m.fit(X, epochs=1, batch_size=256)
    t = threading.Thread(target=m.encode, args=(X,))
    t.start(); t.join()
    m.encode(X)
# a joined Python thread can still be listed for a moment (join returns
# before its OS thread ends): wait for that, never for a worker of ours
for _ in range(200):
    if os_threads() == before:
        break
    time.sleep(0.005)
limited = os_threads()
m.encode(X)
print(before, limited, os_threads())
"""


@needs_threads
@pytest.mark.skipif(not HAVE_PROC_TASKS, reason="counts threads in /proc/self/task")
@pytest.mark.parametrize("order", ["vaefast-first", "threadpoolctl-first"])
def test_threadpool_limits_are_obeyed(order, run_python):
    """Inside threadpool_limits(1) no OpenMP worker thread is ever started;
    after it, with 2 threads, one is (so the count does see them). Either
    import order registers vaefast's controller."""
    pytest.importorskip("threadpoolctl")
    imports = ("import vaefast\nimport threadpoolctl" if order == "vaefast-first"
               else "import threadpoolctl\nimport vaefast")
    proc = run_python(_COUNT_THREADS.format(imports=imports))
    assert proc.returncode == 0, proc.stderr
    before, limited, after = map(int, proc.stdout.split())
    assert limited == before
    assert after == before + 1


def test_import_does_not_import_threadpoolctl(run_python):
    proc = run_python("import sys, vaefast; print('threadpoolctl' in sys.modules)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_joblib_workers_use_the_limit(rng):
    joblib = pytest.importorskip("joblib")
    X = rng.random((800, 32), dtype=np.float32)
    model = vaefast.VAE(32, hidden=(64,), latent_dim=4, seed=8)
    model.fit(X, epochs=1, batch_size=100)
    chunks = np.array_split(X, 4)
    with joblib.parallel_config(backend="loky", inner_max_num_threads=1):
        settings = joblib.Parallel(n_jobs=2)(
            joblib.delayed(vaefast.get_num_threads)() for _ in range(2))
        encoded = joblib.Parallel(n_jobs=2)(joblib.delayed(model.encode)(c) for c in chunks)
    assert settings == [1, 1]
    for (mu, _), c in zip(encoded, chunks):
        np.testing.assert_array_equal(mu, model.encode(c)[0])


def test_dask_workers_use_one_thread():
    """Dask's nanny starts workers with OMP_NUM_THREADS=1, which vaefast
    takes as its default."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        assert client.submit(vaefast.get_num_threads, pure=False).result(timeout=60) == 1


# ---------------------------------------------------------------- Ctrl-C

_INTERRUPTED_FIT = """
import os, signal, threading, time
import numpy as np
import vaefast
from vaefast.training import loop as T
n, batch = 20000, 32
X = np.random.default_rng(0).random((n, 784), dtype=np.float32)
m = vaefast.VAE(784, seed=1)

def interrupt_once_training():
    while m.step_ < 20:
        time.sleep(0.01)
    os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=interrupt_once_training, daemon=True).start()
try:
    m.fit(X, epochs=100, batch_size=batch)
    raise SystemExit("fit ran to the end")
except KeyboardInterrupt:
    pass
steps = m.step_
twin = vaefast.VAE(784, seed=1)
order = np.random.default_rng([1, 0]).permutation(n).astype(np.int64)
sums = np.zeros(3)
done, status = twin._core.train_steps(X, order, batch, 0, steps, 1, 0, 1e-3, T.ADAM_BETA1,
                                      T.ADAM_BETA2, T.ADAM_EPS, 0.0, "adam", 1.0, sums)
assert (done, status) == (steps, 0)
for which in (0, 2, 3):
    assert np.array_equal(twin._core.get_buffer(which), m._core.get_buffer(which)), which
m.fit(X[:batch * 4], epochs=1, batch_size=batch)  # and training goes on from there
twin.step_ = steps
twin.optimizer_ = "adam"
twin.fit(X[:batch * 4], epochs=1, batch_size=batch)
assert np.array_equal(twin._core.get_buffer(0), m._core.get_buffer(0))
print(steps)
"""


def test_ctrl_c_during_fit_leaves_a_resumable_model(run_python):
    """SIGINT during a 100-epoch fit raises KeyboardInterrupt early in epoch
    0 (the run would take minutes; it has seconds); the model holds exactly
    step_ whole steps (parameters and both Adam moments equal a model stepped
    that many times) and trains on from there as that model does."""
    proc = run_python(_INTERRUPTED_FIT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 20 <= int(proc.stdout) < 20000 // 32
