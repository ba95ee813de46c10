"""Held-out quality of the model family against PyTorch implementations.

For each model kind (Poisson and negative binomial on digits pixel values
0-16 as counts, Gaussian with learned variance per feature and per sample on
digits/16, a conditional Bernoulli VAE on digits/16 with one-hot labels) this
trains vaefast and a plain PyTorch implementation of the same network and
recipe (64-128-8 with ReLU, Adam lr 1e-3, batch 64, the same epochs, the
nn.Linear default init) for 3 seeds each, then scores every trained model
with the same estimator: the torch weights are copied into a vaefast.VAE
(set_weights) and both are evaluated by VAE.elbo (mean over 4 fixed noise
draws) and VAE.log_likelihood (IWAE, K = 100) on the same held-out rows.

    python bench/quality_models.py [--epochs 100] [--seeds 3] [--out results.json]

Prints a Markdown table (negative log-likelihoods in nats per image, lower is
better); docs/quality.md holds a run.
"""

import argparse
import json
import math
import time

import numpy as np

import vaefast
from vaefast.datasets import load_digits

HIDDEN, LATENT, BATCH, LR = 128, 8, 64, 1e-3
KINDS = {
    "poisson": dict(likelihood="poisson"),
    "negative_binomial": dict(likelihood="negative_binomial"),
    "gaussian, variance=feature": dict(likelihood="gaussian", variance="feature"),
    "gaussian, variance=sample": dict(likelihood="gaussian", variance="sample"),
    "bernoulli, conditional": dict(likelihood="bernoulli", n_conditions=10),
}


def digits_split(seed=0):
    """Pixel values 0..16 (counts) and labels, split 80/20 with a fixed permutation."""
    X, y = load_digits(return_y=True)
    counts = np.round(X * 16).astype(np.float32)
    perm = np.random.default_rng(seed).permutation(len(counts))
    n_test = len(counts) // 5
    return (counts[perm[n_test:]], y[perm[n_test:]]), (counts[perm[:n_test]], y[perm[:n_test]])


def data_for(kind, counts):
    return counts if KINDS[kind]["likelihood"] in ("poisson", "negative_binomial") else counts / 16


# ------------------------------------------------------------------ torch
def torch_model(kind, D, seed):
    """Parameters of the vaefast architecture as torch tensors named like
    VAE.get_weights(), drawn like nn.Linear's default (U(±1/√fan_in))."""
    import torch
    torch.manual_seed(seed)
    cfg = KINDS[kind]
    C = cfg.get("n_conditions", 0)
    out_w = 2 * D if cfg.get("variance") == "sample" else D

    def linear(n_in, n_out):
        lin = torch.nn.Linear(n_in, n_out)
        return lin.weight.detach().T.contiguous().requires_grad_(), lin.bias.detach().clone().requires_grad_()

    p = {}
    p["encoder.0.weight"], p["encoder.0.bias"] = linear(D + C, HIDDEN)
    p["head.weight"], p["head.bias"] = linear(HIDDEN, 2 * LATENT)
    p["decoder.0.weight"], p["decoder.0.bias"] = linear(LATENT + C, HIDDEN)
    p["output.weight"], p["output.bias"] = linear(HIDDEN, out_w)
    if cfg.get("variance") == "feature":
        p["likelihood.logvar"] = torch.zeros(D, requires_grad=True)
    if cfg["likelihood"] == "negative_binomial":
        p["likelihood.log_theta"] = torch.zeros(D, requires_grad=True)
    return p


def torch_neg_elbo(kind, p, x, c, eps):
    import torch
    dist = torch.distributions
    cfg = KINDS[kind]
    lik = cfg["likelihood"]
    counts = lik in ("poisson", "negative_binomial")
    D = x.shape[1]

    def cat(a):
        return a if c is None else torch.cat([a, c], dim=1)

    h = torch.relu(cat(torch.log1p(x) if counts else x) @ p["encoder.0.weight"] + p["encoder.0.bias"])
    head = h @ p["head.weight"] + p["head.bias"]
    mu, logvar = head[:, :LATENT], torch.clamp(head[:, LATENT:], -30, 30)
    z = mu + torch.exp(0.5 * logvar) * eps
    g = torch.relu(cat(z) @ p["decoder.0.weight"] + p["decoder.0.bias"])
    out = g @ p["output.weight"] + p["output.bias"]
    if lik == "poisson":
        logp = dist.Poisson(torch.exp(torch.clamp(out, max=30))).log_prob(x)
    elif lik == "negative_binomial":
        r = torch.clamp(p["likelihood.log_theta"], -20, 20)[None, :].expand_as(out)
        logp = dist.NegativeBinomial(total_count=torch.exp(r), logits=out - r).log_prob(x)
    elif lik == "bernoulli":
        logp = -torch.nn.functional.binary_cross_entropy_with_logits(out, x, reduction="none")
    else:
        lv = out[:, D:] if cfg["variance"] == "sample" else p["likelihood.logvar"][None, :]
        logp = dist.Normal(out[:, :D], torch.exp(0.5 * torch.clamp(lv, min=-10))).log_prob(x)
    kl = 0.5 * (torch.exp(logvar) + mu ** 2 - 1 - logvar).sum(1)
    return (-logp.sum(1) + kl).mean()


