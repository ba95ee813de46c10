"""Model quality of precision="bf16" training (issue 26): Fashion-MNIST test
negative ELBO after the same epochs, bf16 vs fp32, several seeds.

The recipe of bench/quality_fashion_mnist.py (784-400-20, Bernoulli on
intensities /255, Adam lr 1e-3, batch 128, shuffled). Per seed s, two fits
from the same init, shuffling and noise (all functions of s) that differ
only in fit's precision; both are scored by the same fp32 estimator
(eval_nelbo: VAE.elbo on the test images, fixed noise seeds), and the bf16
model also by its own bf16 elbo.

    python bench/quality_bf16.py [--seeds 5] [--epochs 10] [--threads 1]
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from quality_fashion_mnist import EVAL_SEEDS, H, Z, eval_nelbo, load  # noqa: E402

import numpy as np  # noqa: E402

import vaefast  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dataset", choices=("fashion-mnist", "digits"), default="fashion-mnist")
    a = ap.parse_args()
    vaefast.set_num_threads(a.threads)
    Xtr, Xte = load(vaefast, a.dataset)
    rows = []
    for s in range(a.seeds):
        got = {}
        for precision in ("fp32", "bf16"):
            m = vaefast.VAE(Xtr.shape[1], hidden=(H,), latent_dim=Z, seed=s)
            t0 = time.perf_counter()
            m.fit(Xtr, epochs=a.epochs, batch_size=128, progress=False, precision=precision)
            got[precision] = (eval_nelbo(m, Xte), time.perf_counter() - t0)
            if precision == "bf16":
                got["bf16 eval"] = float(np.mean(
                    [-m.elbo(Xte, seed=e, precision="bf16").mean() for e in EVAL_SEEDS]))
        rows.append(got)
        print(f"seed {s}: fp32 {got['fp32'][0]:.3f} ({got['fp32'][1]:.0f} s), bf16 "
              f"{got['bf16'][0]:.3f} ({got['bf16'][1]:.0f} s), bf16 scored in bf16 "
              f"{got['bf16 eval']:.3f}, bf16 - fp32 {got['bf16'][0] - got['fp32'][0]:+.3f}",
              flush=True)
    d = [r["bf16"][0] - r["fp32"][0] for r in rows]
    f32 = [r["fp32"][0] for r in rows]
    b16 = [r["bf16"][0] for r in rows]
    sd = statistics.stdev if len(rows) > 1 else (lambda v: 0.0)
    print(f"{a.dataset}, {a.epochs} epochs, {len(rows)} seeds, test negative ELBO (nats): "
          f"fp32 {statistics.mean(f32):.3f} ± {sd(f32):.3f}, bf16 {statistics.mean(b16):.3f} "
          f"± {sd(b16):.3f}, bf16 − fp32 {statistics.mean(d):+.3f} ± {sd(d):.3f} "
          f"(max |·| {max(abs(x) for x in d):.3f})")


if __name__ == "__main__":
    main()
