"""One multiprocessing scenario of tests/test_fork.py, run as a script:

    python mp_scenario.py METHOD PARENT_THREADS OUT.npz

The parent trains and encodes with PARENT_THREADS threads (2: libgomp's pool
is started, which is what used to hang a forked child), then, with the start
method METHOD:

  - Pool.map(model.encode, chunks), children set to 2 threads (the model
    is pickled),
  - a child of that Pool trains one more epoch (weights returned),
  - a Process that encodes with the model it inherits (fork) or receives
    (spawn, forkserver), set to 1 and then 2 threads, on its main thread
    and on a thread it starts.

Every child result must come back within CHILD_TIMEOUT seconds; a hang is
an exit status of 3. OUT.npz gets, for every case, the parent's result
("<case>/expected") and the child's ("<case>/got").
"""

import multiprocessing as mp
import sys
import threading

import numpy as np

import vaefast

CHILD_TIMEOUT = 9.0  # seconds per child result
TRAIN = dict(epochs=1, batch_size=128, learning_rate=1e-3)


def set_threads(n):
    vaefast.set_num_threads(n)


def train_copy(model, X):
    """Train `model` one epoch; its parameters (flat float32)."""
    model.fit(X, **TRAIN)
    return model._core.get_buffer(0)


def encode_here_and_on_a_thread(model, X, queue):
    """With 1 and then 2 threads: encode on this (main) thread, then on a
    thread started here (which gets a fresh OpenMP pool after fork)."""
    for n_threads in (1, 2):
        vaefast.set_num_threads(n_threads)
        box = [model.encode(X)[0]]
        t = threading.Thread(target=lambda: box.append(model.encode(X)[0]))
        t.start()
        t.join()
        queue.put(box)


def run_children(ctx, model, X, out):
    chunks = np.array_split(X, 4)
    with ctx.Pool(2, initializer=set_threads, initargs=(2,)) as pool:
        mus = pool.map_async(model.encode, chunks).get(CHILD_TIMEOUT)
        out["encode_pool/got"] = np.concatenate([mu for mu, _ in mus])
        out["train_pool/got"] = pool.apply_async(train_copy, (model, X)).get(CHILD_TIMEOUT)
    queue = ctx.Queue()
    p = ctx.Process(target=encode_here_and_on_a_thread, args=(model, X, queue))
    p.start()
    try:
        for n_threads in (1, 2):
            main, threaded = queue.get(timeout=CHILD_TIMEOUT)
            out[f"encode_process_{n_threads}/got"] = main
            out[f"encode_thread_{n_threads}/got"] = threaded
    finally:
        p.join(CHILD_TIMEOUT)
        if p.is_alive():
            p.kill()


def main(method, parent_threads, path):
    vaefast.set_num_threads(parent_threads)
    rng = np.random.default_rng(7)
    X = rng.random((2048, 64), dtype=np.float32)
    model = vaefast.VAE(64, hidden=(256,), latent_dim=8, seed=3)
    model.fit(X, **TRAIN)
    expected_mu = model.encode(X)[0]
    out = {}
    try:
        run_children(mp.get_context(method), model, X, out)
    except Exception as exc:  # a timeout is a hang
        print(f"child failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 3
    for case in ("encode_pool", "encode_process_1", "encode_thread_1", "encode_process_2",
                 "encode_thread_2"):
        out[f"{case}/expected"] = expected_mu
    # the parent's own next epoch, after a child trained its copy
    out["train_pool/expected"] = train_copy(model, X)
    np.savez(path, **out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