def train_torch(kind, X, C, seed, epochs):
    import torch
    p = torch_model(kind, X.shape[1], seed)
    opt = torch.optim.Adam(p.values(), lr=LR)
    gen = torch.Generator().manual_seed(seed)
    Xt = torch.tensor(X)
    Ct = None if C is None else torch.tensor(C)
    for _ in range(epochs):
        order = torch.randperm(len(X), generator=gen)
        for s in range(0, len(X), BATCH):
            idx = order[s:s + BATCH]
            eps = torch.randn(len(idx), LATENT, generator=gen)
            loss = torch_neg_elbo(kind, p, Xt[idx], None if Ct is None else Ct[idx], eps)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return p


def to_vaefast(kind, p, D):
    """The torch weights in a vaefast.VAE (same layout, head split into mu/logvar)."""
    m = vaefast.VAE(D, hidden=(HIDDEN,), latent_dim=LATENT, **KINDS[kind])
    w = {k: v.detach().numpy().astype(np.float32) for k, v in p.items() if not k.startswith("head")}
    W, b = p["head.weight"].detach().numpy(), p["head.bias"].detach().numpy()
    w["mu.weight"], w["logvar.weight"] = W[:, :LATENT], W[:, LATENT:]
    w["mu.bias"], w["logvar.bias"] = b[:LATENT], b[LATENT:]
    if KINDS[kind].get("variance") == "sample":
        w["output_logvar.weight"] = w["output.weight"][:, D:]
        w["output_logvar.bias"] = w["output.bias"][D:]
        w["output.weight"], w["output.bias"] = w["output.weight"][:, :D], w["output.bias"][:D]
    m.set_weights(w)
    return m


# --------------------------------------------------------------- evaluate
def score(m, X, C):
    nelbo = float(np.mean([-m.elbo(X, seed=k, c=C).mean() for k in range(4)]))
    nll = float(-m.log_likelihood(X, n_samples=100, seed=0, c=C).mean())
    return nelbo, nll


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default=None, help="write the raw results as JSON")
    args = ap.parse_args()
    import torch
    torch.set_num_threads(1)
    vaefast.set_num_threads(1)
    (Xtr_c, ytr), (Xte_c, yte) = digits_split()
    results = {}
    for kind, cfg in KINDS.items():
        Xtr, Xte = data_for(kind, Xtr_c), data_for(kind, Xte_c)
        Ctr = np.eye(10, dtype=np.float32)[ytr] if cfg.get("n_conditions") else None
        Cte = np.eye(10, dtype=np.float32)[yte] if cfg.get("n_conditions") else None
        rows = {"vaefast": [], "torch": [], "seconds": {"vaefast": 0.0, "torch": 0.0}}
        for seed in range(args.seeds):
            t = time.perf_counter()
            m = vaefast.VAE(Xtr.shape[1], hidden=(HIDDEN,), latent_dim=LATENT, seed=seed, **cfg)
            m.fit(Xtr, c=Ctr, epochs=args.epochs, batch_size=BATCH, learning_rate=LR,
                  progress=False)
            rows["seconds"]["vaefast"] += time.perf_counter() - t
            rows["vaefast"].append(score(m, Xte, Cte))
            t = time.perf_counter()
            p = train_torch(kind, Xtr, Ctr, seed, args.epochs)
            rows["seconds"]["torch"] += time.perf_counter() - t
            rows["torch"].append(score(to_vaefast(kind, p, Xtr.shape[1]), Xte, Cte))
        results[kind] = rows
        print(kind, json.dumps(rows), flush=True)
    print()
    print("| model | vaefast −ELBO | torch −ELBO | Δ | vaefast −IWAE-100 | torch −IWAE-100 | Δ |")
    print("|---|---|---|---|---|---|---|")
    for kind, rows in results.items():
        v, t = np.array(rows["vaefast"]), np.array(rows["torch"])

        def ms(a):
            sd = a.std(ddof=1) / math.sqrt(len(a)) if len(a) > 1 else float("nan")
            return f"{a.mean():.2f} ± {sd:.2f}"

        print(f"| {kind} | {ms(v[:, 0])} | {ms(t[:, 0])} | {v[:, 0].mean() - t[:, 0].mean():+.2f} "
              f"| {ms(v[:, 1])} | {ms(t[:, 1])} | {v[:, 1].mean() - t[:, 1].mean():+.2f} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
