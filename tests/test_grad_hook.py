"""The per-layer grad hook of VAECore.shard_grads (csrc/vae_grad_hook.c), on
which the overlapped MPI exchange rests (vaefast/training/overlap.py): when
the hook reports layer l, the gradient of layers l.. must already hold its
final bits, since an Iallreduce starts on it at once."""

import numpy as np
import pytest

import vaefast
from vaefast.training.overlap import bucket_plan

CONFIGS = [
    dict(n_features=24, hidden=(16, 12), latent_dim=4, seed=1),
    # a tail after the layers: per-feature variances and layer-norm parameters
    dict(n_features=24, hidden=(16,), latent_dim=4, seed=2, likelihood="gaussian",
         variance="feature", use_layer_norm="both", dropout_rate=0.1),
]


def _batch(n=10, d=24):
    return np.random.default_rng(0).random((n, d), dtype=np.float32)


@pytest.mark.parametrize("config", CONFIGS)
def test_each_reported_layer_already_holds_its_final_gradient(config):
    core = vaefast.VAE(**config)._core
    grads, sums = core.grads_array(), np.zeros(3)
    X = _batch()
    spans = [core.layer_info(l) for l in range(core.n_layers)]
    seen, snapshots = [], []

    def on_layer(l):
        w, b, out = spans[l][2], spans[l][3], spans[l][1]
        seen.append(l)
        snapshots.append(grads[w:b + out].copy())
        grads[w:b + out] = np.nan  # overwritten later would mean "not final"

    assert core.shard_grads(X, 5, 3, 2, 20, 1.0, sums, 0, on_layer) == 0
    hooked = grads.copy()
    assert seen == list(range(core.n_layers))[::-1]  # last layer first, each once
    assert core.shard_grads(X, 5, 3, 2, 20, 1.0, sums) == 0  # the same step, no hook
    plain = grads.copy()
    for l, snap in zip(seen, snapshots):
        w, b, out = spans[l][2], spans[l][3], spans[l][1]
        np.testing.assert_array_equal(snap, plain[w:b + out])
        # nothing after the report wrote into the layer's slice (still NaN)
        assert np.isnan(hooked[w:b + out]).all()
    end = spans[-1][3] + spans[-1][1]
    np.testing.assert_array_equal(hooked[end:], plain[end:])  # the tail, at return
    assert (core.num_params > end) == ("variance" in config)


def test_an_exception_in_the_hook_is_raised_after_the_call_and_the_hook_removed():
    core = vaefast.VAE(**CONFIGS[0])._core
    calls = []

    def failing(l):
        calls.append(l)
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        core.shard_grads(_batch(), 5, 0, 0, 10, 1.0, np.zeros(3), 0, failing)
    assert calls == [core.n_layers - 1]  # later layers were not reported to it
    # the hook is gone: training calls run without it
    core.shard_grads(_batch(), 5, 0, 0, 10, 1.0, np.zeros(3))
    assert calls == [core.n_layers - 1]


def test_bucket_plan_tiles_the_buffer_whole_layers_last_first():
    core = vaefast.VAE(**CONFIGS[1])._core
    spans = [core.layer_info(l) for l in range(core.n_layers)]
    for floats in (1, 300, 10**9):
        plan = bucket_plan(core, floats)
        assert plan[-1] == (-1, spans[-1][3] + spans[-1][1], core.num_params)
        layers = plan[:-1]
        assert layers[0][2] == plan[-1][1] and layers[-1][1] == 0
        assert all(a[1] == b[2] for a, b in zip(layers, layers[1:]))  # contiguous
        assert all(lo == spans[first][2] for first, lo, _ in layers)  # whole layers
        assert all(hi - lo >= floats for _, lo, hi in layers[:-1])  # at least the size
    assert len(bucket_plan(core, 1)) == core.n_layers + 1
    assert len(bucket_plan(core, 10**9)) == 2
    with pytest.raises(ValueError, match="bucket_floats"):
        bucket_plan(core, 0)
