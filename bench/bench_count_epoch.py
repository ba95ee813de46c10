"""Issue 23's epoch target for the count likelihoods, and issue 24's sparse
inference: how an epoch of the scVI-style models compares with the
Gaussian model's on the same counts, and what the CSR first layer saves
in inference.

    python bench/bench_count_epoch.py [--cells 6000] [--genes 2000]
                                      [--epochs 5] [--threads 1 2]

Counts from bench/single_cell_data.py (about 90% zeros). For each thread
count, an epoch of ``VAE.fit`` (hidden 128, latent 10, batch 128, dense
input) for the unit-variance Gaussian, the per-sample-variance Gaussian
(whose output layer is 2 × genes wide, as ZINB's mean and zero-inflation
heads are), scvi_nb and zinb: the median epoch (between epoch-end
callbacks), with one thread in CPU time of the process
(time.process_time: descheduling on a shared machine does not inflate it),
with more in wall time. Each model is timed twice, interleaved, and the
better median kept. Ratios are against the unit Gaussian.

Then ``transform`` of all cells of a fitted zinb model from the CSR
matrix (the encoder's first layer on the CSR chunks) and from the dense
array (median of rounds, same clocks).

The machine may be shared: compare ratios within one run, and repeat.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from single_cell_data import make_counts  # noqa: E402
from timing import median_seconds  # noqa: E402

MODELS = {"gaussian": {}, "gaussian (sample variance)": {"variance": "sample"},
          "scvi_nb": {}, "zinb": {}}


def epoch_seconds(X, name, epochs, clock):
    import vaefast
    lik = name.split(" ")[0]
    m = vaefast.VAE(X.shape[1], hidden=(128,), latent_dim=10, likelihood=lik, seed=0,
                    **MODELS[name])
    stamps = []
    m.fit(X, epochs=epochs, batch_size=128, learning_rate=1e-3, progress=False,
          callbacks=lambda epoch, logs: stamps.append(clock()))
    return float(np.median(np.diff(stamps))), m


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", type=int, default=6000)
    ap.add_argument("--genes", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    import scipy.sparse as sp

    import vaefast
    X = make_counts(args.cells, args.genes)["X"]
    csr = sp.csr_matrix(X)
    print(f"vaefast {vaefast._core.get_isa()}, {X.shape[0]} × {X.shape[1]} counts, "
          f"{(X == 0).mean():.1%} zeros; load average {os.getloadavg()[0]:.1f} "
          "(shared machine: timings vary)")
    for threads in args.threads:
        vaefast.set_num_threads(threads)
        clock = time.process_time if threads == 1 else time.perf_counter
        best, fitted = {}, None
        for _ in range(2):
            for name in MODELS:
                s, m = epoch_seconds(X, name, args.epochs, clock)
                best[name] = min(best.get(name, s), s)
                fitted = m if name == "zinb" else fitted
        clock_name = "CPU" if threads == 1 else "wall"
        print(f"\n{threads} thread(s): seconds per epoch ({clock_name})")
        for name, s in best.items():
            print(f"  {name:28s} {s:8.4f}   {s / best['gaussian']:5.2f}× the Gaussian")
        dense = median_seconds(lambda: fitted.transform(X), rounds=7, clock=clock)
        sparse = median_seconds(lambda: fitted.transform(csr), rounds=7, clock=clock)
        print(f"  transform, dense array      {dense[0]:8.4f}")
        print(f"  transform, CSR              {sparse[0]:8.4f}   "
              f"dense/CSR {dense[0] / sparse[0]:.2f}×")


if __name__ == "__main__":
    main()
