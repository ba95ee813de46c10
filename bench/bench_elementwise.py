"""Loss and optimizer kernels vs NumPy (float32, written the natural way).

    pytest bench/bench_elementwise.py --benchmark-only     # pytest-benchmark
    python bench/bench_elementwise.py [threads]             # median table

Speed-up is NumPy time / vaefast time with fresh outputs (as NumPy does).
Throughput is reported in GB/s of compulsory traffic (bytes read + written
once) next to the memory-copy bandwidth (np.copyto of 64 MB: 128 MB moved)
measured in the same run. Same thread count for both sides: vaefast uses its
OpenMP threads, NumPy's element-wise ufuncs are single-threaded.
"""

import os
import sys

import numpy as np
import pytest

from vaefast import ops

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/timing.py
from timing import median_seconds  # noqa: E402

LOG_2PI_HALF = np.float32(0.5 * np.log(2 * np.pi))


# ---------------------------------------------------------------- NumPy twins
def np_bernoulli(l, x, scale=1.0):
    loss = (np.logaddexp(np.float32(0), l) - x * l).sum(axis=1)
    with np.errstate(over="ignore"):
        grad = np.float32(scale) * (np.float32(1) / (np.float32(1) + np.exp(-l)) - x)
    return loss, grad


def np_gaussian(y, x, scale=1.0):
    d = y - x
    return np.float32(0.5) * (d * d).sum(axis=1) + d.shape[1] * LOG_2PI_HALF, np.float32(scale) * d


def np_kl(mu, lv):
    return np.float32(0.5) * (np.exp(lv) + mu * mu - np.float32(1) - lv).sum(axis=1)


def np_adam(p, g, m, v, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, t=10):
    f = np.float32
    m *= f(b1)
    m += f(1 - b1) * g
    v *= f(b2)
    v += f(1 - b2) * (g * g)
    den = np.sqrt(v)
    den /= f(np.sqrt(1 - b2**t))
    den += f(eps)
    p -= f(lr / (1 - b1**t)) * (m / den)


def np_sgd(p, g, vel, lr=0.01, mom=0.9):
    vel *= np.float32(mom)
    vel += g
    p -= np.float32(lr) * vel


