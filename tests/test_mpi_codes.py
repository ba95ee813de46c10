"""Data-parallel training (fit(comm=...)) of models whose rows carry codes:
categorical covariates and the NB/ZINB dispersion modes whose θ is a table
row picked by a code ("gene-batch", "gene-label" with its side label
column). Each rank's codes go with its rows into vf_vae_shard_grads
(vaefast/training/data_parallel.py).

The oracle is tests/test_mpi.py's: one process of this library trained on
the global minibatches (rank 0's rows of a step, then rank 1's, each rank's
own order), here with their codes; the tolerances are that test's (Adam
steps after float32 sums in another order: 0.1 % of a step per step; the
loss history rtol 1e-5).
"""

import os
import sys

import numpy as np
import pytest

pytest.importorskip("mpi4py")
pytest.importorskip("sklearn")

sys.path.insert(0, os.path.dirname(__file__))
import mpi_codes_worker as CW  # noqa: E402
import mpi_worker as W  # noqa: E402
from test_mpi import launch  # noqa: E402

WORKER = os.path.join(os.path.dirname(__file__), "mpi_codes_worker.py")


def global_minibatches(values, epoch):
    """Rows of `values` (all the digits rows' X or codes) in the order one
    process must see them: step s is rank 0's minibatch of s, then rank 1's."""
    b = W.GLOBAL_BATCH // 2
    parts = [values[r * W.SHARD:(r + 1) * W.SHARD] for r in range(2)]
    orders = [np.random.default_rng([CW.CONFIG["seed"], epoch, r]).permutation(W.SHARD)
              for r in range(2)]
    return np.concatenate([parts[r][orders[r][s:s + b]]
                           for s in range(0, W.SHARD, b) for r in range(2)])


@pytest.mark.parametrize("scenario", list(CW.MODELS))
def test_two_ranks_with_codes_equal_one_process(scenario, tmp_path):
    launch([WORKER, scenario, str(tmp_path)])
    ranks = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(2)]
    np.testing.assert_array_equal(ranks[0]["params"], ranks[1]["params"])

    X, codes = CW.counts()[:2 * W.SHARD], CW.all_codes(scenario)[:2 * W.SHARD]
    ref, losses = CW.model(scenario), []
    for epoch in range(2):
        losses += ref.fit(global_minibatches(X, epoch), epochs=1, batch_size=W.GLOBAL_BATCH,
                          shuffle=False, codes=global_minibatches(codes, epoch),
                          progress=False).history["loss"]
    assert ref.step_ == 20
    lr = 1e-3
    np.testing.assert_allclose(ranks[0]["params"], ref._core.get_buffer(0), rtol=0,
                               atol=1e-3 * lr * ref.step_)
    np.testing.assert_allclose(ranks[0]["loss"], losses, rtol=1e-5)
    # the codes mattered: the same fit with every θ code moved ends elsewhere
    other = CW.model(scenario)
    moved = codes.copy()
    moved[:, -1] = (moved[:, -1] + 1) % (CW.N_LABELS if scenario == "gene-label"
                                         else CW.LEVELS[0])
    for epoch in range(2):
        other.fit(global_minibatches(X, epoch), epochs=1, batch_size=W.GLOBAL_BATCH,
                  shuffle=False, codes=global_minibatches(moved, epoch), progress=False)
    assert np.abs(other._core.get_buffer(0) - ranks[0]["params"]).max() > 1e-3 * lr * 20


def test_conditions_and_size_factors_are_still_refused_with_comm():
    import vaefast
    from mpi4py import MPI

    m = vaefast.VAE(8, hidden=(4,), latent_dim=2, likelihood="poisson")
    with pytest.raises(ValueError, match="size_factors= are not supported with comm="):
        m.fit(np.ones((4, 8), np.float32), epochs=1, batch_size=2, comm=MPI.COMM_SELF,
              size_factors=np.ones(4), progress=False)
