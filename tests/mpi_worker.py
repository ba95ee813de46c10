"""One rank of the MPI tests (tests/test_mpi.py runs it under mpiexec -n 2).

    python tests/mpi_worker.py SCENARIO OUTDIR

Every rank trains on its shard of the digits data (rank r: rows
r*SHARD .. (r+1)*SHARD) and writes what it ends with to OUTDIR/rank{r}.npz;
the test compares that with a one-process run it does itself.
"""

import sys

import numpy as np

import vaefast
from vaefast.distributed import DistributedError

SHARD = 300        # rows per rank
GLOBAL_BATCH = 64  # split 32 + 32
CONFIG = dict(n_features=64, hidden=(32,), latent_dim=8, seed=3)
# the overlap scenario: 6 layers and a tail (per-feature variances, layer-norm parameters)
OVERLAP_CONFIG = dict(CONFIG, hidden=(32, 16), likelihood="gaussian", variance="feature",
                      use_layer_norm="both")


def digits():
    from sklearn.datasets import load_digits

    return (load_digits().data / 16.0).astype(np.float32)


def shard(comm):
    r = comm.Get_rank()
    return digits()[r * SHARD:(r + 1) * SHARD].copy()


def first_gradient(model, X, comm):
    """The Allreduced gradient of step 0 (not applied)."""
    from mpi4py import MPI

    core = model._core
    b = GLOBAL_BATCH // comm.Get_size()
    local = np.zeros(3)
    status = core.shard_grads(X[:b], model.seed, 0, comm.Get_rank() * b, GLOBAL_BATCH, 1.0,
                              local)
    vaefast._core.status_error(status, "shard_grads")
    grads = core.grads_array()
    comm.Allreduce(MPI.IN_PLACE, grads, op=MPI.SUM)
    return grads.copy()


class FailingCore:
    """Delegates to a VAECore but raises in shard_grads at a given step."""

    def __init__(self, core, fail_step):
        self._inner, self._fail_step = core, fail_step

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def shard_grads(self, X, seed, step, *args, **kw):
        if step == self._fail_step:
            raise RuntimeError(f"injected failure at step {step}")
        return self._inner.shard_grads(X, seed, step, *args, **kw)


class FailingInBackward(FailingCore):
    """Fails inside the C backward at a given step, after the last layer's
    bucket has started its Iallreduce (the grad hook raises at the next layer)."""

    def shard_grads(self, X, seed, step, *args, **kw):
        *args, on_layer = args
        if step == self._fail_step:
            calls = []

            def failing(layer):
                calls.append(layer)
                if len(calls) > 1:
                    raise RuntimeError(f"injected failure in the backward of step {step}")
                on_layer(layer)
            return self._inner.shard_grads(X, seed, step, *args, failing, **kw)
        return self._inner.shard_grads(X, seed, step, *args, on_layer, **kw)


def overlapped_and_blocking(X, comm):
    """The same fit with the exchange overlapped, one bucket per layer plus
    the tail (likelihood and layer-norm parameters), and with one blocking
    Allreduce (VAEFAST_MPI_OVERLAP=0): {params_*, buckets, hooks}."""
    import os

    from vaefast.training import overlap

    out, hooks = {}, []
    overlap.BUCKET_FLOATS = 1
    on_layer = overlap.BucketedAllreduce.on_layer
    overlap.BucketedAllreduce.on_layer = lambda self, l: (hooks.append(l), on_layer(self, l))
    for mode in ("1", "0"):
        os.environ["VAEFAST_MPI_OVERLAP"] = mode
        model = vaefast.VAE(**OVERLAP_CONFIG)
        model.fit(X, epochs=2, batch_size=GLOBAL_BATCH, comm=comm, progress=False)
        out[f"params_{mode}"] = model._core.get_buffer(0)
    out["buckets"] = np.array(overlap.bucket_plan(model._core))
    out["hooks"] = np.array(hooks)
    return out


def shared_and_allreduce(X, comm):
    """The same fits through the shared-memory window (VAEFAST_MPI_SHM=1) and
    through one blocking Allreduce (VAEFAST_MPI_SHM=0), for Adam on the
    6-layer model with a tail and SGD on the small one: the weights, both
    moment buffers and how many windows each opened."""
    import os

    from vaefast.training import data_parallel

    opened = []

    class Counting(data_parallel.SharedExchange):
        def __init__(self, *args):
            opened.append(1)
            super().__init__(*args)

    data_parallel.SharedExchange = Counting
    os.environ["VAEFAST_MPI_OVERLAP"] = "0"
    out = {}
    for name, config, optimizer in (("adam", OVERLAP_CONFIG, "adam"), ("sgd", CONFIG, "sgd")):
        for mode in ("1", "0"):
            os.environ["VAEFAST_MPI_SHM"] = mode
            del opened[:]
            model = vaefast.VAE(**config)
            grads = model._core.grads_array()
            model.fit(X, epochs=2, batch_size=GLOBAL_BATCH, comm=comm, progress=False,
                      optimizer=optimizer)
            # the window lent its slot to the backward pass: given back at close
            out[f"{name}_{mode}_own_grads"] = np.array(
                np.shares_memory(grads, model._core.grads_array()))
            for which in range(4):
                out[f"{name}_{mode}_buf{which}"] = model._core.get_buffer(which)
            out[f"{name}_{mode}_opened"] = np.array(len(opened))
    return out


