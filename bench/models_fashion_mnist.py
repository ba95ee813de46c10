"""Each model kind on Fashion-MNIST: the measured examples of docs/models.md.

784-400-20 (ReLU), Adam lr 1e-3, batch 128, 10 epochs on the 60000 training
images, one seed. Pixel values 0..255 are the counts of the Poisson and
negative-binomial models; the Bernoulli and Gaussian models see them /255;
the conditional model gets the one-hot class. Reported on the first 1000
test images: −ELBO (mean of 4 noise draws) and −IWAE-100, nats per image,
and 1-thread training seconds.

    python bench/models_fashion_mnist.py [--epochs 10] [--threads 1]
"""

import argparse
import time

import numpy as np

import vaefast
from vaefast.datasets import load_fashion_mnist

KINDS = {
    "bernoulli": dict(likelihood="bernoulli"),
    "bernoulli, conditional": dict(likelihood="bernoulli", n_conditions=10),
    "gaussian, variance=unit": dict(likelihood="gaussian"),
    "gaussian, variance=feature": dict(likelihood="gaussian", variance="feature"),
    "gaussian, variance=sample": dict(likelihood="gaussian", variance="sample"),
    "poisson": dict(likelihood="poisson"),
    "negative_binomial": dict(likelihood="negative_binomial"),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    vaefast.set_num_threads(args.threads)
    Xtr, ytr = load_fashion_mnist(kind="train")
    Xte, yte = load_fashion_mnist(kind="test")
    Xte, yte = Xte[:1000], yte[:1000]
    print("| model | data | −ELBO | −IWAE-100 | train s |")
    print("|---|---|---|---|---|")
    for name, cfg in KINDS.items():
        counts = cfg["likelihood"] in ("poisson", "negative_binomial")
        scale = 255.0 if counts else 1.0  # load_fashion_mnist gives [0, 1]
        tr, te = np.round(Xtr * scale) if counts else Xtr, np.round(Xte * scale) if counts else Xte
        ctr = np.eye(10, dtype=np.float32)[ytr] if cfg.get("n_conditions") else None
        cte = np.eye(10, dtype=np.float32)[yte] if cfg.get("n_conditions") else None
        m = vaefast.VAE(784, hidden=(400,), latent_dim=20, seed=0, **cfg)
        t = time.perf_counter()
        m.fit(tr, c=ctr, epochs=args.epochs, batch_size=128, progress=False)
        sec = time.perf_counter() - t
        nelbo = np.mean([-m.elbo(te, seed=k, c=cte).mean() for k in range(4)])
        nll = -m.log_likelihood(te, n_samples=100, seed=0, c=cte).mean()
        data = "pixels 0..255 (counts)" if counts else "pixels / 255"
        print(f"| {name} | {data} | {nelbo:.1f} | {nll:.1f} | {sec:.0f} |", flush=True)


if __name__ == "__main__":
    main()
