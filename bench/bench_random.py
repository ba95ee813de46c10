"""Benchmarks of the random part, one thread, vaefast vs NumPy in one run.

    pytest bench/bench_random.py --benchmark-only      # pytest-benchmark table
    python bench/bench_random.py                        # medians, ratios, GB/s

Normal generation is compared with numpy's float32 standard_normal (ziggurat).
Reparameterization forward+backward is reported in GB/s of bytes read and
written (mu, logvar -> z; mu, logvar, dz -> dmu, dlogvar: 32 bytes/element),
next to the memory-copy bandwidth (np.copyto, read + write) of the same run
(vaefast writes into preallocated outputs, as a training loop does),
and compared with a float32 NumPy implementation (eps from numpy's
generator) and, for the small shape, the float64 twin in vaefast.reference.
"""

import os
import sys

import numpy as np
import pytest

import vaefast
import vaefast.reference as twin
from vaefast.reference import rng as ref
from vaefast.ops import reparameterize, reparameterize_backward
from vaefast.random import normal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/timing.py
from timing import median_seconds  # noqa: E402

NORMAL_SIZES = [10**6, 10**7]
REPARAM_SHAPES = [(1024, 20), (65536, 64)]
BYTES_PER_ELEM = 32


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = vaefast.get_num_threads()
    vaefast.set_num_threads(1)
    yield
    vaefast.set_num_threads(before)


def _inputs(shape):
    g = np.random.default_rng(0)
    mu = g.standard_normal(shape, dtype=np.float32)
    lv = g.standard_normal(shape, dtype=np.float32)
    dz = g.standard_normal(shape, dtype=np.float32)
    return mu, lv, dz


def vaefast_fwd_bwd(mu, lv, dz, z, grads):
    reparameterize(mu, lv, 1, 2, out=z)
    return reparameterize_backward(mu, lv, dz, 1, 2, kl_scale=0.5, out=grads)


def numpy_fwd_bwd(mu, lv, dz, gen):
    """The same computation in float32 NumPy (eps stored between the passes)."""
    eps = gen.standard_normal(mu.shape, dtype=np.float32)
    s = np.exp(np.float32(0.5) * lv)
    z = mu + s * eps
    dmu = dz + np.float32(0.5) * mu
    dlv = dz * np.float32(0.5) * s * eps + np.float32(0.25) * (s * s - np.float32(1))
    return z, dmu, dlv


def twin_fwd_bwd(mu, lv, dz):
    eps = ref.reparam_eps(1, 2, 0, *mu.shape)  # seed 1, step 2, as vaefast's calls
    twin.reparam_forward(mu, lv, eps)
    return twin.reparam_backward(mu, lv, eps, dz, kl_scale=0.5)


# ------------------------------------------------------------ pytest-benchmark
@pytest.mark.parametrize("n", NORMAL_SIZES)
def test_normal_vaefast(benchmark, n):
    benchmark.group = f"normal n={n}"
    benchmark(normal, 1, (n,))


@pytest.mark.parametrize("n", NORMAL_SIZES)
def test_normal_numpy(benchmark, n):
    benchmark.group = f"normal n={n}"
    gen = np.random.default_rng(1)
    benchmark(gen.standard_normal, n, dtype=np.float32)


def _gbps(benchmark, nbytes):
    benchmark.extra_info["GB/s"] = nbytes / benchmark.stats.stats.median / 1e9