def rank_order_oracle(X, comm):
    """fit(shuffle=False) one epoch by hand: each rank's shard gradient, all
    gathered, summed in rank order in NumPy float32, one whole-buffer Adam
    step on every rank: (params, moment1, moment2)."""
    from vaefast.distributed import rank_batch

    rank, size = comm.Get_rank(), comm.Get_size()
    model = vaefast.VAE(**CONFIG)
    core, local = model._core, np.zeros(3)
    rb = np.array([rank_batch(GLOBAL_BATCH, size, q) for q in range(size)])
    sizes = np.array(comm.allgather(len(X)))
    for s in range(int(np.max(-(-sizes // rb)))):
        counts = np.clip(sizes - s * rb, 0, rb)
        xb = X[s * rb[rank]:s * rb[rank] + counts[rank]]
        vaefast._core.status_error(core.shard_grads(
            xb, model.seed, s, int(counts[:rank].sum()), int(counts.sum()), 1.0, local),
            "shard_grads")
        parts = comm.allgather(core.get_buffer(1))
        total = parts[0].copy()
        for part in parts[1:]:
            total += part
        core.set_buffer(1, total)
        vaefast._core.status_error(core.apply_update(s, 1e-3, 0.9, 0.999, 1e-8, 0.0, "adam"),
                                   "apply_update")
    return [core.get_buffer(which) for which in (0, 2, 3)]


def main(scenario, outdir):
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    X = shard(comm)
    model = vaefast.VAE(**CONFIG)
    out = {}
    if scenario in ("train", "train_noshuffle"):
        out["grad0"] = first_gradient(model, X, comm)
        hist = model.fit(X, epochs=2, batch_size=GLOBAL_BATCH, shuffle=scenario == "train",
                         comm=comm, progress=False)
        out["params"] = model._core.get_buffer(0)
        out["loss"] = np.array(hist.history["loss"])
        out["threads"] = np.array(vaefast.get_num_threads())
    elif scenario == "resume":
        ckpt = f"{outdir}/ckpt.vae"
        model.fit(X, epochs=1, batch_size=GLOBAL_BATCH, comm=comm, checkpoint=ckpt,
                  progress=False)
        comm.Barrier()
        model = vaefast.VAE.load(ckpt)
        model.fit(X, epochs=1, batch_size=GLOBAL_BATCH, comm=comm, progress=False)
        out["params"] = model._core.get_buffer(0)
    elif scenario == "different_arguments":
        try:
            model.fit(X, epochs=1 + rank, batch_size=GLOBAL_BATCH, comm=comm, progress=False)
            out["error"] = np.array("")
        except DistributedError as exc:
            out["error"] = np.array(str(exc))
    elif scenario == "overlap":
        out.update(overlapped_and_blocking(X, comm))
    elif scenario == "shm":
        out.update(shared_and_allreduce(X, comm))
    elif scenario == "shm_unmapped":  # rank 1 cannot map the window: every rank falls back
        from vaefast.training import shm_exchange

        if rank == 1:
            def unmappable(self, n, params_at):
                raise OSError("injected: no view of the window")
            shm_exchange.SharedExchange._map = unmappable
        model.fit(X, epochs=2, batch_size=GLOBAL_BATCH, comm=comm, progress=False)
        out["params"] = model._core.get_buffer(0)
    elif scenario == "shm_rank_order":  # any number of ranks
        model.fit(X, epochs=1, batch_size=GLOBAL_BATCH, shuffle=False, comm=comm,
                  progress=False)
        for which, buf in zip((0, 2, 3), rank_order_oracle(X, comm)):
            out[f"fit{which}"] = model._core.get_buffer(which)
            out[f"oracle{which}"] = buf
    elif scenario in ("nan_shard", "fail_midway", "fail_in_backward", "different_models",
                      "different_overlap", "different_shm", "nan_shard_allreduce"):
        import os

        if scenario in ("different_overlap", "fail_in_backward"):
            # rank 0 overlaps and rank 1 blocks; both overlap for the failure
            os.environ["VAEFAST_MPI_OVERLAP"] = ("0" if scenario == "different_overlap"
                                                 and rank == 1 else "1")
        if scenario == "different_shm" and rank == 1:
            os.environ["VAEFAST_MPI_SHM"] = "0"  # rank 0 takes the window
        if scenario == "nan_shard_allreduce":
            os.environ["VAEFAST_MPI_SHM"] = "0"
        if scenario in ("nan_shard", "nan_shard_allreduce") and rank == 1:
            X[5, 7] = np.nan
        if scenario == "fail_midway" and rank == 1:
            model._core = FailingCore(model._core, fail_step=3)
        if scenario == "fail_in_backward":
            from vaefast.training import overlap

            overlap.BUCKET_FLOATS = 1  # every rank: one bucket per layer
            if rank == 1:
                model._core = FailingInBackward(model._core, fail_step=2)
        if scenario == "different_models" and rank == 1:
            model = vaefast.VAE(**{**CONFIG, "seed": 4})
        try:
            model.fit(X, epochs=1, batch_size=GLOBAL_BATCH, comm=comm, progress=False)
            out["error"] = np.array("")
        except Exception as exc:
            out["error"] = np.array(f"{type(exc).__name__}: {exc}")
            out["distributed"] = np.array(isinstance(exc, DistributedError))
        out["step"] = np.array(model.step_)
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
    np.savez(f"{outdir}/rank{rank}.npz", **out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
