"""Model quality: vaefast vs PyTorch on Fashion-MNIST with PyTorch's VAE recipe.

The recipe is the classic pytorch/examples VAE: 784-400-20, ReLU, Bernoulli
likelihood on pixel intensities /255 (not binarised), KL summed over latents,
Adam lr 1e-3, batch 128, shuffled, 10 epochs. Three runs per seed s:

``vaefast``
    ``vaefast.VAE(784, (400,), 20, seed=s).fit(...)``: vaefast's default init.
``vaefast+torch-init``
    the same fit (same shuffling and noise streams, both depend only on s),
    started from the weights of a fresh torch model seeded with s:
    compared with ``vaefast`` it isolates the effect of the initialisation.
``torch``
    that same fresh torch model trained by a plain torch loop: compared with
    ``vaefast+torch-init`` it isolates the training loop.

The torch model is written as in pytorch/examples: the two heads are two
``nn.Linear(400, 20)`` (fc21 for mu, fc22 for logvar) and the loss is summed
over the batch. vaefast's head is one (400, 40) matrix; nn.Linear's default
init draws W and b from U(-1/sqrt(fan_in), 1/sqrt(fan_in)) and fan_in is 400
either way, so the two heads have the same init distribution. Adam is
invariant to the loss scale (sum vs vaefast's batch mean) up to its eps.

Every trained model is evaluated by the same estimator: the torch weights
are copied into a ``vaefast.VAE`` (set_weights) and all models are scored
with ``VAE.elbo`` on the 10000 test images, the same fixed noise seeds for
every model. On a subset, torch's own float32 ELBO with the same eps is
computed as a cross-check of that copy and of the estimator.

    python bench/quality_fashion_mnist.py                 # 3 seeds, 10 epochs, 1 thread
    python bench/quality_fashion_mnist.py --quick         # 1 seed, 1 epoch on 10000 images
    python bench/quality_fashion_mnist.py --init-only --seeds 12   # init question only
    # the noise of tests/test_quality.py's reduced run:
    python bench/quality_fashion_mnist.py --init-only --seeds 12 --epochs 2 \
        --train-size 5000 --test-size 2000 --iw-rows 0
    # the same on scikit-learn's digits (the test's fallback when CI lacks Fashion-MNIST):
    python bench/quality_fashion_mnist.py --dataset digits --init-only --seeds 12 --iw-rows 0
"""

import argparse
import math
import os
import platform
import statistics
import sys
import time

import numpy as np

H, Z = 400, 20  # hidden width and latent size; D comes from the data
EVAL_SEEDS = (0, 1, 2, 3)   # noise draws of the test ELBO, shared by every model
TARGET_NATS = 1.0           # the target: |vaefast - torch| <= 1 nat


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", choices=("fashion-mnist", "digits"), default="fashion-mnist",
                    help="digits: scikit-learn's 8x8 digits (the CI fallback of the test)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0 .. n-1")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--train-size", type=int, default=None,
                    help="use the first N training images (default: all 60000)")
    ap.add_argument("--test-size", type=int, default=None,
                    help="evaluate on the first N test images (default: all 10000)")
    ap.add_argument("--init-only", action="store_true",
                    help="skip the torch training loop: only vaefast's default init vs "
                         "torch's init, both trained by vaefast")
    ap.add_argument("--weight-scale", type=float, default=1.0,
                    help="multiply vaefast's default init weights (a sensitivity check)")
    ap.add_argument("--iw-rows", type=int, default=1000,
                    help="test rows for the importance-weighted log-likelihood (0: skip)")
    ap.add_argument("--iw-samples", type=int, default=100)
    ap.add_argument("--check-rows", type=int, default=1000,
                    help="test rows on which torch's own ELBO is cross-checked")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 1 seed, 1 epoch, 10000 training images")
    args = ap.parse_args(argv)
    if args.quick:
        args.epochs, args.seeds = 1, 1
        args.train_size = args.train_size or 10000
    return args


# ------------------------------------------------------------------ torch side
def make_torch_vae(torch, seed, D=784):
    """The pytorch/examples VAE (logits output), initialised from torch.manual_seed(seed)."""
    nn = torch.nn

    class TorchVAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(D, H)
            self.fc21 = nn.Linear(H, Z)   # mu
            self.fc22 = nn.Linear(H, Z)   # logvar
            self.fc3 = nn.Linear(Z, H)
            self.fc4 = nn.Linear(H, D)

        def encode(self, x):
            h = torch.relu(self.fc1(x))
            return self.fc21(h), self.fc22(h)

        def decode(self, z):
            return self.fc4(torch.relu(self.fc3(z)))  # logits

        def neg_elbo(self, x, eps):
            """Per-row negative ELBO for the given noise."""
            mu, logvar = self.encode(x)
            z = mu + torch.exp(0.5 * logvar) * eps
            bce = nn.functional.binary_cross_entropy_with_logits(
                self.decode(z), x, reduction="none").sum(1)
            kl = -0.5 * (1 + logvar - mu * mu - logvar.exp()).sum(1)
            return bce + kl

    torch.manual_seed(seed)
    return TorchVAE()


