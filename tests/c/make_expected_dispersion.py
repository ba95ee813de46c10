"""Write tests/c/expected_dispersion.h: what tests/c/test_dispersion.c checks,
from the Python binding (vaefast.VAE over the same C core).

    python tests/c/make_expected_dispersion.py > tests/c/expected_dispersion.h

One ZINB model per dispersion mode ("gene-batch" on covariate 0,
"gene-label" with the labels as a side column, "gene-cell"), D-H-Z-H-D with
two categorical covariates injected in every decoder hidden layer. The
parameters, counts, codes and noise come from test_capi.c's integer hash
(all exact in float32), so the C program sets up exactly these inputs; the
values written are the binding's loss_and_grad (batch loss, every gradient)
and elbo (per row), float32 results printed exactly, computed with the
kernel set named in the header.
"""

import numpy as np

import vaefast
from vaefast import _core

# --- the problem, as test_dispersion.c sets it up (keep the two in step)
D, H, Z, B = 12, 16, 4, 8
LEVELS = (3, 2)
N_LABELS = 5
SALT = {"batch": 21, "label": 22, "cell": 23}
MODES = {"batch": dict(dispersion="gene-batch"),
         "label": dict(dispersion="gene-label", n_labels=N_LABELS),
         "cell": dict(dispersion="gene-cell")}


def hashed(i, salt):
    """test_capi.c's integer hash: (i·2654435761 + salt·40503) mod 2³², >> 8."""
    return (((i * 2654435761) + salt * 40503) & 0xFFFFFFFF) >> 8


def inputs():
    """Counts (column 0 >= 1: no empty cell), codes (B, 3): the two
    covariates then a label, and noise."""
    X = np.array([hashed(i, 8) % 5 + (i % D == 0) for i in range(B * D)], np.float32)
    levels = LEVELS + (N_LABELS,)
    codes = np.array([[hashed(3 * i + k, 10) % levels[k] for k in range(3)] for i in range(B)],
                     np.int32)
    eps = np.array([((hashed(i, 7) % 2049) - 1024) / 512.0 for i in range(B * Z)], np.float32)
    return X.reshape(B, D), codes, eps.reshape(B, Z)


def model(mode):
    m = vaefast.VAE(D, hidden=(H,), latent_dim=Z, likelihood="zinb", beta=1.0,
                    categorical_covariates=LEVELS, **MODES[mode])
    n = m.num_params()
    flat = np.array([((hashed(i, SALT[mode]) % 513) - 256) / 2048.0 for i in range(n)],
                    np.float32)
    m.set_weights(m._layout.named_from_flat(flat))
    return m


def main():
    X, codes, eps = inputs()
    out = {}
    for mode in MODES:
        m = model(mode)
        k = codes if mode == "label" else codes[:, :2]
        loss, _ = m.loss_and_grad(X, eps, codes=k)
        flat = m._core.get_buffer(_core.GRADS).copy()
        out[f"DISP_{mode.upper()}_N_PARAMS"] = m.num_params()
        out[f"DISP_{mode.upper()}_LOSS"] = np.array([loss])
        out[f"DISP_{mode.upper()}_GRADS"] = flat.astype(np.float64)
        out[f"DISP_{mode.upper()}_ELBO"] = m.elbo(X, eps=eps, codes=k)
    isa = _core.get_isa()
    print("/* expected_dispersion.h: written by tests/c/make_expected_dispersion.py")
    print(f" * (the Python binding, kernel set {isa}); do not edit. */")
    for name, v in out.items():
        if np.isscalar(v):
            print(f"#define {name} {v}")
            continue
        print(f"static const double {name}[{v.size}] = {{")
        for i in range(0, v.size, 4):
            print("    " + ", ".join(f"{x:.17g}" for x in v[i:i + 4]) + ",")
        print("};")


if __name__ == "__main__":
    main()
