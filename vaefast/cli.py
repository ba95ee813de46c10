"""Command line: ``python -m vaefast demo | walkthrough``."""

import argparse
import os
import sys

import numpy as np


def _demo(args):
    import vaefast
    from ._png import image_grid, write_png

    try:
        X = vaefast.datasets.load_digits()
    except ImportError:
        print("the demo trains on scikit-learn's digits; install it with\n"
              '    pip install "vaefast[sklearn]"   (or: pip install scikit-learn)',
              file=sys.stderr)
        return 2
    order = np.random.default_rng(args.seed).permutation(len(X))
    train, val = X[order[:1500]], X[order[1500:]]
    model = vaefast.VAE(64, hidden=(128,), latent_dim=8, likelihood="bernoulli", seed=args.seed)
    print(f"vaefast {vaefast.__version__} ({vaefast.isa()}, {vaefast.get_num_threads()} threads): "
          f"VAE 64-128-8 on scikit-learn digits, {len(train)} train / {len(val)} validation rows")
    print(f"{'epoch':>5} {'loss':>9} {'recon':>9} {'KL':>7} {'val loss':>9} {'seconds':>8}")

    def report(epoch, logs):
        print(f"{epoch + 1:>5} {logs['loss']:9.3f} {logs['recon']:9.3f} {logs['kl']:7.3f} "
              f"{logs['val_loss']:9.3f} {logs['seconds']:8.3f}")

    model.fit(train, epochs=args.epochs, batch_size=64, learning_rate=3e-3,
              validation_data=val, callbacks=(report,), progress=False)
    os.makedirs(args.out, exist_ok=True)
    samples_path = os.path.join(args.out, "samples.png")
    recon_path = os.path.join(args.out, "reconstructions.png")
    model_path = os.path.join(args.out, "digits.vae")
    write_png(samples_path, image_grid(model.sample(64, seed=args.seed), 8, 8))
    originals = val[:16]
    pairs = np.concatenate([originals, model.reconstruct(originals)])
    write_png(recon_path, image_grid(pairs, 8, 16))
    model.save(model_path)
    print(f"validation ELBO {model.elbo(val, seed=0).mean():.3f} nats per image")
    for path in (samples_path, recon_path, model_path):
        print(f"wrote {path}")
    return 0


def _walkthrough(args):
    from .walkthrough import print_walkthrough

    print("A VAE by hand: 3 examples, 4 features, 3 hidden units, 2 latents (vaefast.reference)")
    print_walkthrough(seed=args.seed)
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="vaefast", description="Variational autoencoders on the CPU.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train on scikit-learn's digits and write PNGs")
    demo.add_argument("--epochs", type=int, default=20)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", default="vaefast-demo", help="output folder")
    demo.set_defaults(run=_demo)
    walk = sub.add_parser("walkthrough", help="print every step of a tiny VAE, by hand")
    walk.add_argument("--seed", type=int, default=0)
    walk.set_defaults(run=_walkthrough)
    return parser


def main(argv=None):
    """Entry point of ``python -m vaefast``; returns the exit code."""
    args = build_parser().parse_args(argv)
    if getattr(args, "epochs", 1) < 1:
        print("vaefast: --epochs must be >= 1", file=sys.stderr)
        return 2
    return args.run(args)