def torch_to_vaefast(net):
    """nn.Linear weights (out, in) -> vaefast's weight dict, shaped (in, out)."""
    pairs = {"encoder.0": net.fc1, "mu": net.fc21, "logvar": net.fc22,
             "decoder.0": net.fc3, "output": net.fc4}
    out = {}
    for name, layer in pairs.items():
        out[f"{name}.weight"] = layer.weight.detach().numpy().T.copy()
        out[f"{name}.bias"] = layer.bias.detach().numpy().copy()
    return out


def train_torch(torch, net, X, epochs, seed, batch=128, lr=1e-3):
    """pytorch/examples' loop: shuffled batches, loss summed over the batch."""
    Xt = torch.from_numpy(X)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)  # shuffling, as DataLoader(shuffle=True)
    net.train()
    for _ in range(epochs):
        order = torch.randperm(Xt.shape[0], generator=gen)
        for s in range(0, Xt.shape[0], batch):
            xb = Xt[order[s:s + batch]]
            opt.zero_grad()
            loss = net.neg_elbo(xb, torch.randn(xb.shape[0], Z)).sum()
            loss.backward()
            opt.step()
    return net


def load(vaefast, dataset):
    """(train, test) images in [0, 1]; digits: the first 1500 rows train, the rest test."""
    if dataset == "digits":
        X = vaefast.datasets.load_digits()
        return X[:1500], X[1500:]
    # raises FileNotFoundError naming `apt-get install dataset-fashion-mnist`
    Xtr, _ = vaefast.datasets.load_fashion_mnist(kind="train")
    Xte, _ = vaefast.datasets.load_fashion_mnist(kind="test")
    return Xtr, Xte


# ------------------------------------------------------------------ evaluation
def eval_nelbo(model, X):
    """Mean test negative ELBO (nats per image), averaged over EVAL_SEEDS draws."""
    return float(np.mean([-model.elbo(X, seed=s).mean() for s in EVAL_SEEDS]))


def cross_check(torch, net, model, X):
    """Torch's own float32 ELBO vs vaefast's elbo on the same weights and eps.

    Returns (max |difference| per image, |difference of the means|) in nats.
    """
    eps = np.random.default_rng(EVAL_SEEDS[0]).standard_normal((X.shape[0], Z))
    with torch.no_grad():
        theirs = -net.neg_elbo(torch.from_numpy(X),
                               torch.from_numpy(eps.astype(np.float32))).numpy()
    ours = model.elbo(X, seed=EVAL_SEEDS[0])  # draws the same eps from the same seed
    d = ours.astype(np.float64) - theirs.astype(np.float64)
    return float(np.abs(d).max()), float(abs(d.mean()))


# ------------------------------------------------------------------ driver
def run_seed(vaefast, torch, seed, Xtr, Xte, args):
    """Train the variants for one seed; returns a dict of results."""
    res = {"seed": seed}
    D = Xtr.shape[1]
    fit = dict(epochs=args.epochs, batch_size=128, learning_rate=1e-3, progress=False)
    models = {}

    m = vaefast.VAE(D, hidden=(H,), latent_dim=Z, likelihood="bernoulli", seed=seed)
    if args.weight_scale != 1.0:  # sensitivity check: a deliberately mis-scaled init
        m.set_weights({k: v * args.weight_scale if k.endswith("weight") else v
                       for k, v in m.get_weights().items()})
    t = time.perf_counter()
    m.fit(Xtr, **fit)
    res["time_vaefast"] = time.perf_counter() - t
    models["vaefast"] = m

    m = vaefast.VAE(D, hidden=(H,), latent_dim=Z, likelihood="bernoulli", seed=seed)
    m.set_weights(torch_to_vaefast(make_torch_vae(torch, seed, D)))
    m.fit(Xtr, **fit)
    models["vaefast+torch-init"] = m

    if not args.init_only:
        net = make_torch_vae(torch, seed, D)
        t = time.perf_counter()
        train_torch(torch, net, Xtr, args.epochs, seed)
        res["time_torch"] = time.perf_counter() - t
        net.eval()
        m = vaefast.VAE(D, hidden=(H,), latent_dim=Z, likelihood="bernoulli", seed=seed)
        m.set_weights(torch_to_vaefast(net))
        models["torch"] = m
        res["check"] = cross_check(torch, net, m, Xte[:args.check_rows])

    for name, model in models.items():
        res[name] = eval_nelbo(model, Xte)
        if args.iw_rows:
            res[name + " iw"] = float(-model.log_likelihood(
                Xte[:args.iw_rows], n_samples=args.iw_samples, seed=seed).mean())
    return res


