"""The thread team (csrc/team.c): work claimed dynamically by the caller and
the pool's workers.

Oracles: the same computation on one thread (the same kernel set, so bit
for bit: which thread computes a unit, and how units are grouped, must not
change a bit), and NumPy in float64 for the products themselves. Three
threads on this two-core machine also make the schedule uneven (a worker
is often descheduled mid-call), which is the case the team is built for.
"""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import vaefast
from vaefast import _core, ops

THREAD_COUNTS = (1, 2, 3)

# (M, K, N, kind): every route of the GEMM driver at least once (tiles with
# column runs and edges, several K and M blocks, one row, the wide N = 40,
# few rows times Bᵀ, the weight gradient's ones row)
SHAPES = [
    (128, 784, 400, "forward"),
    (300, 1100, 130, "forward"),
    (1, 784, 400, "forward"),
    (64, 400, 40, "forward"),
    (1024, 400, 40, "forward"),
    (32, 400, 784, "input_grad"),
    (256, 400, 784, "input_grad"),
    (96, 784, 400, "weight_grad"),
]


def _operands(rng, M, K, N):
    x = rng.standard_normal((M, K), dtype=np.float32)
    W = (rng.standard_normal((K, N)) / np.sqrt(K)).astype(np.float32)
    b = rng.standard_normal(N).astype(np.float32)
    dy = rng.standard_normal((M, N), dtype=np.float32)
    return x, W, b, dy


def _product(kind, x, W, b, dy):
    """The product under test and its float64 oracle."""
    x64, W64, dy64 = x.astype(np.float64), W.astype(np.float64), dy.astype(np.float64)
    if kind == "forward":
        return ops.linear(x, W, b, "relu"), np.maximum(x64 @ W64 + b, 0)
    if kind == "input_grad":
        mask = np.maximum(x, 0)
        dx = np.empty_like(x)
        vaefast._core.gemm_linear_backward_input(dy, W, mask, dx)
        return dx, (dy64 @ W64.T) * (mask > 0)
    dW, db = np.empty_like(W), np.empty_like(b)
    vaefast._core.gemm_linear_backward_weight(x, dy, dW, db, False)
    return np.concatenate([dW.ravel(), db]), np.concatenate([(x64.T @ dy64).ravel(),
                                                             dy64.sum(axis=0)])


@pytest.mark.parametrize("M,K,N,kind", SHAPES)
def test_gemm_bits_do_not_depend_on_threads(kernel_set, rng, threads_setting, M, K, N, kind):
    x, W, b, dy = _operands(rng, M, K, N)
    results = {}
    for nt in THREAD_COUNTS:
        vaefast.set_num_threads(nt)
        for _ in range(3):  # repeated: the schedule differs from call to call
            out, oracle = _product(kind, x, W, b, dy)
            results.setdefault(nt, out)
            assert np.array_equal(out, results[nt]), f"{nt} threads, repeated call"
    for nt in THREAD_COUNTS[1:]:
        assert np.array_equal(results[nt], results[1]), f"{nt} threads vs 1"
    # float32 products of K (or M, for the weight gradient) terms of O(1):
    # the error grows like sqrt(terms) * 2^-24 * |terms|; 1e-4 relative to the
    # largest magnitude is a wide margin at these sizes
    scale = np.abs(oracle).max()
    np.testing.assert_allclose(results[1], oracle, rtol=0, atol=1e-4 * scale)


def test_model_bits_do_not_depend_on_threads(rng, threads_setting):
    """encode, elbo and a short fit (GEMMs, the element-wise kernels split
    over the team, Adam) give the same bits on 1, 2 and 3 threads."""
    X = (rng.random((512, 784)) < 0.3).astype(np.float32)
    out = {}
    for nt in THREAD_COUNTS:
        vaefast.set_num_threads(nt)
        m = vaefast.VAE(784, hidden=(400,), latent_dim=20, seed=3)
        m.fit(X, epochs=2, batch_size=128, progress=False)
        mu, logvar = m.encode(X)
        out[nt] = (mu, logvar, m.elbo(X, seed=1), m.get_weights())
    for nt in THREAD_COUNTS[1:]:
        for a, b in zip(out[nt][:3], out[1][:3]):
            assert np.array_equal(a, b), f"{nt} threads vs 1"
        for name in out[1][3]:
            assert np.array_equal(out[nt][3][name], out[1][3][name]), name


