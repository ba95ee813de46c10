"""Issue 23's epoch target for the count likelihoods, and issue 24's sparse
inference: how an epoch of the scVI-style models compares with the
Gaussian model's on the same counts, and what the CSR first layer saves
in inference.

    python bench/bench_count_epoch.py [--cells 6000] [--genes 2000]
                                      [--epochs 5] [--threads 1 2]
                                      [--rounds 5] [--models ...] [--transform]

Counts from bench/single_cell_data.py (about 90% zeros), made once and
shared through a temporary .npy file. For each thread count, `--rounds`
rounds; each round fits every model once, each fit in a fresh process, the
models' order rotated from round to round (so a burst of load on the shared
machine hits every model alike). A fit is ``VAE.fit`` (hidden 128, latent
10, batch 128, dense input) of the unit-variance Gaussian, the
per-sample-variance Gaussian (whose output layer is 2 × genes wide, as
ZINB's mean and zero-inflation heads are), scvi_nb and zinb; the child
reports its median epoch (between epoch-end callbacks, first epoch
dropped) in wall time and in the process's CPU time (all its threads:
descheduling does not inflate it). The table gives the medians over the
rounds and each model's ratio to the unit Gaussian in the same clock; the
range of the per-round ratios (each round's fits ran back to back) follows.

With --transform the zinb children also time ``transform`` of all cells
from the CSR matrix and from the dense array (median of 7; CPU time with
one thread, wall time with more).

The machine may be shared: compare ratios within one run, and repeat.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

MODELS = {"gaussian": {}, "gaussian (sample variance)": {"variance": "sample"},
          "scvi_nb": {}, "zinb": {}}


def child(path, name, epochs, threads, transform):
    """One fit in this process; prints a JSON line of its timings."""
    import vaefast
    vaefast.set_num_threads(threads)
    X = np.load(path)
    lik = name.split(" ")[0]
    m = vaefast.VAE(X.shape[1], hidden=(128,), latent_dim=10, likelihood=lik, seed=0,
                    **MODELS[name])
    stamps = []
    m.fit(X, epochs=epochs, batch_size=128, learning_rate=1e-3, progress=False,
          callbacks=lambda epoch, logs: stamps.append((time.perf_counter(),
                                                       time.process_time())))
    st = np.array(stamps)
    d = np.diff(st, axis=0)  # the first epoch (warm-up) has no start stamp
    out = {"wall": float(np.median(d[:, 0])), "cpu": float(np.median(d[:, 1])),
           "isa": vaefast._core.get_isa()}
    if transform:
        import scipy.sparse as sp

        from timing import median_seconds
        csr = sp.csr_matrix(X)
        clock = time.process_time if threads == 1 else time.perf_counter
        out["transform_dense"] = median_seconds(lambda: m.transform(X), rounds=7, clock=clock)[0]
        out["transform_csr"] = median_seconds(lambda: m.transform(csr), rounds=7, clock=clock)[0]
    print(json.dumps(out))


def run_child(path, name, args, threads, transform):
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    cmd = [sys.executable, os.path.abspath(__file__), "--child", path, name,
           "--epochs", str(args.epochs), "--threads", str(threads)]
    if transform:
        cmd.append("--transform")
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", type=int, default=6000)
    ap.add_argument("--genes", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--transform", action="store_true")
    ap.add_argument("--child", nargs=2, metavar=("NPY", "MODEL"))
    args = ap.parse_args()
    if args.child:
        return child(args.child[0], args.child[1], args.epochs, args.threads[0],
                     args.transform)
    from single_cell_data import make_counts
    X = make_counts(args.cells, args.genes)["X"]
    names = ["gaussian"] + [n for n in args.models if n != "gaussian"]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "X.npy")
        np.save(path, X)
        print(f"{X.shape[0]} × {X.shape[1]} counts, {(X == 0).mean():.1%} zeros; "
              f"{args.rounds} interleaved rounds, a fresh process per fit; "
              f"load average {os.getloadavg()[0]:.1f} (shared machine: ratios only)")
        for threads in args.threads:
            runs = {n: [] for n in names}
            for r in range(args.rounds):
                order = names[r % len(names):] + names[:r % len(names)]
                for n in order:
                    runs[n].append(run_child(path, n, args, threads,
                                             args.transform and n == "zinb"))
            isa = runs["gaussian"][0]["isa"]
            print(f"\n{threads} thread(s), {isa}: median seconds per epoch "
                  f"(load average now {os.getloadavg()[0]:.1f})")
            print(f"  {'model':28s} {'wall':>8s} {'CPU':>8s}   wall×G  CPU×G   "
                  "per-round CPU×G range")
            g = runs["gaussian"]
            for n in names:
                w = np.median([x["wall"] for x in runs[n]])
                c = np.median([x["cpu"] for x in runs[n]])
                gw = np.median([x["wall"] for x in g])
                gc = np.median([x["cpu"] for x in g])
                per = [a["cpu"] / b["cpu"] for a, b in zip(runs[n], g)]
                print(f"  {n:28s} {w:8.4f} {c:8.4f}   {w / gw:5.2f}  {c / gc:5.2f}   "
                      f"{min(per):.2f}–{max(per):.2f}")
            if args.transform and "zinb" in runs:
                td = np.median([x["transform_dense"] for x in runs["zinb"]])
                tc = np.median([x["transform_csr"] for x in runs["zinb"]])
                print(f"  transform (zinb; 1 thread CPU, else wall): dense {td:.4f}, CSR {tc:.4f}, "
                      f"dense/CSR {td / tc:.2f}×")


if __name__ == "__main__":
    main()
