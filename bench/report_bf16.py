"""The bf16 part of the benchmark page (bench/report.py): vaefast float32 and
bf16, PyTorch eager float32 and PyTorch under bf16 autocast, training at
each batch size and encode, with the targets of the bf16 issue.

Measured by bench_bf16_model.measure (each framework in a fresh process, one
thread: the issue states its targets on one thread and two; the page
follows the thread count of the run). The speed targets are about the bf16
instruction: where the route is the emulation (a CPU without AVX512_BF16 or
FEAT_BF16), the rows are timed on fewer rows and say so, and the targets
read "n/a".
"""

import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# Issue 26's targets: vaefast bf16 over vaefast fp32 (per batch, and encode)
# and over PyTorch's bf16 autocast (every batch).
VS_FP32 = {32: 1.3, 128: 1.6, 1024: 1.6, "encode": 1.6}
VS_AUTOCAST = 1.5
EMULATED_ROWS = 2048  # rows per run where bf16 is emulated (about 4 s a run)


def _bench_bf16_model():
    if "bench_bf16_model" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "bench_bf16_model", os.path.join(HERE, "bench_bf16_model.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_bf16_model"] = module
        spec.loader.exec_module(module)
    return sys.modules["bench_bf16_model"]


def measure(threads, rounds, frameworks=("vaefast", "torch"), rows=None, env=None):
    """bench_bf16_model's records on `threads` threads; `rows` (a smoke
    run) times every run on that many rows. Where this process's kernel set
    (VAEFAST_ISA in `env`) emulates bf16, vaefast's runs use EMULATED_ROWS
    rows and one round.

    Returns
    -------
    list of dict
        ``{"framework", "label", "kind", "precision", "batch", "threads",
        "samples_per_s"}``; vaefast's label names its bf16 route.
    """
    bench = _bench_bf16_model()
    records = []
    for fw in frameworks:
        fw_rows, fw_rounds = rows, rounds
        if fw == "vaefast" and _route(env) == "emulated":
            fw_rows, fw_rounds = min(rows or EMULATED_ROWS, EMULATED_ROWS), 1
        records += bench.measure([threads], fw_rounds, frameworks=(fw,), rows=fw_rows, env=env)
    return records


def _route(env):
    """vaefast's bf16 route (vaefast._core.bf16_auto_impl) under `env`."""
    import subprocess

    out = subprocess.run([sys.executable, "-c",
                          "import vaefast; print(vaefast._core.bf16_auto_impl())"],
                         capture_output=True, text=True, env=env, check=True)
    return out.stdout.strip()


def rows(records):
    """Per (kind, batch), in order: the four rates (None where not measured),
    vaefast's bf16/fp32 and bf16/autocast ratios, and whether the route is
    the emulation."""
    rate = {(r["framework"], r["precision"], r["kind"], r["batch"]): r["samples_per_s"]
            for r in records}
    emulated = any(r["framework"] == "vaefast" and r["label"].endswith("emulated")
                   for r in records)
    keys = sorted({(r["kind"], r["batch"]) for r in records}, key=lambda k: (k[0] != "train", k[1]))
    out = []
    for kind, batch in keys:
        v32, v16 = rate.get(("vaefast", "fp32", kind, batch)), rate.get(("vaefast", "bf16", kind, batch))
        t32, t16 = rate.get(("torch", "fp32", kind, batch)), rate.get(("torch", "bf16", kind, batch))
        out.append(dict(kind=kind, batch=batch, vaefast_fp32=v32, vaefast_bf16=v16,
                        torch_fp32=t32, torch_bf16=t16, vs_fp32=_ratio(v16, v32),
                        vs_autocast=_ratio(v16, t16), emulated=emulated))
    return out


def _ratio(a, b):
    return a / b if a and b else None


def checks(records, verdict):
    """Issue 26's speed targets against these records, in report.py's form
    (``{"what", "required", "measured", "verdict"}``); `verdict(value,
    threshold)` is report.py's. An emulated route gets "n/a"."""
    out = []
    for r in rows(records):
        name = f"batch {r['batch']}" if r["kind"] == "train" else "encode"
        pairs = [("fp32", VS_FP32.get(r["batch"] if r["kind"] == "train" else "encode"),
                  r["vs_fp32"])]
        if r["kind"] == "train":
            pairs.append(("PyTorch bf16 autocast", VS_AUTOCAST, r["vs_autocast"]))
        for against, need, value in pairs:
            if need is None:
                continue
            out.append(dict(what=f"bf16 {name}: vaefast bf16 / {against}", required=f"≥ {need:g}x",
                            measured="—" if value is None else f"{value:.2f}x",
                            verdict="n/a (emulated)" if r["emulated"] else verdict(value, need)))
    return out


def section(records, verdict):
    """The page's bf16 table and its targets, as Markdown."""
    if not records:
        return "Not measured."
    table = rows(records)
    label = next((r["label"] for r in records if r["framework"] == "vaefast"), "vaefast")
    threads = records[0]["threads"]

    def num(v):
        return "—" if v is None else f"{v:,.0f}"

    def x(v):
        return "—" if v is None else f"{v:.2f}x"

    lines = ["| What | vaefast fp32 /s | vaefast bf16 /s | bf16 / fp32 | PyTorch fp32 /s | "
             "PyTorch bf16 autocast /s | vaefast bf16 / autocast |", "|" + "---|" * 7]
    for r in table:
        what = f"train, batch {r['batch']}" if r["kind"] == "train" else f"encode {r['batch']:,} rows"
        lines.append(f"| {what} | {num(r['vaefast_fp32'])} | {num(r['vaefast_bf16'])} | "
                     f"{x(r['vs_fp32'])} | {num(r['torch_fp32'])} | {num(r['torch_bf16'])} | "
                     f"{x(r['vs_autocast'])} |")
    emulated = table and table[0]["emulated"]
    intro = (f"The same 784-400-20 model with `precision=\"bf16\"` (bench_bf16_model.py), "
             f"{threads} thread(s), samples/s (rows/s for encode), medians, each framework in "
             f"a fresh process; route: {label}. PyTorch: eager float32, and the same code "
             f"under `torch.autocast(\"cpu\", dtype=torch.bfloat16)`.")
    if emulated:
        intro += (f" This set runs bf16 through the scalar emulation of the instruction "
                  f"(bit-exact, for correctness), timed on at most {EMULATED_ROWS:,} rows and one "
                  f"round: the speed targets are the instruction's, so they read n/a here.")
    targets = ["| Target | Required | Measured | Verdict |", "|---|---|---|---|"]
    targets += [f"| {c['what']} | {c['required']} | {c['measured']} | {c['verdict']} |"
                for c in checks(records, verdict)]
    return "\n".join([intro, ""] + lines + [""] + targets)
