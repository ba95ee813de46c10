"""One rank of tests/test_mpi_codes.py (under mpiexec -n 2): a data-parallel
fit of a model whose rows carry codes (categorical covariates and the
dispersion modes' θ table rows).

    python tests/mpi_codes_worker.py SCENARIO OUTDIR

Rank r trains on rows r*SHARD .. (r+1)*SHARD of the digits counts (tests/mpi_worker.py's
shards, the pixel intensities 0..16 as counts) with their codes, and writes
its parameters and loss history to OUTDIR/rank{r}.npz.
"""

import sys

import numpy as np

import vaefast
from mpi_worker import GLOBAL_BATCH, SHARD, digits

LEVELS = (3,)
N_LABELS = 4
MODELS = {  # scenario -> model kwargs
    "gene-batch": dict(dispersion="gene-batch"),
    "gene-label": dict(dispersion="gene-label", n_labels=N_LABELS),
}
CONFIG = dict(n_features=64, hidden=(32,), latent_dim=8, seed=3, likelihood="zinb",
              categorical_covariates=LEVELS)


def all_codes(scenario):
    """Codes of every row of the digits data: the batch (row mod 3), then for
    "gene-label" the label (the digit's class mod N_LABELS)."""
    from sklearn.datasets import load_digits

    n = len(digits())
    batch = np.arange(n) % LEVELS[0]
    if scenario != "gene-label":
        return batch[:, None]
    return np.stack([batch, load_digits().target % N_LABELS], axis=1)


def model(scenario):
    return vaefast.VAE(**CONFIG, **MODELS[scenario])


def counts():
    return np.rint(digits() * 16.0).astype(np.float32)


def main(scenario, outdir):
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    rows = slice(rank * SHARD, (rank + 1) * SHARD)
    m = model(scenario)
    hist = m.fit(counts()[rows], epochs=2, batch_size=GLOBAL_BATCH, shuffle=True, comm=comm,
                 codes=all_codes(scenario)[rows], progress=False)
    np.savez(f"{outdir}/rank{rank}.npz", params=m._core.get_buffer(0),
             loss=np.array(hist.history["loss"]))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
