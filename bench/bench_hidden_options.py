"""Cost of the hidden-layer options (dropout, batch norm, layer norm) per
training epoch, against the plain model.

    python bench/bench_hidden_options.py [threads]

A 2000-128-10 negative-binomial model (scVI's widths) on 4096 rows of
90%-zero counts, batch 128, one epoch per round, one thread by default;
median of rounds of the calling thread's CPU time with one thread
(time.thread_time: the machine is shared), wall time with more. The ratios
against "plain" inside one run are what to read: absolute times move with
the machine's load.
"""

import os
import sys
import time

import numpy as np

import vaefast

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/timing.py
from timing import median_seconds  # noqa: E402

N_ROWS, N_GENES, HIDDEN, LATENT, BATCH = 4096, 2000, 128, 10, 128
OPTIONS = {
    "plain": {},
    "dropout 0.1 (encoder)": dict(dropout_rate=0.1, dropout_on="encoder"),
    "batch norm (both)": dict(use_batch_norm="both"),
    "scVI hidden (BN both + dropout 0.1 encoder)": dict(use_batch_norm="both",
                                                        dropout_rate=0.1,
                                                        dropout_on="encoder"),
    "layer norm (both)": dict(use_layer_norm="both"),
}


def counts(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.negative_binomial(2.0, 0.4, (N_ROWS, N_GENES)).astype(np.float32)
    x[rng.random(x.shape) < 0.9] = 0.0
    return x


def main() -> None:
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    vaefast.set_num_threads(threads)
    clock = time.thread_time if threads == 1 else time.perf_counter
    X = counts()
    print(f"{N_ROWS} x {N_GENES} counts, {HIDDEN} hidden, {LATENT} latent, batch {BATCH}, "
          f"{threads} thread(s), {'CPU' if threads == 1 else 'wall'} seconds per epoch")
    base = None
    for name, kw in OPTIONS.items():
        m = vaefast.VAE(N_GENES, hidden=(HIDDEN,), latent_dim=LATENT,
                        likelihood="negative_binomial", seed=0, **kw)
        med, best = median_seconds(
            lambda: m.fit(X, epochs=1, batch_size=BATCH, progress=False), rounds=5,
            clock=clock)
        base = base or med
        print(f"  {name:45s} {med:7.3f} s (best {best:7.3f})  {med / base:5.2f}x plain")


if __name__ == "__main__":
    main()