def cpu_name():
    """The CPU model from /proc/cpuinfo (Linux), else platform's guess."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip() + f" ({os.cpu_count()} cpus)"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def mean_sd(values):
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return statistics.fmean(values), sd


def report(results, args, vaefast, torch, n_train, n_test):
    names = ["vaefast", "vaefast+torch-init"] + ([] if args.init_only else ["torch"])
    print(f"# {args.dataset}, {args.n_features}-{H}-{Z} Bernoulli VAE, Adam 1e-3, batch 128, "
          f"{args.epochs} epochs, {n_train} training / {n_test} test images")
    print(f"# vaefast {vaefast.__version__} ({vaefast.isa()}), torch {torch.__version__}, "
          f"{args.threads} thread(s), {cpu_name()}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("# command: python " + " ".join(sys.argv))
    if args.weight_scale != 1.0:
        print(f"# vaefast's default init weights scaled by {args.weight_scale:g}")
    print(f"# test negative ELBO, nats per image (single-sample, mean over "
          f"{len(EVAL_SEEDS)} fixed noise draws x {n_test} images; lower is better)")
    print()
    if args.init_only:
        hdr = "| seed | vaefast | vaefast+torch-init | difference |"
        rows = [f"{r['vaefast'] - r['vaefast+torch-init']:+.2f}" for r in results]
    else:
        hdr = ("| seed | vaefast | vaefast+torch-init | torch | vaefast - torch"
               " | vaefast s | torch s |")
        rows = [f"{r['vaefast'] - r['torch']:+.2f} | {r['time_vaefast']:.1f} | "
                f"{r['time_torch']:.1f}" for r in results]
    print(hdr)
    print("|" + "---|" * (hdr.count("|") - 1))
    for r, tail in zip(results, rows):
        print(f"| {r['seed']} | " + " | ".join(f"{r[n]:.2f}" for n in names) + f" | {tail} |")
    cols = " | ".join("{:.2f} ± {:.2f}".format(*mean_sd([r[n] for r in results]))
                      for n in names)
    init = mean_sd([r["vaefast"] - r["vaefast+torch-init"] for r in results])
    if args.init_only:
        print(f"| mean ± sd | {cols} | {init[0]:+.2f} ± {init[1]:.2f} |")
    else:
        diff = mean_sd([r["vaefast"] - r["torch"] for r in results])
        tv = statistics.fmean(r["time_vaefast"] for r in results)
        tt = statistics.fmean(r["time_torch"] for r in results)
        print(f"| mean ± sd | {cols} | {diff[0]:+.2f} ± {diff[1]:.2f} | {tv:.1f} | {tt:.1f} |")
    if args.iw_rows:
        print()
        print(f"importance-weighted log-likelihood, -log p(x) (K={args.iw_samples}, "
              f"first {args.iw_rows} test images), mean ± sd over seeds:")
        for n in names:
            m, s = mean_sd([r[n + " iw"] for r in results])
            print(f"  {n:20s} {m:.2f} ± {s:.2f}")
    print()
    n = len(results)
    print(f"init effect  (vaefast - vaefast+torch-init, same trainer and seed): "
          f"{init[0]:+.2f} nats, sd {init[1]:.2f} per seed, "
          f"standard error {init[1] / math.sqrt(n):.2f} over {n} seeds")
    if args.init_only:
        return
    worst = max(r["check"][0] for r in results)
    worst_mean = max(r["check"][1] for r in results)
    print(f"estimator cross-check (torch's own float32 ELBO vs vaefast elbo, same weights "
          f"and eps, {min(args.check_rows, n_test)} test images): max |diff| per image {worst:.2e} nats, "
          f"|diff of means| {worst_mean:.2e} nats")
    loop = mean_sd([r["vaefast+torch-init"] - r["torch"] for r in results])
    print(f"loop effect  (vaefast+torch-init - torch, same init): {loop[0]:+.2f} nats, "
          f"sd {loop[1]:.2f} per seed")
    diff = mean_sd([r["vaefast"] - r["torch"] for r in results])
    verdict = "PASS" if abs(diff[0]) <= TARGET_NATS else "FAIL"
    print(f"verdict: vaefast - torch = {diff[0]:+.2f} nats (mean over {n} seeds, standard "
          f"error {diff[1] / math.sqrt(n):.2f}); target |diff| <= {TARGET_NATS:g} nat: {verdict}")


def main(argv=None):
    args = parse_args(argv)
    # Before torch/OpenMP start: one thread each unless asked otherwise.
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import vaefast

    try:
        import torch
    except ImportError:
        print("skipped: PyTorch is not installed (pip install torch==2.13.0, the CPU wheel)")
        return 0
    try:
        Xtr, Xte = load(vaefast, args.dataset)
    except (FileNotFoundError, ImportError) as e:
        print(f"skipped: {e}")
        return 0
    args.n_features = Xtr.shape[1]
    torch.set_num_threads(args.threads)
    vaefast.set_num_threads(args.threads)
    Xtr, Xte = Xtr[:args.train_size], Xte[:args.test_size]
    results = []
    for seed in range(args.seeds):
        t = time.perf_counter()
        results.append(run_seed(vaefast, torch, seed, Xtr, Xte, args))
        print(f"seed {seed} done in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    report(results, args, vaefast, torch, Xtr.shape[0], Xte.shape[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
