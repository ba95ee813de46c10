"""vaefast beside PyTorch: two OpenMP runtimes in one process.

The manylinux wheel carries its own libgomp (grafted by auditwheel, under a
hashed name), as PyTorch's wheel carries its own; both are then loaded. Each
order of import must work, both libraries must run their thread teams, and a
child forked after both teams ran must work too (a child that hangs on an
inherited team fails by timeout). vaefast's results are compared with the
same computation in a process that never loaded PyTorch (bit for bit), and
PyTorch's with NumPy in float64.

PyTorch itself cannot use its OpenMP team in a forked child (GNU libgomp's
team is not rebuilt after fork: the child hangs in MKL's sgemm, seen here
with torch 2.13 whichever library loads first); so the child runs PyTorch
on one thread, as PyTorch advises, and vaefast on two.
"""

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")

SCENARIO = r"""
import os, sys
import numpy as np
import importlib
order, out = sys.argv[1], sys.argv[2]
for name in order.split(","):  # "torch,vaefast": torch first; "vaefast": alone
    importlib.import_module(name)
vaefast = sys.modules.get("vaefast")
torch = sys.modules.get("torch")


def work(torch_threads):
    X = np.random.default_rng(0).random((512, 64), dtype=np.float32)
    got = {}
    if vaefast is not None:
        vaefast.set_num_threads(2)
        m = vaefast.VAE(64, hidden=(64,), latent_dim=4, seed=0)
        m.fit(X, epochs=1, batch_size=256, progress=False)
        got["vaefast"] = m.transform(X)
    if torch is not None:
        torch.set_num_threads(torch_threads)
        a = torch.from_numpy(X)
        got["torch"] = torch.relu(a @ a.T).sum(dim=0).numpy()
    return got


parent = work(2)  # both thread teams have run
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    child = work(1)
    same = all(np.array_equal(parent[k], child[k]) if k == "vaefast" else
               np.allclose(parent[k], child[k], rtol=1e-5) for k in parent)
    os.write(w, b"same" if same else b"different")
    os._exit(0)
os.close(w)
_, status = os.waitpid(pid, 0)
verdict = os.read(r, 64).decode()
np.savez(out, **parent)
print(f"child exit {os.waitstatus_to_exitcode(status)}: {verdict}")
"""


def _run(order, tmp_path):
    out = tmp_path / f"{order}.npz"
    proc = subprocess.run([sys.executable, "-c", SCENARIO, order, str(out)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "child exit 0: same", proc.stdout + proc.stderr[-2000:]
    with np.load(out) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("order", ["torch,vaefast", "vaefast,torch"])
def test_both_runtimes_in_one_process(order, tmp_path):
    alone = _run("vaefast", tmp_path)
    together = _run(order, tmp_path)
    assert sorted(together) == ["torch", "vaefast"]
    # vaefast is bit-identical whatever its threads and neighbours.
    np.testing.assert_array_equal(together["vaefast"], alone["vaefast"])
    # PyTorch's float32 product, summed over 512 rows, against float64:
    # each entry is a sum of 512*64 positive products, relative error well
    # under 512 * 2**-24 ~ 3e-5.
    X = np.random.default_rng(0).random((512, 64), dtype=np.float32).astype(np.float64)
    np.testing.assert_allclose(together["torch"], np.maximum(X @ X.T, 0).sum(axis=0),
                               rtol=3e-5)