@pytest.mark.parametrize("shape", REPARAM_SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_reparam_vaefast(benchmark, shape):
    benchmark.group = f"reparam fwd+bwd {shape}"
    mu, lv, dz = _inputs(shape)
    z = np.empty_like(mu)
    grads = (np.empty_like(mu), np.empty_like(mu))
    benchmark(vaefast_fwd_bwd, mu, lv, dz, z, grads)
    _gbps(benchmark, BYTES_PER_ELEM * mu.size)


@pytest.mark.parametrize("shape", REPARAM_SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_reparam_numpy_float32(benchmark, shape):
    benchmark.group = f"reparam fwd+bwd {shape}"
    mu, lv, dz = _inputs(shape)
    benchmark(numpy_fwd_bwd, mu, lv, dz, np.random.default_rng(1))
    _gbps(benchmark, BYTES_PER_ELEM * mu.size)


def test_reparam_twin(benchmark):
    benchmark.group = "reparam fwd+bwd (1024, 20)"
    mu, lv, dz = _inputs((1024, 20))
    benchmark(twin_fwd_bwd, mu, lv, dz)


def test_memcpy_bandwidth(benchmark):
    benchmark.group = "memory copy"
    src = np.ones(2**24, np.float32)  # 64 MiB, far beyond the caches
    dst = np.empty_like(src)
    benchmark(np.copyto, dst, src)
    _gbps(benchmark, 2 * src.nbytes)


# ----------------------------------------------------------------- script mode
def _median(fn, repeat):
    return median_seconds(fn, repeat)[0]


def measure(sizes=NORMAL_SIZES, shapes=REPARAM_SHAPES, repeats=None):
    """Median seconds of normal generation and reparameterization forward +
    backward, vaefast (current thread count) vs float32 NumPy.

    Returns
    -------
    list of dict
        ``{"case", "bytes", "vaefast_s", "numpy_s", "twin_s"}``; bytes are
        the float32 output of a normal draw, 32 per reparameterized element;
        twin_s (float64 reference twin) only for shapes under 10**5 elements.
    """
    rows = []
    for n in sizes:
        gen = np.random.default_rng(1)
        t_np = _median(lambda: gen.standard_normal(n, dtype=np.float32), repeats or 11)
        t_vf = _median(lambda: normal(1, (n,)), repeats or 11)
        rows.append(dict(case=f"normal-{n}", bytes=4 * n, vaefast_s=t_vf, numpy_s=t_np,
                         twin_s=None))
    for shape in shapes:
        mu, lv, dz = _inputs(shape)
        z = np.empty_like(mu)
        grads = (np.empty_like(mu), np.empty_like(mu))
        small = mu.size < 10**5
        rep = repeats or (51 if small else 11)
        t_vf = _median(lambda: vaefast_fwd_bwd(mu, lv, dz, z, grads), rep)
        gen = np.random.default_rng(1)
        t_np = _median(lambda: numpy_fwd_bwd(mu, lv, dz, gen), rep)
        t_tw = _median(lambda: twin_fwd_bwd(mu, lv, dz), repeats or 5) if small else None
        rows.append(dict(case=f"reparam-{shape[0]}x{shape[1]}", bytes=BYTES_PER_ELEM * mu.size,
                         vaefast_s=t_vf, numpy_s=t_np, twin_s=t_tw))
    return rows


def main():
    threads = vaefast.get_num_threads()
    print(f"kernel set {vaefast.isa()}")
    src = np.ones(2**24, np.float32)
    dst = np.empty_like(src)
    copy_bw = 2 * src.nbytes / _median(lambda: np.copyto(dst, src), 21) / 1e9
    print(f"memory copy (np.copyto, 64 MiB): {copy_bw:.1f} GB/s")
    for nt in (1, 2):
        vaefast.set_num_threads(nt)
        print(f"-- vaefast threads: {nt} (NumPy is single-threaded)")
        for r in measure():
            t_vf, t_np, nbytes = r["vaefast_s"], r["numpy_s"], r["bytes"]
            if r["case"].startswith("normal"):
                print(f"normal n={nbytes // 4:>8}: vaefast {t_vf * 1e3:7.2f} ms  numpy "
                      f"{t_np * 1e3:7.2f} ms  ratio {t_np / t_vf:4.1f}x")
                continue
            line = (f"reparam fwd+bwd {r['case'][8:]}: vaefast {nbytes / t_vf / 1e9:5.1f} GB/s"
                    f" ({100 * nbytes / t_vf / 1e9 / copy_bw:3.0f}% of copy)"
                    f"  numpy-f32 {nbytes / t_np / 1e9:5.1f} GB/s  ratio {t_np / t_vf:4.1f}x")
            if r["twin_s"] is not None:
                line += f"  twin ratio {r['twin_s'] / t_vf:5.0f}x"
            print(line)
    vaefast.set_num_threads(threads)


if __name__ == "__main__":
    main()
