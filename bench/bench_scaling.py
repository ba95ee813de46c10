"""Scaling benchmarks: MPI data-parallel training, Dask inference, streaming fit.

    python bench/bench_scaling.py mpi     [--steps 200]      # launches mpiexec itself
        [--modes blocking,shm,throttle,overlap] [--late-ms 5]  # the exchange: MPI_MODES
    python bench/bench_scaling.py dask    [--rows 200000]
    python bench/bench_scaling.py stream  [--rows 1000000]

All on the 784-400-20 Bernoulli VAE with uniform random data in [0, 1] (the
cost of a step does not depend on the values). Results are printed as one
JSON line per measurement; docs/scaling.md quotes them. Wall-clock numbers:
on a shared machine, run them when it is idle (check `uptime`).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np

D, HIDDEN, Z = 784, (400,), 20


def _model(seed=0):
    import vaefast

    return vaefast.VAE(D, hidden=HIDDEN, latent_dim=Z, seed=seed)


def _data(n, seed=0):
    return np.random.default_rng(seed).random((n, D), dtype=np.float32)


def _emit(**kw):
    print(json.dumps(kw), flush=True)


# ---------------------------------------------------------------- MPI
# How the ranks exchange the gradient (environment of every rank): one
# blocking Allreduce after the backward pass, as before issue 22 (MPICH polls
# while it waits); the same with MPICH's progress throttle (a usleep(1) after
# 64 polls that found nothing, MPIR_CVAR_CH4_PROGRESS_THROTTLE); per-layer
# buckets overlapped with the backward pass and a sleeping wait
# (vaefast/training/overlap.py), alone or with the throttle; or fit's default
# on one machine, the shared-memory window with the optimizer split between
# the ranks (vaefast/training/shm_exchange.py).
_THROTTLE = {"MPIR_CVAR_CH4_PROGRESS_THROTTLE": "1",
             "MPIR_CVAR_CH4_PROGRESS_THROTTLE_NO_PROGRESS_COUNT": "64"}
MPI_MODES = {
    "blocking": {"VAEFAST_MPI_OVERLAP": "0", "VAEFAST_MPI_SHM": "0"},
    "throttle": {"VAEFAST_MPI_OVERLAP": "0", "VAEFAST_MPI_SHM": "0", **_THROTTLE},
    "overlap": {"VAEFAST_MPI_OVERLAP": "1"},
    "overlap+throttle": {"VAEFAST_MPI_OVERLAP": "1", **_THROTTLE},
    "shm": {"VAEFAST_MPI_OVERLAP": "0", "VAEFAST_MPI_SHM": "1"},
}


def mpi_rank(steps, batch_per_rank, late_ms=0.0):
    """Run inside mpiexec: a split-step loop with per-phase timing, then fit."""
    from mpi4py import MPI

    import vaefast

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    vaefast.set_num_threads(1)
    X = _data(batch_per_rank * steps, seed=rank)
    model = _model()
    core = model._core
    grads = core.grads_array()
    B = batch_per_rank * size
    local = np.zeros(3)
    t_grad = t_reduce = t_update = cpu_reduce = 0.0
    overlap = os.environ.get("VAEFAST_MPI_OVERLAP", "1") != "0"
    shm = not overlap and size > 1 and os.environ.get("VAEFAST_MPI_SHM", "1") != "0"
    if overlap:  # as fit does: buckets started during the backward pass
        from vaefast.training.overlap import BucketedAllreduce

        reducer = BucketedAllreduce(core, comm, MPI)
    if shm:  # as fit does on one machine: the window, the update split
        from vaefast.training.shm_exchange import SharedExchange

        exchange = SharedExchange(core, comm, MPI)
    comm.Barrier()
    for s in range(steps):
        xb = X[s * batch_per_rank:(s + 1) * batch_per_rank]
        t0 = time.perf_counter()
        core.shard_grads(xb, 0, s, rank * batch_per_rank, B, 1.0, local, 0,
                         reducer.on_layer if overlap else None)
        if late_ms and rank == size - 1:  # a late partner: rank 0 reports its wait
            time.sleep(late_ms / 1e3)
        t1, c1 = time.perf_counter(), time.process_time()
        if overlap:
            reducer.finish(False)
        elif shm:  # the exchange: gradients in, each rank sums its slice
            exchange.reduce(False)
        else:
            comm.Allreduce(MPI.IN_PLACE, grads, op=MPI.SUM)
        t2, c2 = time.perf_counter(), time.process_time()
        if shm:  # the update: this rank's slice, then every slice installed
            exchange.update(s, 1e-3, 0.9, 0.999, 1e-8, 0.0, "adam")
        else:
            core.apply_update(s, 1e-3, 0.9, 0.999, 1e-8, 0.0, "adam")
        t3 = time.perf_counter()
        if s >= 10:  # warm-up excluded
            t_grad += t1 - t0
            t_reduce += t2 - t1
            cpu_reduce += c2 - c1  # CPU burnt while waiting: polling vs sleeping
            t_update += t3 - t2
    timed = steps - 10
    if shm:
        exchange.close()
    # the same through fit(comm=...): what a user gets, per-step Python included
    model = _model()
    comm.Barrier()
    t0, c0 = time.perf_counter(), time.process_time()
    model.fit(X, epochs=1, batch_size=B, shuffle=True, comm=comm, progress=False)
    cpu_per_row = (time.process_time() - c0) / len(X)
    comm.Barrier()
    fit_s = time.perf_counter() - t0
    # CPU seconds per row of each rank: equal for 1 and 2 ranks means the
    # split itself costs nothing and an idle machine would scale
    cpu = comm.gather(cpu_per_row)
    if rank == 0:
        _emit(bench="mpi", ranks=size, threads_per_rank=1, batch_per_rank=batch_per_rank,
              mode=os.environ.get("VAEFAST_BENCH_MPI_MODE", "overlap"), late_ms=late_ms,
              ms_gradient=1e3 * t_grad / timed, ms_allreduce=1e3 * t_reduce / timed,
              cpu_ms_allreduce=1e3 * cpu_reduce / timed, ms_update=1e3 * t_update / timed,
              fit_samples_per_s=size * len(X) / fit_s,
              cpu_ms_per_1k_rows_each_rank=[1e6 * c for c in cpu])


def mpi(args):
    mpiexec = os.path.join(sys.prefix, "bin", "mpiexec")
    if not os.path.exists(mpiexec):
        mpiexec = shutil.which("mpiexec")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    lib = os.path.join(os.path.dirname(os.path.dirname(mpiexec)), "lib")
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (lib, env.get("LD_LIBRARY_PATH")) if p)
    modes = args.modes.split(",")
    unknown = [m for m in modes if m not in MPI_MODES]
    if unknown:
        raise SystemExit(f"--modes: unknown {unknown}; choose from {sorted(MPI_MODES)}")
    results = {}
    for repeat in range(args.repeats):  # interleaved against drift in load
        for mode in modes:
            for n in (1, 2):
                out = subprocess.run([mpiexec, "-n", str(n), "-launcher", "fork", "-iface", "lo",
                                      sys.executable, __file__, "mpi-rank", "--steps",
                                      str(args.steps), "--batch", str(args.batch),
                                      "--late-ms", str(args.late_ms)],
                                     env=dict(env, VAEFAST_BENCH_MPI_MODE=mode, **MPI_MODES[mode]),
                                     capture_output=True, text=True, check=True).stdout
                row = json.loads(out.strip().splitlines()[-1])
                print(out.strip(), flush=True)
                results.setdefault((mode, n), []).append(row["fit_samples_per_s"])
    for mode in modes:
        one, two = np.median(results[mode, 1]), np.median(results[mode, 2])
        _emit(bench="mpi-summary", mode=mode, median_samples_per_s_1=one,
              median_samples_per_s_2=two, speedup=two / one, efficiency=two / one / 2)


# ---------------------------------------------------------------- Dask
def dask_bench(args):
    import dask.array as da
    import distributed

    import vaefast

    model = _model()
    X = _data(args.rows)
    vaefast.set_num_threads(2)
    model.transform(X[:10000])
    in_memory = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        model.transform(X)
        in_memory.append(args.rows / (time.perf_counter() - t0))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                                  processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        client.run(vaefast.set_num_threads, 1)
        dX = da.random.random((args.rows, D), chunks=(args.chunk, D)).astype(np.float32)
        dX = client.persist(dX)  # resident on the workers, as X is in memory
        distributed.wait(dX)
        model.transform(dX[:args.chunk]).compute()  # warm-up: model on the workers
        on_cluster = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            model.transform(dX).compute()
            on_cluster.append(args.rows / (time.perf_counter() - t0))
    a, b = np.median(in_memory), np.median(on_cluster)
    _emit(bench="dask-encode", rows=args.rows, chunk=args.chunk,
          in_memory_2_threads_rows_per_s=a, local_cluster_2x1_rows_per_s=b, ratio=b / a)


# ---------------------------------------------------------------- streaming
def _rss_anon_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


class _PeakAnon:
    """Samples RssAnon every 20 ms in a thread (the kernel keeps no peak of it)."""

    def __enter__(self):
        self.peak, self._stop = _rss_anon_kb(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss_anon_kb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def stream_bench(args):
    import vaefast

    vaefast.set_num_threads(args.threads)
    path = args.path
    if not os.path.exists(path):
        mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(args.rows, D))
        for i in range(0, args.rows, 50000):
            mm[i:i + 50000] = _data(min(50000, args.rows - i), seed=i)
        mm.flush()
        del mm
    X = np.load(path, mmap_mode="r")
    m = _model()
    before = _rss_anon_kb()
    with _PeakAnon() as peak:
        t0 = time.perf_counter()
        m.fit(X, epochs=1, batch_size=128, progress=False)
        streamed = args.rows / (time.perf_counter() - t0)
    # in memory, on the first args.compare_rows rows (same per-row cost)
    Xm = np.array(X[:args.compare_rows])
    m = _model()
    t0 = time.perf_counter()
    m.fit(Xm, epochs=1, batch_size=128, progress=False)
    in_memory = len(Xm) / (time.perf_counter() - t0)
    _emit(bench="stream-fit", rows=args.rows, threads=args.threads,
          rss_anon_before_mb=before / 1024, peak_rss_anon_mb=peak.peak / 1024,
          streamed_samples_per_s=streamed, in_memory_samples_per_s=in_memory,
          ratio=streamed / in_memory)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    a = sub.add_parser("mpi")
    a.add_argument("--steps", type=int, default=200)
    a.add_argument("--batch", type=int, default=128, help="rows per rank per step")
    a.add_argument("--repeats", type=int, default=3)
    a.add_argument("--modes", default="blocking,shm",
                   help=f"comma-separated, from {sorted(MPI_MODES)}")
    late = dict(type=float, default=0.0, help="the last rank sleeps this long before each "
                "exchange of the split-step loop (not fit): rank 0's cpu_ms_allreduce is "
                "then the CPU its wait burns")
    a.add_argument("--late-ms", **late)
    a = sub.add_parser("mpi-rank")
    a.add_argument("--steps", type=int, default=200)
    a.add_argument("--batch", type=int, default=128)
    a.add_argument("--late-ms", **late)
    a = sub.add_parser("dask")
    a.add_argument("--rows", type=int, default=200_000)
    a.add_argument("--chunk", type=int, default=10_000)
    a.add_argument("--repeats", type=int, default=3)
    a = sub.add_parser("stream")
    a.add_argument("--rows", type=int, default=1_000_000)
    a.add_argument("--path", default="/tmp/vaefast-stream-bench.npy")
    a.add_argument("--threads", type=int, default=1)
    a.add_argument("--compare-rows", type=int, default=100_000)
    args = p.parse_args()
    if args.what == "mpi":
        mpi(args)
    elif args.what == "mpi-rank":
        mpi_rank(args.steps, args.batch, args.late_ms)
    elif args.what == "dask":
        dask_bench(args)
    else:
        stream_bench(args)


if __name__ == "__main__":
    main()
