"""Data-parallel training over MPI: tests/mpi_worker.py under ``mpiexec -n 2``.

The launcher is MPICH's hydra from the same environment as mpi4py, bound to
the loopback interface (``-launcher fork -iface lo``) and killed by a timeout,
so a hang fails the test instead of blocking the suite. The oracle is a
one-process run of this same library on the concatenated global minibatches.
"""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import vaefast
from vaefast.ops import reparameterization_noise

pytest.importorskip("mpi4py")
pytest.importorskip("sklearn")

sys.path.insert(0, os.path.dirname(__file__))
import mpi_worker as W  # noqa: E402

WORKER = os.path.join(os.path.dirname(__file__), "mpi_worker.py")
TIMEOUT = 300  # seconds; every scenario takes a few seconds


def _mpiexec():
    for candidate in (os.path.join(sys.prefix, "bin", "mpiexec"), shutil.which("mpiexec")):
        if candidate and os.path.exists(candidate):
            return candidate
    pytest.skip("mpiexec (pip install mpich) not found")


def run_ranks(scenario, tmp_path, n=2):
    """Run the worker's `scenario` on n ranks; return each rank's npz."""
    launch([WORKER, scenario, str(tmp_path)], n)
    return [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(n)]


def launch(args, n=2):
    """mpiexec -n n python ARGS on loopback, with a timeout."""
    mpiexec = _mpiexec()
    env = dict(os.environ)
    # mpi4py finds the pip-installed libmpi beside mpiexec's environment
    lib = os.path.join(os.path.dirname(os.path.dirname(mpiexec)), "lib")
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (lib, env.get("LD_LIBRARY_PATH")) if p)
    cmd = [mpiexec, "-n", str(n), "-launcher", "fork", "-iface", "lo",
           sys.executable, *args]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"mpiexec {args} did not finish in {TIMEOUT} s (a rank hangs)")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def shards():
    X = W.digits()
    return [X[r * W.SHARD:(r + 1) * W.SHARD] for r in range(2)]


def global_minibatches(epoch, shuffle):
    """The one-process data: step s's minibatch is rank 0's rows of step s,
    then rank 1's (each rank's own order: default_rng([seed, epoch, rank]))."""
    parts, b = shards(), W.GLOBAL_BATCH // 2
    orders = [np.random.default_rng([W.CONFIG["seed"], epoch, r]).permutation(W.SHARD)
              if shuffle else np.arange(W.SHARD) for r in range(2)]
    return np.concatenate([parts[r][orders[r][s:s + b]]
                           for s in range(0, W.SHARD, b) for r in range(2)])


