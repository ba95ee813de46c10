"""PyTorch autograd as the oracle for the whole model, and the stored dump.

``torch_loss`` builds the vaefast architecture from torch ops (float64) and
returns the batch-mean negative ELBO and every gradient. Run this file to
regenerate tests/data/torch_reference.npz (inputs, weights, eps, loss and
gradients for two small models), which test_model_torch.py checks the core
against on every run, torch installed or not:

    python tests/torch_reference.py
"""

import json
from pathlib import Path

import numpy as np

DUMP = Path(__file__).with_name("data") / "torch_reference.npz"
# The models in the dump: small, but every layer kind and both likelihoods.
DUMP_MODELS = {
    "bernoulli_16": dict(n_features=20, hidden=(16,), latent_dim=4, likelihood="bernoulli",
                         beta=0.7, seed=2, decoder_hidden=None),
    "gaussian_16_8_12": dict(n_features=20, hidden=(16, 8), latent_dim=4,
                             likelihood="gaussian", beta=0.7, seed=3, decoder_hidden=(12,)),
}


def torch_loss(weights, X, eps, likelihood, beta, n_enc, n_dec):
    """Batch-mean negative ELBO of the vaefast architecture, built from torch ops."""
    import torch

    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in weights.items()}
    x = torch.tensor(X, dtype=torch.float64)
    h = x
    for i in range(n_enc):
        h = torch.relu(h @ t[f"encoder.{i}.weight"] + t[f"encoder.{i}.bias"])
    mu = h @ t["mu.weight"] + t["mu.bias"]
    logvar = torch.clamp(h @ t["logvar.weight"] + t["logvar.bias"], -30.0, 30.0)
    z = mu + torch.exp(0.5 * logvar) * torch.tensor(eps, dtype=torch.float64)
    g = z
    for i in range(n_dec):
        g = torch.relu(g @ t[f"decoder.{i}.weight"] + t[f"decoder.{i}.bias"])
    out = g @ t["output.weight"] + t["output.bias"]
    if likelihood == "bernoulli":
        recon = torch.nn.functional.binary_cross_entropy_with_logits(
            out, x, reduction="none").sum(1)
    else:
        recon = (0.5 * (out - x) ** 2 + 0.5 * np.log(2 * np.pi)).sum(1)
    kl = 0.5 * (torch.exp(logvar) + mu ** 2 - 1 - logvar).sum(1)
    loss = (recon + beta * kl).mean()
    loss.backward()
    return loss.item(), {k: v.grad.numpy() for k, v in t.items()}


def torch_loss_hidden(t, X, eps, hidden):
    """Batch-mean negative ELBO of a Bernoulli model from torch tensors t (the
    get_weights() keys, float64, requires_grad) with hidden(y, side, i) giving
    hidden layer i's output from its linear output y (norms, ReLU, dropout);
    backward() is run, so the gradients are in t[key].grad."""
    import torch

    def mlp(h, side):
        i = 0
        while f"{side}.{i}.weight" in t:
            h = hidden(h @ t[f"{side}.{i}.weight"] + t[f"{side}.{i}.bias"], side, i)
            i += 1
        return h

    h = mlp(torch.tensor(X, dtype=torch.float64), "encoder")
    mu = h @ t["mu.weight"] + t["mu.bias"]
    logvar = torch.clamp(h @ t["logvar.weight"] + t["logvar.bias"], -30.0, 30.0)
    out = mlp(mu + torch.exp(0.5 * logvar) * torch.tensor(eps), "decoder")
    out = out @ t["output.weight"] + t["output.bias"]
    recon = torch.nn.functional.binary_cross_entropy_with_logits(
        out, torch.tensor(X, dtype=torch.float64), reduction="none").sum(1)
    kl = 0.5 * (torch.exp(logvar) + mu ** 2 - 1 - logvar).sum(1)
    loss = (recon + kl).mean()
    loss.backward()
    return loss.item()


def dump_inputs(config, rows=11):
    """The data and noise of one dumped model (a pure function of its config)."""
    rng = np.random.default_rng(config["seed"])
    shape = (rows, config["n_features"])
    X = ((rng.random(shape) < 0.3).astype(np.float32) if config["likelihood"] == "bernoulli"
         else rng.standard_normal(shape).astype(np.float32))
    eps = rng.standard_normal((rows, config["latent_dim"])).astype(np.float32)
    return X, eps


def write_dump(path=DUMP):
    import vaefast

    arrays = {}
    for name, config in DUMP_MODELS.items():
        model = vaefast.VAE(**config)
        X, eps = dump_inputs(config)
        weights = model.get_weights()
        loss, grads = torch_loss(weights, X, eps, config["likelihood"], config["beta"],
                                 len(model.hidden), len(model.decoder_hidden))
        arrays[f"{name}/config"] = np.array(json.dumps(config))
        arrays[f"{name}/loss"] = np.array(loss)
        for k, v in weights.items():
            arrays[f"{name}/weight/{k}"] = v
        for k, v in grads.items():
            arrays[f"{name}/grad/{k}"] = v
    path.parent.mkdir(exist_ok=True)
    np.savez_compressed(path, **arrays)


if __name__ == "__main__":
    write_dump()
    print(f"wrote {DUMP} ({DUMP.stat().st_size} bytes)")
