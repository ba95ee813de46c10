"""The float64 twin's parameters (vaefast.reference.covariate_model) in a
VAECore's flat buffer and back, at the core's own offsets (layer_info,
cov_table, dispersion_info), for the tests that drive the core directly
(test_covariate_core.py, test_dispersion_core.py). tests/ is no package:
those modules put tests/ on sys.path and import it."""

import numpy as np


def layers_of(params):
    """The twin's layers in the core's order."""
    return [*params["encoder"], params["head"], *params["decoder"], params["output"]]


def theta_slot(core):
    """(offset, rows) of log θ in the core's buffer, rows 0 for a decoder head."""
    mode, _, off, rows = core.dispersion_info()
    if mode == "gene":  # the per-gene vector right after the output layer
        n_in, n_out, _, b = core.layer_info(core.n_layers - 1)
        return b + n_out, 1
    return off, rows


def f32(params):
    """The parameters rounded to float32 (what the core holds), as float64."""
    r = lambda a: a.astype(np.float32).astype(np.float64)  # noqa: E731
    return {k: ([{n: r(a) for n, a in L.items()} for L in v] if isinstance(v, list) else
                {n: r(a) for n, a in v.items()} if isinstance(v, dict) else r(v))
            for k, v in params.items()}


def to_flat(core, params):
    """The twin's parameters as the core's flat buffer."""
    flat = np.zeros(core.num_params, np.float32)
    for l, L in enumerate(layers_of(params)):
        n_in, n_out, w, b = core.layer_info(l)
        assert L["W"].shape == (n_in, n_out)
        flat[w:w + n_in * n_out] = L["W"].ravel()
        flat[b:b + n_out] = L["b"]
        off, rows = core.cov_table(l)
        assert (rows > 0) == ("T" in L), l
        if rows:
            flat[off:off + rows * n_out] = L["T"].ravel()
    off, rows = theta_slot(core)
    assert (rows > 0) == ("log_theta" in params)
    D = core.n_features
    if rows:
        assert params["log_theta"].shape == (rows, D)
        flat[off:off + rows * D] = params["log_theta"].ravel()
    return flat


def grads_like(core, flat, params):
    """The core's flat gradient in the twin's structure: (the layers' dicts,
    log θ's gradient or None for a decoder head)."""
    out = []
    for l, L in enumerate(layers_of(params)):
        n_in, n_out, w, b = core.layer_info(l)
        g = {"W": flat[w:w + n_in * n_out].reshape(n_in, n_out), "b": flat[b:b + n_out]}
        off, rows = core.cov_table(l)
        if rows:
            g["T"] = flat[off:off + rows * n_out].reshape(rows, n_out)
        out.append(g)
    off, rows = theta_slot(core)
    D = core.n_features
    return out, (flat[off:off + rows * D].reshape(rows, D) if rows else None)