def test_concurrent_callers_share_the_pool(rng, threads_setting):
    """Two Python threads calling products at once: one owns the team, the
    other runs alone; both get the single-thread bits."""
    vaefast.set_num_threads(2)
    x, W, b, _ = _operands(rng, 256, 784, 400)
    vaefast.set_num_threads(1)
    want = ops.linear(x, W, b, "relu")
    vaefast.set_num_threads(2)
    bad = []

    def loop():
        for _ in range(30):
            if not np.array_equal(ops.linear(x, W, b, "relu"), want):
                bad.append(1)

    threads = [threading.Thread(target=loop) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a caller hung"
    assert not bad


_NEIGHBOURS = """
import threading, time
import numpy as np
import vaefast
from vaefast import ops
vaefast.set_num_threads(2)
rng = np.random.default_rng(0)
stop = threading.Event()
nb = rng.standard_normal((300, 300)).astype(np.float32)

def numpy_neighbour():  # OpenBLAS's own pool, busy and then spinning
    while not stop.is_set():
        nb @ nb

t = threading.Thread(target=numpy_neighbour)
t.start()
x = rng.standard_normal((128, 784)).astype(np.float32)
W = rng.standard_normal((784, 400)).astype(np.float32)
b = np.zeros(400, np.float32)
want = ops.linear(x, W, b)
m = vaefast.VAE(784, hidden=(400,), latent_dim=20, seed=0)
X = (rng.random((512, 784)) < 0.3).astype(np.float32)
for i in range(80):  # 200 took 89 s on emulated AArch64
    assert np.array_equal(ops.linear(x, W, b), want)
    if i % 20 == 0:
        m.fit(X, epochs=1, batch_size=128, progress=False,
              callbacks=[lambda epoch, logs: nb @ nb])
        time.sleep(0.01)  # an idle gap: workers go to sleep
        m.encode(X[:64])
stop.set()
t.join()
print("ok")
"""


def test_no_hang_beside_a_busy_neighbour_pool(tmp_path):
    """vaefast's team beside NumPy's BLAS pool working in another thread,
    with idle gaps: finishes (a hang fails at the timeout instead of stalling
    the run) and every product has the single-call bits."""
    try:
        out = subprocess.run([sys.executable, "-c", _NEIGHBOURS], cwd=tmp_path,
                             capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        pytest.fail("vaefast beside a busy NumPy pool did not finish within 240 s")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.skipif(not sys.platform.startswith("linux") or not hasattr(os, "sched_setaffinity"),
                    reason="the scheduler probe reads Linux's /proc/<pid>/task/<tid>/schedstat")
def test_scheduler_probe_sees_a_preempted_thread():
    """The probe the team's workers use to tell a preempted caller from an
    idle one (csrc/team_spin.c, vf_spin_owner_kept_off). This thread, pinned to one CPU
    beside two busy processes pinned there too, runs about a third of a
    0.3 s busy loop and waits, runnable, the rest: the probe must count
    more waiting than the thread's own CPU time (time.thread_time), which a
    probe that read the running time instead would not. Unknown threads
    read -1."""
    me = _core.sched_thread_id()
    assert me > 0
    assert _core.sched_waited_ns(0) == -1
    assert _core.sched_waited_ns(2**40) == -1  # above any pid_max: no such thread
    cpu = min(os.sched_getaffinity(0))
    old = os.sched_getaffinity(0)
    spin = (f"import os, time\nos.sched_setaffinity(0, {{{cpu}}})\nend = time.time() + 5\n"
            "print(flush=True)\nwhile time.time() < end: pass")
    busy = [subprocess.Popen([sys.executable, "-c", spin], stdout=subprocess.PIPE)
            for _ in range(2)]
    try:
        for p in busy:
            p.stdout.readline()  # pinned and spinning
        os.sched_setaffinity(0, {cpu})  # this thread only (Linux: 0 is the caller)
        before, cpu_before = _core.sched_waited_ns(me), time.thread_time()
        t = time.perf_counter()
        while time.perf_counter() - t < 0.3:
            pass
        after, cpu_after = _core.sched_waited_ns(me), time.thread_time()
    finally:
        os.sched_setaffinity(0, old)
        for p in busy:
            p.kill()
            p.wait()
    assert before >= 0
    waited, ran = (after - before) / 1e9, cpu_after - cpu_before
    assert waited > 0.05 and waited > 1.3 * ran, (waited, ran)


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="the scheduler probe is Linux's")
def test_scheduler_probe_thread_id_is_the_childs_after_fork():
    """The probe caches a thread's id; fork()'s child runs on a copy of the
    forking thread, cache included, but has an id of its own, which the
    cache must give (else the team in the child would watch a thread that
    does not exist there)."""
    assert _core.sched_thread_id() == threading.get_native_id()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave at once
        os.close(r)
        me = _core.sched_thread_id()
        ok = me == threading.get_native_id() and _core.sched_waited_ns(me) >= 0
        os.write(w, b"1" if ok else b"0")
        os._exit(0)
    os.close(w)
    got = os.read(r, 1)
    os.close(r)
    os.waitpid(pid, 0)
    assert got == b"1"
