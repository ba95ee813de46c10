"""What the dispersion modes of the C core cost (csrc/vae_dispersion.c):
an epoch of the scVI-mean count models with θ per gene, per gene and batch,
per gene and label, and from a decoder head, as a ratio to the "gene" mode.

    python bench/bench_dispersion.py [--cells 4096] [--genes 2000]
                                     [--likelihood zinb] [--threads 1]

Counts from bench/single_cell_data.py (about 90% zeros), with its batch and
cell type as the two categorical code columns (the cell type is the label).
The core is driven directly (VAE does not take dispersion= yet): hidden
128, latent 10, batch 128, Adam, the batch injected into the decoder. One
epoch per timed call, the median of 5 in CPU time of the process with one
thread (time.process_time), wall time with more; the modes interleaved.

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

MODES = (("gene", None), ("gene-batch", 0), ("gene-label", 1), ("gene-cell", None))


def main() -> None:
    import vaefast
    from vaefast import _core
    from vaefast._spec.likelihoods import REGISTRY

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=4096)
    ap.add_argument("--genes", type=int, default=2000)
    ap.add_argument("--likelihood", choices=("zinb", "scvi_nb"), default="zinb")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    vaefast.set_num_threads(a.threads)
    data = make_counts(a.cells, a.genes)
    X = np.ascontiguousarray(data["X"], np.float32)
    X = X[X.sum(axis=1) > 0]
    n = len(X)
    codes = np.stack([data["batch"][:n], data["cell_type"][:n]], axis=1).astype(np.int32)
    levels = [int(codes[:, 0].max()) + 1, int(codes[:, 1].max()) + 1]
    order = np.random.default_rng(0).permutation(n).astype(np.int64)
    cores = {}
    for mode, col in MODES:
        core = _core.VAECore(a.genes, [128], [128], 10, REGISTRY[a.likelihood].code, 1.0,
                             categorical=levels, dispersion=mode, dispersion_covariate=col)
        rng = np.random.default_rng(1)
        core.set_buffer(_core.PARAMS, (0.02 * rng.standard_normal(core.num_params))
                        .astype(np.float32))
        cores[mode] = core
    clock = time.process_time if a.threads == 1 else time.perf_counter
    steps = n // 128

    def epoch(core):
        def run():
            done, status = core.train_steps(X, order, 128, 0, steps, 3, core.step, 1e-3, 0.9,
                                            0.999, 1e-8, 0.0, "adam", 1.0, np.zeros(3),
                                            c=(None, codes))
            assert status == 0 and done == steps
        return run

    times = {mode: [] for mode, _ in MODES}
    for _ in range(2):  # interleaved: a burst of load hits every mode
        for mode, _ in MODES:
            times[mode].append(median_seconds(epoch(cores[mode]), rounds=5, clock=clock)[0])
    base = min(times["gene"])
    print(f"{a.likelihood}, {n} cells x {a.genes} genes, {a.threads} thread(s), "
          f"{'CPU' if a.threads == 1 else 'wall'} time per epoch")
    for mode, _ in MODES:
        t = min(times[mode])
        print(f"  {mode:11s} {t * 1e3:8.1f} ms  {t / base:5.2f}x gene")


if __name__ == "__main__":
    main()
