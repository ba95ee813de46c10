"""The covariate layers of the twin against scvi-tools' own FCLayers.

scvi-tools is never a dependency: it lives in its own environment (the
bench extra; VAEFAST_SCVI_PYTHON, default /work/venv-scvi/bin/python) and
runs in a subprocess that writes its weights, outputs and autograd
gradients to a file. scVI joins one-hot blocks to a layer's input; the twin
adds the gathered rows of the matching block of the weight (csrc/covariates.c
does the same in float32): forward values and every gradient (the x part of
W, the one-hot part = the table T, b) must agree.

Bound: scvi-tools runs in float32 (its weights and inputs are exactly
representable in float64); per layer each output sums at most n = in + K + 1
terms, so |torch − twin| <= L·n·u·M, u = 2**-24, with M the same network
run on absolute values (the terms' magnitudes) and L layers of propagation;
a factor 4 covers the backward's extra products.
"""

import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

from vaefast.reference.covariate_model import _backward_side, _forward_side

SCVI_PYTHON = os.environ.get("VAEFAST_SCVI_PYTHON", "/work/venv-scvi/bin/python")
U = 2.0**-24

SCRIPT = r"""
import json, sys
import numpy as np, torch
from scvi.nn import FCLayers
cfg = json.loads(sys.argv[1])
torch.manual_seed(0)
net = FCLayers(n_in=cfg["n_in"], n_out=cfg["n_out"], n_cat_list=cfg["levels"],
               n_layers=cfg["n_layers"], n_hidden=cfg["n_hidden"], dropout_rate=0.0,
               use_batch_norm=False, use_layer_norm=False,
               inject_covariates=cfg["deep"])
rng = np.random.default_rng(1)
x = torch.tensor(rng.standard_normal((cfg["B"], cfg["n_in"])), dtype=torch.float32)
codes = [rng.integers(0, n, (cfg["B"], 1)) for n in cfg["levels"]]
G = torch.tensor(rng.standard_normal((cfg["B"], cfg["n_out"])), dtype=torch.float32)
y = net(x, *[torch.tensor(c) for c in codes])
(y * G).sum().backward()
out = {"x": x.numpy(), "codes": np.concatenate(codes, 1), "G": G.numpy(),
       "y": y.detach().numpy()}
for i, seq in enumerate(net.fc_layers):
    lin = seq[0]
    out[f"W{i}"] = lin.weight.detach().numpy().T
    out[f"b{i}"] = lin.bias.detach().numpy()
    out[f"dW{i}"] = lin.weight.grad.numpy().T
    out[f"db{i}"] = lin.bias.grad.numpy()
np.savez(cfg["path"], **out)
"""


@pytest.mark.skipif(not pathlib.Path(SCVI_PYTHON).exists(), reason="no scvi-tools environment")
@pytest.mark.parametrize("deep", [True, False])
def test_twin_layers_match_scvi_fclayers(tmp_path, deep):
    levels = [2, 3, 4]
    cfg = dict(n_in=5, n_out=4, levels=levels, n_layers=3, n_hidden=6, deep=deep, B=9,
               path=str(tmp_path / "scvi.npz"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["OMP_NUM_THREADS"] = "1"
    res = subprocess.run([SCVI_PYTHON, "-c", SCRIPT, json.dumps(cfg)], capture_output=True,
                         text=True, timeout=600, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    f = np.load(cfg["path"])
    n_in = [5, 6, 6]
    layers, gets = [], []
    for i in range(3):
        W = f[f"W{i}"].astype(np.float64)
        L = {"W": W[:n_in[i]], "b": f[f"b{i}"].astype(np.float64)}
        gets.append(W.shape[0] > n_in[i])
        if gets[-1]:
            L["T"] = W[n_in[i]:]  # scVI's one-hot blocks, covariates in order
        layers.append(L)
    assert gets == [True, deep, deep]  # FCLayers.inject_into_layer
    # FCLayers puts a ReLU after every layer: the twin's side has none after
    # its last, so an identity layer closes it
    ident = {"W": np.eye(4), "b": np.zeros(4)}
    codes = f["codes"]
    x = f["x"].astype(np.float64)
    acts = _forward_side(layers + [ident], x, codes, tuple(levels))
    mag = _forward_side([{k: np.abs(v) for k, v in L.items()} for L in layers] + [ident],
                        np.abs(x), codes, tuple(levels))
    bound = 3 * (6 + 3 + 1) * U * mag[-2]
    assert np.all(np.abs(acts[-2] - f["y"]) <= bound)
    grads, _ = _backward_side(layers + [ident], acts, f["G"].astype(np.float64), codes,
                              tuple(levels))
    # the magnitudes of the backward's terms: the same pass on absolute
    # values, every ReLU open (an upper bound of each sum of |terms|)
    absl = [{k: np.abs(v) for k, v in L.items()} for L in layers] + [ident]
    gmag, _ = _backward_side(absl, mag, np.abs(f["G"]).astype(np.float64), codes,
                             tuple(levels))
    n_max = 9 + 6 + 3 + 1  # rows B, widths, covariates: the longest sum
    for i in range(3):
        def both(g):
            return np.concatenate([g[i]["W"]] + ([g[i]["T"]] if gets[i] else []), axis=0)
        tol = 4 * 3 * n_max * U * both(gmag)
        assert np.all(np.abs(both(grads) - f[f"dW{i}"]) <= tol), f"layer {i} W|T"
        assert np.all(np.abs(grads[i]["b"] - f[f"db{i}"]) <= 4 * 3 * n_max * U * gmag[i]["b"])
