"""precision="bf16" in the model (issue 26): training and encode throughput,
vaefast bf16 vs vaefast fp32 vs PyTorch eager fp32 and PyTorch with
torch.autocast("cpu", bfloat16).

The 784-400-20 Bernoulli VAE of bench/bench_train.py (same data, same torch
twin), Adam. Every (framework, thread count) runs in a fresh process:

    python bench/bench_bf16_model.py [--threads 1 2] [--rounds 5] [--what encode]
                                     [--rows N]

Training: samples/s of one fit epoch at batch 32, 128 and 1024; encode: 8,192
rows. One thread is timed in CPU time of the calling thread (both frameworks
run their products on it), two in wall time; medians over rounds. The table
gives the ratios the issue's targets are stated in: bf16/fp32 and
vaefast bf16 / torch bf16 autocast. --rows N times every run on N rows
instead (a smoke run; bench/report.py's --quick). measure() returns the
records for bench/report.py.
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_train import D, H, Z, make_data, rows_for, torch_model  # noqa: E402
from timing import median_seconds  # noqa: E402

BATCHES = (32, 128, 1024)
ENCODE_ROWS = 8192


def vaefast_runs(threads, rows=None):
    import vaefast

    vaefast.set_num_threads(threads)
    runs = {}
    for precision in ("fp32", "bf16"):
        for batch in BATCHES:
            X = make_data(rows or rows_for(batch))
            m = vaefast.VAE(D, hidden=(H,), latent_dim=Z, seed=0)
            runs[("train", precision, batch)] = (
                X.shape[0], lambda m=m, X=X, b=batch, p=precision:
                m.fit(X, epochs=1, batch_size=b, progress=False, precision=p))
        m = vaefast.VAE(D, hidden=(H,), latent_dim=Z, seed=0)
        X = make_data(rows or ENCODE_ROWS)
        runs[("encode", precision, ENCODE_ROWS)] = (
            X.shape[0], lambda m=m, X=X, p=precision: m.encode(X, precision=p))
    return runs, "vaefast " + vaefast._core.bf16_auto_impl()


def torch_runs(threads, rows=None):
    import contextlib

    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    runs = {}
    # eager fp32, and the same code under bf16 autocast
    modes = {"fp32": contextlib.nullcontext,
             "bf16": lambda: torch.autocast("cpu", dtype=torch.bfloat16)}
    for precision, context in modes.items():
        for batch in BATCHES:
            net = torch_model()
            opt = torch.optim.Adam(net.parameters(), lr=1e-3)
            X = torch.from_numpy(make_data(rows or rows_for(batch)))

            def train(net=net, opt=opt, X=X, b=batch, context=context):
                order = torch.randperm(X.shape[0])
                for s in range(0, X.shape[0], b):
                    opt.zero_grad(set_to_none=True)
                    with context():
                        loss = net(X[order[s:s + b]])
                    loss.backward()
                    opt.step()

            runs[("train", precision, batch)] = (X.shape[0], train)
        net, X = torch_model(), torch.from_numpy(make_data(rows or ENCODE_ROWS))

        def encode(net=net, X=X, context=context):
            with torch.no_grad(), context():
                net.encode(X)

        runs[("encode", precision, ENCODE_ROWS)] = (X.shape[0], encode)
    return runs, f"torch {torch.__version__}"


def worker(framework, threads, rounds, what, rows=None):
    runs, label = (vaefast_runs if framework == "vaefast" else torch_runs)(threads, rows)
    clock = time.thread_time if threads == 1 else time.perf_counter
    for (kind, precision, batch), (n, fn) in runs.items():
        if kind not in what:
            continue
        med, _ = median_seconds(fn, rounds=rounds, clock=clock)
        print(json.dumps({"framework": framework, "label": label, "kind": kind,
                          "precision": precision, "batch": batch, "threads": threads,
                          "samples_per_s": n / med}), flush=True)


def measure(threads, rounds, what=("train", "encode"), frameworks=("vaefast", "torch"),
            rows=None):
    """Records of every framework's runs, each framework and thread count in
    a fresh process: ``{"framework", "label", "kind", "precision", "batch",
    "threads", "samples_per_s"}`` (batch: the encode's 8,192 for encode,
    whatever `rows` is). A framework that fails raises RuntimeError; one
    that is not installed is left out."""
    records = []
    for t in threads:
        for fw in frameworks:
            if fw == "torch" and importlib.util.find_spec("torch") is None:
                continue
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", fw, "--threads",
                   str(t), "--rounds", str(rounds), "--what", *what]
            out = subprocess.run(cmd + (["--rows", str(rows)] if rows else []),
                                 capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"{fw} at {t} threads failed:\n{out.stderr[-2000:]}")
            records += [json.loads(line) for line in out.stdout.splitlines()
                        if line.startswith("{")]
    return records


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--what", nargs="+", choices=["train", "encode"], default=["train", "encode"])
    ap.add_argument("--rows", type=int, default=None, help="rows of every run (a smoke run)")
    ap.add_argument("--worker", choices=["vaefast", "torch"])
    a = ap.parse_args()
    if a.worker:
        return worker(a.worker, a.threads[0], a.rounds, a.what, a.rows)
    rows = measure(a.threads, a.rounds, a.what, rows=a.rows)
    res = {(r["framework"], r["kind"], r["precision"], r["batch"], r["threads"]):
           r["samples_per_s"] for r in rows}
    labels = sorted({r["label"] for r in rows})
    print(f"# {', '.join(labels)}; load average {os.getloadavg()[0]:.1f}")
    print("| what | batch | threads | fp32 /s | bf16 /s | bf16/fp32 | torch fp32 /s | "
          "torch bf16 /s | bf16/torch bf16 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for t in a.threads:
        for kind, batch in [("train", b) for b in BATCHES] + [("encode", ENCODE_ROWS)]:
            if kind not in a.what:
                continue
            f32 = res.get(("vaefast", kind, "fp32", batch, t), np.nan)
            b16 = res.get(("vaefast", kind, "bf16", batch, t), np.nan)
            t32 = res.get(("torch", kind, "fp32", batch, t), np.nan)
            tb = res.get(("torch", kind, "bf16", batch, t), np.nan)
            print(f"| {kind} | {batch} | {t} | {f32:,.0f} | {b16:,.0f} | {b16 / f32:.2f} | "
                  f"{t32:,.0f} | {tb:,.0f} | {b16 / tb:.2f} |")


if __name__ == "__main__":
    main()