# ------------------------------------------------------------------ workloads
def _loss_case(kind, M, N):
    """(bytes, vaefast with out=, vaefast allocating its outputs, NumPy)."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(M, N)).astype(np.float32)
    b = rng.uniform(size=(M, N)).astype(np.float32)
    loss, grad = np.empty(M, np.float32), np.empty_like(a)
    if kind == "bernoulli":
        return (3 * a.nbytes + 4 * M, lambda: ops.bernoulli_loss(a, b, out=(loss, grad)),
                lambda: ops.bernoulli_loss(a, b), lambda: np_bernoulli(a, b))
    if kind == "gaussian":
        return (3 * a.nbytes + 4 * M, lambda: ops.gaussian_loss(a, b, out=(loss, grad)),
                lambda: ops.gaussian_loss(a, b), lambda: np_gaussian(a, b))
    return (2 * a.nbytes + 4 * M, lambda: ops.kl_normal(a, b, out=loss),
            lambda: ops.kl_normal(a, b), lambda: np_kl(a, b))


def _optim_case(kind, n):
    rng = np.random.default_rng(0)
    p = rng.normal(size=n).astype(np.float32)
    g = rng.normal(size=n).astype(np.float32) * np.float32(1e-3)
    m = np.zeros(n, np.float32)
    v = np.full(n, 1e-6, np.float32)
    if kind == "adam":
        fast = lambda: ops.adam_update(p, g, m, v, step=10)  # noqa: E731
        return 28 * n, fast, fast, lambda: np_adam(p, g, m, v)
    fast = lambda: ops.sgd_update(p, g, m, lr=0.01)  # noqa: E731
    return 20 * n, fast, fast, lambda: np_sgd(p, g, m)


CASES = {
    "bernoulli-1024x784": lambda: _loss_case("bernoulli", 1024, 784),
    "bernoulli-16384x784": lambda: _loss_case("bernoulli", 16384, 784),
    "gaussian-1024x784": lambda: _loss_case("gaussian", 1024, 784),
    "gaussian-16384x784": lambda: _loss_case("gaussian", 16384, 784),
    "kl-1024x20": lambda: _loss_case("kl", 1024, 20),
    "kl-262144x20": lambda: _loss_case("kl", 262144, 20),
    "adam-650k": lambda: _optim_case("adam", 650_000),
    "adam-8M": lambda: _optim_case("adam", 8_000_000),
    "sgd-650k": lambda: _optim_case("sgd", 650_000),
    "sgd-8M": lambda: _optim_case("sgd", 8_000_000),
}


def _copy_case(threads=1):
    """np.copyto of 64 MB, split into `threads` slices copied concurrently
    (NumPy releases the GIL while copying), so the kernels' OpenMP threads
    are compared with a copy using as many cores."""
    src = np.ones(16 * 1024 * 1024, np.float32)  # 64 MB
    dst = np.empty_like(src)
    if threads == 1:
        return 2 * src.nbytes, lambda: np.copyto(dst, src)
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(threads)
    parts = [(d, s) for d, s in zip(np.array_split(dst, threads), np.array_split(src, threads))]
    return 2 * src.nbytes, lambda: list(pool.map(lambda ds: np.copyto(*ds), parts))


# ------------------------------------------------------------ pytest-benchmark
def _record(benchmark, nbytes):
    benchmark.extra_info["bytes"] = nbytes
    benchmark.extra_info["GB/s (median)"] = round(nbytes / benchmark.stats.stats.median / 1e9, 2)


@pytest.mark.parametrize("threads", [1, 2])
def test_memcpy_bandwidth(benchmark, threads):
    nbytes, fn = _copy_case(threads)
    benchmark(fn)
    _record(benchmark, nbytes)


@pytest.mark.parametrize("impl", ["vaefast", "vaefast-alloc", "numpy"])
@pytest.mark.parametrize("case", list(CASES))
def test_kernel(benchmark, case, impl):
    nbytes, fast, alloc, slow = CASES[case]()
    if impl == "vaefast-alloc" and alloc is fast:
        pytest.skip("optimizers allocate nothing")
    benchmark.group = case
    benchmark({"vaefast": fast, "vaefast-alloc": alloc, "numpy": slow}[impl])
    _record(benchmark, nbytes)


# ---------------------------------------------------------------- median table
def _median_seconds(fn, repeats=15, min_time=0.02):
    return median_seconds(fn, repeats, min_time)[0]


def measure(names=None, repeats=15, min_time=0.02):
    """Median seconds of the cases `names` (default all) on vaefast's current
    thread count, and the copy bandwidths they are compared with.

    Returns
    -------
    dict
        ``copy_1thread_gbps``, ``copy_gbps`` (best of 1 and `threads` copying
        threads: the %copy reference), ``threads`` and ``cases``: a list of
        ``{"case", "bytes", "vaefast_s", "alloc_s", "numpy_s"}``.
    """
    import vaefast

    threads = vaefast.get_num_threads()
    nbytes, fn = _copy_case(1)
    copy1 = nbytes / _median_seconds(fn, repeats, min_time) / 1e9
    nbytes, fn = _copy_case(threads)
    copy_bw = max(copy1, nbytes / _median_seconds(fn, repeats, min_time) / 1e9)
    rows = []
    for name in names or CASES:
        nbytes, fast, alloc, slow = CASES[name]()
        tf = _median_seconds(fast, repeats, min_time)
        ts = _median_seconds(slow, repeats, min_time)
        ta = tf if alloc is fast else _median_seconds(alloc, repeats, min_time)
        rows.append(dict(case=name, bytes=nbytes, vaefast_s=tf, alloc_s=ta, numpy_s=ts))
    return dict(threads=threads, copy_1thread_gbps=copy1, copy_gbps=copy_bw, cases=rows)


def main():
    import sys

    import vaefast

    if len(sys.argv) > 1:  # python bench/bench_elementwise.py [threads]
        vaefast.set_num_threads(int(sys.argv[1]))
    m = measure()
    threads, copy1, copy_bw = m["threads"], m["copy_1thread_gbps"], m["copy_gbps"]
    print(f"kernel set {vaefast.isa()}, threads {threads}; memory copy (np.copyto "
          f"64 MB) {copy1:.1f} GB/s on 1 thread, {copy_bw:.1f} GB/s best of 1 and "
          f"{threads} threads (the %copy reference)")
    print("vaefast = outputs passed with out=; alloc = fresh output arrays per call")
    print(f"{'case':22s} {'vaefast ms':>10s} {'GB/s':>7s} {'%copy':>6s} {'alloc ms':>9s} "
          f"{'%copy':>6s} {'numpy ms':>9s} {'GB/s':>7s} {'speed-up':>8s}")
    for r in m["cases"]:
        name, nbytes, tf, ta, ts = r["case"], r["bytes"], r["vaefast_s"], r["alloc_s"], r["numpy_s"]
        bf, bs = nbytes / tf / 1e9, nbytes / ts / 1e9
        print(f"{name:22s} {tf * 1e3:10.3f} {bf:7.1f} {100 * bf / copy_bw:5.0f}% "
              f"{ta * 1e3:9.3f} {100 * nbytes / ta / 1e9 / copy_bw:5.0f}% "
              f"{ts * 1e3:9.3f} {bs:7.1f} {ts / ta:7.1f}x")


if __name__ == "__main__":
    main()