def one_process(shuffle, epochs=2):
    """The one-process oracle: (model, per-epoch losses)."""
    model, losses = vaefast.VAE(**W.CONFIG), []
    for e in range(epochs):
        losses += model.fit(global_minibatches(e, shuffle), epochs=1,
                            batch_size=W.GLOBAL_BATCH, shuffle=False,
                            progress=False).history["loss"]
    return model, losses


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Each training scenario run once for the module: {scenario: ranks}."""
    cache = {}

    def get(scenario):
        if scenario not in cache:
            cache[scenario] = run_ranks(scenario, tmp_path_factory.mktemp(scenario))
        return cache[scenario]

    return get


@pytest.mark.parametrize("scenario", ["train", "train_noshuffle"])
def test_two_ranks_equal_one_process_on_the_global_minibatch(scenario, runs):
    ranks = runs(scenario)
    # every rank holds bit-identical weights, and runs one thread
    np.testing.assert_array_equal(ranks[0]["params"], ranks[1]["params"])
    assert int(ranks[0]["threads"]) == 1

    # Step 0's Allreduced gradient vs one process on the concatenated batch.
    # Each gradient entry is a sum over the B rows of per-row terms t_i; one
    # process sums them in one order, two ranks in two halves then add, and
    # any float32 order is within gamma_B * sum|t_i| of the exact sum
    # (gamma_B = B*u/(1 - B*u), u = 2^-24). sum|t_i| is measured from the
    # per-row gradients (each one C call on a single row with its own eps).
    model = vaefast.VAE(**W.CONFIG)
    b = W.GLOBAL_BATCH // 2
    batch = np.concatenate([s[:b] for s in shards()])
    model.loss_and_grad(batch)
    one = model._core.get_buffer(1).astype(np.float64)
    eps = reparameterization_noise(model.seed, 0, (len(batch), model.latent_dim))
    abs_terms = np.zeros_like(one)
    for i in range(len(batch)):
        model.loss_and_grad(batch[i:i + 1], eps=eps[i:i + 1])
        abs_terms += np.abs(model._core.get_buffer(1).astype(np.float64)) / len(batch)
    B, u = W.GLOBAL_BATCH, 2.0 ** -24
    gamma = B * u / (1 - B * u)
    bound = 2 * gamma * abs_terms + 2 * u * np.abs(one)  # both orders, plus the 1/B scaling
    err = np.abs(ranks[0]["grad0"] - one)
    assert np.all(err <= bound), f"worst excess {np.max(err - bound)}"

    # After 2 epochs (20 Adam steps): the summation-order differences are
    # amplified at most mildly by Adam; allow 0.1% of a step per step, the
    # convention of test_model's optimizer checks.
    ref, losses = one_process(scenario == "train")
    assert ref.step_ == 20
    lr = 1e-3
    np.testing.assert_allclose(ranks[0]["params"], ref._core.get_buffer(0), rtol=0,
                               atol=1e-3 * lr * ref.step_)
    # the loss history is the global mean over both shards
    np.testing.assert_allclose(ranks[0]["loss"], losses, rtol=1e-5)


def test_rank0_checkpoint_resumes_bit_identically(tmp_path, runs):
    resumed = run_ranks("resume", tmp_path)
    assert (tmp_path / "ckpt.vae").exists()
    straight = runs("train")
    np.testing.assert_array_equal(resumed[0]["params"], resumed[1]["params"])
    np.testing.assert_array_equal(resumed[0]["params"], straight[0]["params"])


@pytest.mark.parametrize("scenario,step,message", [
    ("nan_shard", 0, "X contains NaN or infinity"),  # the shared-memory exchange
    ("nan_shard_allreduce", 0, "X contains NaN or infinity"),
    ("fail_midway", 3, "injected failure at step 3"),
    # inside the C backward, after the last layer's bucket started its Iallreduce
    ("fail_in_backward", 2, "injected failure in the backward of step 2"),
])
def test_a_failing_rank_stops_every_rank_with_a_clear_error(scenario, step, message, tmp_path):
    ranks = run_ranks(scenario, tmp_path)
    # the failing rank raises its own error; the other names it
    assert message in str(ranks[1]["error"]) and not ranks[1]["distributed"]
    assert ranks[0]["distributed"]
    assert "rank 1 failed" in str(ranks[0]["error"]) and message in str(ranks[0]["error"])
    # no step was applied past the failure on either rank
    assert int(ranks[0]["step"]) == int(ranks[1]["step"]) == step


def test_overlapped_exchange_is_bit_identical_to_one_blocking_allreduce(tmp_path):
    # the overlapped exchange (training/overlap.py), one bucket per layer and
    # one for the tail (likelihood variances, layer-norm gains and shifts),
    # against VAEFAST_MPI_OVERLAP=0 (one Allreduce after the backward): with
    # two ranks each element is one float32 addition either way, so the
    # weights after 20 steps must agree bit for bit
    from vaefast.training.overlap import bucket_plan

    ranks = run_ranks("overlap", tmp_path)
    model = vaefast.VAE(**W.OVERLAP_CONFIG)
    n_layers = model._core.n_layers
    buckets = ranks[0]["buckets"]
    np.testing.assert_array_equal(buckets, bucket_plan(model._core, 1))
    assert len(buckets) == n_layers + 1 and buckets[-1][0] == -1  # layers, then the tail
    # the buckets tile the buffer, last layer first, the tail last
    assert buckets[-1][2] == model._core.num_params and buckets[-2][1] == 0
    assert all(a[1] == b[2] for a, b in zip(buckets[:-2], buckets[1:-1]))
    # the C backward reported every layer, last to first, on every step
    hooks = ranks[0]["hooks"]
    assert len(hooks) == 20 * n_layers
    np.testing.assert_array_equal(hooks[:n_layers], np.arange(n_layers)[::-1])
    start = model._core.get_buffer(0)
    for r in ranks:
        assert not np.array_equal(r["params_1"], start)  # it trained
        np.testing.assert_array_equal(r["params_1"], r["params_0"])
    np.testing.assert_array_equal(ranks[0]["params_1"], ranks[1]["params_1"])


def test_shared_memory_exchange_is_bit_identical_to_the_allreduce(tmp_path):
    # On one machine fit exchanges through a shared-memory window and each
    # rank updates one slice (training/shm_exchange.py); VAEFAST_MPI_SHM=0
    # forces one blocking Allreduce and the whole update on every rank. With
    # two ranks each summed element is one float32 addition either way and
    # the optimizer is element-wise, so after 2 epochs (20 steps) the weights
    # and both moment buffers agree bit for bit (so the slices' moments were
    # gathered onto every rank at each epoch's end). The backward pass wrote
    # into the window's slot, and the model has its own buffer back after.
    ranks = run_ranks("shm", tmp_path)
    for name in ("adam", "sgd"):
        config = W.OVERLAP_CONFIG if name == "adam" else W.CONFIG
        start = vaefast.VAE(**config)._core.get_buffer(0)
        for r in ranks:
            assert int(r[f"{name}_1_opened"]) == 2  # one window per epoch
            assert int(r[f"{name}_0_opened"]) == 0  # the fallback, when asked
            assert bool(r[f"{name}_1_own_grads"]) and bool(r[f"{name}_0_own_grads"])
            assert not np.array_equal(r[f"{name}_1_buf0"], start)  # it trained
            for which in (0, 2, 3):
                np.testing.assert_array_equal(r[f"{name}_1_buf{which}"],
                                              r[f"{name}_0_buf{which}"])
                np.testing.assert_array_equal(r[f"{name}_1_buf{which}"],
                                              ranks[0][f"{name}_1_buf{which}"])


def test_a_window_one_rank_cannot_map_falls_back_to_the_allreduce(tmp_path, runs):
    # the window is allocated (collectively), rank 1 fails to map it: every
    # rank frees it and trains through the Allreduce, the same bits as "train"
    ranks = run_ranks("shm_unmapped", tmp_path)
    for r in ranks:
        np.testing.assert_array_equal(r["params"], runs("train")[0]["params"])


def test_shared_memory_exchange_sums_in_rank_order_on_three_ranks(tmp_path):
    # three unequal slices, rank batches 22/21/21 and a last step where rank
    # 0's shard has run out: the weights and moments equal, bit for bit, a
    # by-hand loop that gathers every rank's gradient and sums them in rank
    # order in NumPy float32, then runs one whole-buffer Adam step
    from vaefast.training.shm_exchange import slices

    n = vaefast.VAE(**W.CONFIG)._core.num_params
    parts = slices(n, 3)
    assert parts[0][0] == 0 and parts[-1][1] == n
    assert all(a[1] == b[0] and a[1] % 16 == 0 for a, b in zip(parts, parts[1:]))
    ranks = run_ranks("shm_rank_order", tmp_path, n=3)
    for r in ranks:
        for which in (0, 2, 3):
            np.testing.assert_array_equal(r[f"fit{which}"], r[f"oracle{which}"])
            np.testing.assert_array_equal(r[f"fit{which}"], ranks[0][f"fit{which}"])


def test_ranks_starting_from_different_models_are_refused(tmp_path):
    ranks = run_ranks("different_models", tmp_path)
    for r in ranks:
        assert r["distributed"] and "different models" in str(r["error"])


@pytest.mark.parametrize("scenario,variable", [("different_overlap", "VAEFAST_MPI_OVERLAP"),
                                               ("different_shm", "VAEFAST_MPI_SHM")])
def test_ranks_with_different_exchanges_are_refused(scenario, variable, tmp_path):
    # overlapped, blocking and shared-memory exchanges would not match:
    # refused up front
    for r in run_ranks(scenario, tmp_path):
        assert r["distributed"] and f"{variable} differs" in str(r["error"])
        assert int(r["step"]) == 0


def test_ranks_with_different_fit_arguments_are_refused(tmp_path):
    for r in run_ranks("different_arguments", tmp_path):
        assert "fit arguments differ between ranks: ['epochs']" in str(r["error"])


def test_cli_train_distributed_equals_the_api(tmp_path, runs):
    # the CLI splits the file's rows in two contiguous shards, as the worker
    # does, so its model is the worker's "train" run, bit for bit
    data = tmp_path / "data.npy"
    np.save(data, W.digits()[:2 * W.SHARD])
    out = launch(["-m", "vaefast", "train", str(data), "--distributed", "--epochs", "2",
                  "--batch-size", str(W.GLOBAL_BATCH), "--hidden", "32", "--latent-dim", "8",
                  "--seed", str(W.CONFIG["seed"]), "--out", str(tmp_path / "model.vae")])
    assert out.count("wrote") == 1  # rank 0 alone reports and saves
    model = vaefast.VAE.load(tmp_path / "model.vae")
    api = runs("train")
    assert model.step_ == 20 and model.epoch_ == 2
    np.testing.assert_array_equal(model._core.get_buffer(0), api[0]["params"])
