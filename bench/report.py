"""Benchmark report: run the comparisons of bench/ and write a Markdown page.

    python bench/report.py [--threads 2] [--repeats 5] [--quick] [--out-dir docs]
                           [--isa avx2 --isa generic]

Writes ``benchmarks.md`` and PNG plots (``benchmarks-*.png``, when matplotlib
is installed) to the output folder: training samples/s of vaefast, PyTorch
and the NumPy reference (bench_train.py), GEMM GFLOP/s per VAE layer shape
against NumPy/OpenBLAS (bench_gemm.py) and the element-wise kernels
(bench_elementwise.py, bench_random.py); the first two are checked against
the targets of the issue. The bf16 rows (vaefast float32 and bf16, PyTorch
eager float32 and bf16 autocast: bench_bf16_model.py) have the bf16
issue's targets. Training, GEMM and vaefast's bf16 rows
are measured for every kernel set the machine supports
(vaefast.supported_isas(), or --isa), each with the same tables and
verdicts, so a slow set cannot hide behind the default one; PyTorch and
the NumPy reference do not depend on the set and run once.

The measurements are the bench scripts' own functions, run in fresh
subprocesses with every framework on ``--threads`` threads. The module is
split into measure_* (timing), render_markdown / render_plots (pure
functions of the result records) and write_report (files), so the rendering
can be tested on synthetic records.
"""

import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# Targets of the "Using it" issue: vaefast must reach value >= threshold.
TRAIN_VS_TORCH = {32: 3.0, 128: 2.0, 1024: 1.3}
TRAIN_VS_NUMPY = 3.0
TRAIN_PEAK_FRACTION = {1024: 0.70}
GEMM_TARGETS = {"forward": 1.3, "raw": 0.90, "sgemm": 0.80}  # NumPy time / vaefast time
# Targets of the bf16 issue: vaefast bf16 over vaefast fp32 (per batch, and
# encode) and over PyTorch's bf16 autocast (every batch). They are about the
# instruction: a set that emulates it gets "n/a", and its bf16 runs are
# timed on at most BF16_EMULATED_ROWS rows, one round (about 4 s a run).
BF16_VS_FP32 = {32: 1.3, 128: 1.6, 1024: 1.6, "encode": 1.6}
BF16_VS_AUTOCAST = 1.5
BF16_EMULATED_ROWS = 2048

FRAMEWORK_NAMES = {"vaefast": "vaefast", "torch": "PyTorch", "numpy": "NumPy reference"}
KIND_NAMES = {
    "forward": "forward, fused x@W+b, ReLU",
    "raw": "raw product x@W",
    "input_grad": "backward dx = (dy@Wᵀ)·relu'",
    "weight_grad": "backward dW = xᵀ@dy, db",
    "sgemm": "square product",
}
# Sizes of a smoke run: every code path, numbers meaningless.
QUICK = dict(train_rows=64, warm_steps=2, bf16_rows=64, gemm=dict(rounds=1, square_n=1024, square_rounds=1, min_time=0.002),
             elementwise=dict(names=["bernoulli-1024x784", "kl-1024x20", "adam-650k"],
                              repeats=3, min_time=0.002),
             random=dict(sizes=[10**5], shapes=[(1024, 20)], repeats=3))
# warm_steps: vaefast trains this many steps before it is timed (bench_train.peak_ratio:
# Adam's subnormal first moments slow the steady state down after ~800 steps at batch 32)
FULL = dict(train_rows=None, warm_steps=1200, bf16_rows=None, gemm={}, elementwise={},
            random={})
# Settings that change the timings, stated on the page when set.
ENV_VARS = ("VAEFAST_ISA", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_PROC_BIND", "OMP_PLACES")


# ---------------------------------------------------------------- measuring
def _bench(name):
    """Import bench/<name>.py by path (bench/ is not a package)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, name + ".py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _run_worker(kind, threads, quick):
    """Run one in-process bench (gemm, elementwise) in a fresh interpreter
    with the benchmark environment; it prints its records as JSON."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", kind,
           "--threads", str(threads)] + (["--quick"] if quick else [])
    out = subprocess.run(cmd, env=_bench("bench_train").bench_env(threads),
                         capture_output=True, text=True, cwd=HERE)
    if out.returncode:
        raise RuntimeError(f"{kind} benchmark failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _worker(kind, threads, quick):
    """Body of a --worker subprocess: measure and return JSON-able data."""
    import vaefast

    params = (QUICK if quick else FULL)[kind]
    if kind == "gemm":
        records = _bench("bench_gemm").measure(threads, **params)
        try:
            from threadpoolctl import threadpool_info
            blas = [{k: d.get(k) for k in ("internal_api", "version", "architecture",
                                           "threading_layer", "num_threads")}
                    for d in threadpool_info() if d.get("user_api") == "blas"]
        except ImportError:
            blas = []
        return {"records": records, "blas": blas}
    vaefast.set_num_threads(threads)
    data = _bench("bench_elementwise").measure(**params)
    rand = _bench("bench_random").measure(**(QUICK if quick else FULL)["random"])
    data["cases"] += [dict(r, alloc_s=r["vaefast_s"]) for r in rand]
    return data


def measure_gemm(threads, quick=False):
    """GEMM records of bench_gemm.measure and NumPy's BLAS configuration,
    measured in a fresh process on `threads` threads.

    Returns
    -------
    tuple (list of dict, list of dict)
        The GEMM records and threadpoolctl's description of NumPy's BLAS.
    """
    data = _run_worker("gemm", threads, quick)
    return data["records"], data["blas"]


def measure_elementwise(threads, quick=False):
    """Element-wise kernel timings of bench_elementwise.measure followed by
    the random ones of bench_random.measure, in one fresh process on
    `threads` vaefast threads (NumPy's ufuncs and generator use one)."""
    return _run_worker("elementwise", threads, quick)


def measure_training(threads, repeats, quick=False):
    """Training samples/s of vaefast (after the warm-up steps), PyTorch
    (when installed) and the NumPy reference at each batch size, each number
    from a fresh process.

    Returns
    -------
    list of dict
        ``{"batch", "framework", "samples_per_s"}`` records.
    """
    frameworks = ["vaefast", "torch", "numpy"]
    if importlib.util.find_spec("torch") is None:
        frameworks.remove("torch")
    params = QUICK if quick else FULL
    try:
        return _bench("bench_train").measure_table(frameworks, repeats, threads,
                                                   rows=params["train_rows"],
                                                   warm_steps=params["warm_steps"])
    except subprocess.CalledProcessError as e:
        raise RuntimeError(f"training benchmark failed:\n{e.stderr}") from e


def measure_peak_ratio(repeats, quick=False):
    """vaefast's one-thread training GFLOP/s over the same process's sgemm
    2048³ GFLOP/s at each batch size, after the warm-up steps, on the
    thread's CPU clock (bench_train.measure_peak_ratios' records)."""
    params = QUICK if quick else FULL
    try:
        return _bench("bench_train").measure_peak_ratios(repeats, params["warm_steps"],
                                                         rows=params["train_rows"])
    except subprocess.CalledProcessError as e:
        raise RuntimeError(f"peak-ratio benchmark failed:\n{e.stderr}") from e


def _version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_info():
    """CPU model name and logical / physical core counts of this machine.

    Returns
    -------
    dict
        ``model`` (str), ``logical``, ``physical`` (int or None) and
        ``available`` (CPUs this process may run on).
    """
    model, logical, cores = None, 0, set()
    try:
        with open("/proc/cpuinfo") as f:
            entry = {}
            for line in f.read().splitlines() + [""]:
                if ":" in line:
                    key, value = (s.strip() for s in line.split(":", 1))
                    entry[key] = value
                    continue
                if "processor" in entry:  # blank line closes an entry
                    logical += 1
                    model = model or entry.get("model name")
                    if "core id" in entry:
                        cores.add((entry.get("physical id"), entry["core id"]))
                entry = {}
    except OSError:
        pass
    if model is None:
        model = platform.processor() or platform.machine()
    available = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                 else os.cpu_count())
    return dict(model=model, logical=logical or os.cpu_count(),
                physical=len(cores) or None, available=available)


def machine_info(threads, repeats, quick):
    """Everything the page states about the run besides the numbers."""
    import vaefast

    return dict(
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        threads=threads, repeats=repeats, quick=quick, isa=vaefast.isa(), cpu=cpu_info(),
        python=platform.python_version(), platform=platform.platform(),
        versions={d: _version(d) for d in ("vaefast", "numpy", "torch", "threadpoolctl",
                                           "matplotlib")},
        env={k: os.environ[k] for k in ENV_VARS if k in os.environ},
        load=list(os.getloadavg()) if hasattr(os, "getloadavg") else None, blas=[],
        scheduling=scheduling_info())


def scheduling_info():
    """The run's scheduling priority: nice value and Linux autogroup nice.

    On a shared machine, raising both (``echo -20 > /proc/self/autogroup;
    nice -n -20 python bench/report.py``) lets the benchmark processes run as
    on an idle machine; the page says when that was done.
    """
    info = f"nice {os.nice(0)}" if hasattr(os, "nice") else "nice unknown"
    try:
        with open("/proc/self/autogroup") as f:
            info += f", autogroup nice {f.read().split()[-1]}"
    except (OSError, IndexError):
        pass
    return info


class _kernel_set:
    """Context manager: benchmark subprocesses started inside run the
    kernel set `name` (VAEFAST_ISA; None leaves the default choice)."""

    def __init__(self, name):
        self.name, self.saved = name, None

    def __enter__(self):
        self.saved = os.environ.get("VAEFAST_ISA")
        if self.name is not None:
            os.environ["VAEFAST_ISA"] = self.name
        return self

    def __exit__(self, *exc):
        if self.saved is None:
            os.environ.pop("VAEFAST_ISA", None)
        else:
            os.environ["VAEFAST_ISA"] = self.saved


def kernel_sets(requested=None):
    """The kernel sets to measure: `requested` (checked against the ones
    this machine supports) or every supported one, the default set first.

    Returns
    -------
    list of str
    """
    import vaefast

    supported = list(vaefast.supported_isas())
    if requested:
        unknown = [n for n in requested if n not in supported]
        if unknown:
            raise ValueError(f"kernel set(s) {unknown} not supported here; "
                             f"this machine supports {supported}")
        supported = [n for n in supported if n in requested]
    default = vaefast.isa()
    return sorted(supported, key=lambda n: (n != default, -supported.index(n)))


def measure_bf16(threads, repeats, quick=False, frameworks=("vaefast", "torch")):
    """bf16 and float32 training and encode records of the kernel set in
    VAEFAST_ISA (bench_bf16_model.measure: each framework in a fresh
    process); where that set emulates bf16, vaefast's runs use at most
    BF16_EMULATED_ROWS rows and one round.

    Returns
    -------
    list of dict
        ``{"framework", "label", "kind", "precision", "batch", "threads",
        "samples_per_s"}``; vaefast's label names its bf16 route.
    """
    rows = (QUICK if quick else FULL)["bf16_rows"]
    # the route is the set's, chosen at import: ask a process that has it
    route = subprocess.run([sys.executable, "-c",
                            "import vaefast; print(vaefast._core.bf16_auto_impl())"],
                           capture_output=True, text=True, check=True).stdout.strip()
    records = []
    for fw in frameworks:
        fw_rows, fw_rounds = rows, repeats
        if fw == "vaefast" and route == "emulated":
            fw_rows, fw_rounds = min(rows or BF16_EMULATED_ROWS, BF16_EMULATED_ROWS), 1
        records += _bench("bench_bf16_model").measure([threads], fw_rounds, frameworks=(fw,),
                                                      rows=fw_rows)
    return records


def measure_other_set(name, threads, repeats, quick=False):
    """Training (vaefast only, float32 and bf16) and GEMM records of kernel
    set `name`."""
    with _kernel_set(name):
        gemm, _ = measure_gemm(threads, quick)
        params = QUICK if quick else FULL
        try:
            train = _bench("bench_train").measure_table(["vaefast"], repeats, threads,
                                                        rows=params["train_rows"],
                                                        warm_steps=params["warm_steps"])
        except subprocess.CalledProcessError as e:
            raise RuntimeError(f"training benchmark failed:\n{e.stderr}") from e
        peak_ratio = measure_peak_ratio(repeats, quick)
        bf16 = measure_bf16(threads, repeats, quick, frameworks=("vaefast",))
    return dict(train=train, gemm=gemm, peak_ratio=peak_ratio, bf16=bf16)


def measure_all(threads, repeats, quick=False, log=print, isas=None):
    """Run every benchmark; the result dict is what render_* take.

    The main tables are of the first set of kernel_sets(isas) (the
    machine's default unless --isa says otherwise); ``results["sets"]``
    holds the training and GEMM records of the others."""
    import time

    sets = kernel_sets(isas)
    meta = machine_info(threads, repeats, quick)
    meta["isa"] = sets[0]
    if meta["load"] is not None and meta["load"][0] > 0.5:
        log(f"warning: load average {meta['load'][0]:.2f}: other work is running and will "
            "distort the numbers (vaefast's spinning OpenMP threads suffer most)")
    start = time.perf_counter()

    def stage(text, fn):
        log(f"[{time.perf_counter() - start:6.1f} s] {text}...")
        return fn()

    with _kernel_set(sets[0]):
        gemm, meta["blas"] = stage(f"kernel set {sets[0]}: GEMM per layer shape and the "
                                   f"square product, {threads} threads",
                                   lambda: measure_gemm(threads, quick))
        train = stage(f"kernel set {sets[0]}: training throughput, one fresh process per "
                      "number", lambda: measure_training(threads, repeats, quick))
        peak_ratio = stage(f"kernel set {sets[0]}: one-thread training % of peak after "
                           "warm-up", lambda: measure_peak_ratio(repeats, quick))
        elementwise = stage("element-wise and random kernels",
                            lambda: measure_elementwise(threads, quick))
        bf16 = stage(f"kernel set {sets[0]}: bf16 and float32 training and encode, vaefast "
                     "and PyTorch", lambda: measure_bf16(threads, repeats, quick))
    others = {name: stage(f"kernel set {name}: GEMM and vaefast training",
                          lambda name=name: measure_other_set(name, threads, repeats, quick))
              for name in sets[1:]}
    log(f"[{time.perf_counter() - start:6.1f} s] done")
    if meta["load"] is not None:
        meta["load_after"] = list(os.getloadavg())
    return dict(meta=meta, flop_per_sample=_bench("bench_train").FLOP_PER_SAMPLE,
                train=train, gemm=gemm, peak_ratio=peak_ratio, elementwise=elementwise,
                bf16=bf16, sets=others)


def set_results(results, name):
    """The results of kernel set `name` from the page's point of view: its
    own vaefast and GEMM records, the peers' training records of the run."""
    own = results["sets"][name]
    peers = [r for r in results.get("train") or [] if r["framework"] != "vaefast"]
    bf16_peers = [r for r in results.get("bf16") or [] if r["framework"] != "vaefast"]
    return dict(results, train=peers + own["train"], gemm=own["gemm"],
                peak_ratio=own.get("peak_ratio"), elementwise=None,
                bf16=bf16_peers + (own.get("bf16") or []) if own.get("bf16") else None,
                meta=dict(results["meta"], isa=name))


# ---------------------------------------------------------------- analysing
def verdict(value, threshold):
    """Verdict text: met when value >= threshold, n/a when there is no value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    # the tolerance keeps a ratio like 2.9999999999999996 (shown as 3.00x) from failing 3x
    return "met" if value >= threshold * (1 - 1e-9) else "not met"


def _ratio(a, b):
    return a / b if a and b else None


def peak_gflops(results):
    """NumPy's square sgemm GFLOP/s of the run (None if not measured)."""
    for r in results.get("gemm") or []:
        if r["kind"] == "sgemm":
            return r["flops"] / r["numpy_s"] / 1e9
    return None


def training_rows(results):
    """Per batch size: samples/s per framework, ratios, GFLOP/s, % of peak.

    With peak-ratio records (measure_peak_ratio), GFLOP/s and % of peak are
    theirs: one thread, warmed up, the median ratio against the same
    process's sgemm; without them, the samples/s over the run's sgemm."""
    rates = {}
    for r in results.get("train") or []:
        rates.setdefault(r["batch"], {})[r["framework"]] = r["samples_per_s"]
    warmed = {r["batch"]: r for r in results.get("peak_ratio") or []}
    peak, rows = peak_gflops(results), []
    for batch in sorted(rates):
        rate = rates[batch]
        v = rate.get("vaefast")
        gf = v * results["flop_per_sample"] / 1e9 if v else None
        fraction = _ratio(gf, peak)
        if batch in warmed:
            gf, fraction = warmed[batch]["train_gflops"], warmed[batch]["median"]
        rows.append(dict(batch=batch, rate=rate, vs_torch=_ratio(v, rate.get("torch")),
                         vs_numpy=_ratio(v, rate.get("numpy")), gflops=gf,
                         peak_fraction=fraction))
    return rows


def gemm_rows(results):
    """Per GEMM record: GFLOP/s of both sides, ratio, % of peak, target, verdict."""
    peak, rows = peak_gflops(results), []
    for r in results.get("gemm") or []:
        ratio = r["numpy_s"] / r["vaefast_s"]
        target = GEMM_TARGETS.get(r["kind"])
        gf = r["flops"] / r["vaefast_s"] / 1e9
        rows.append(dict(r, vaefast_gflops=gf, numpy_gflops=r["flops"] / r["numpy_s"] / 1e9,
                         ratio=ratio, peak_fraction=_ratio(gf, peak), target=target,
                         verdict=verdict(ratio, target) if target else ""))
    return rows


def _shape(r):
    if r["kind"] == "sgemm":
        return f"{r['batch']}³"
    return f"{r['n_in']}→{r['n_out']}, batch {r['batch']}"


def target_checks(results):
    """The issue's targets with the measured value and a computed verdict.

    Returns
    -------
    list of dict
        ``{"what", "required", "measured", "verdict"}`` with text values.
    """
    checks, train = [], {r["batch"]: r for r in training_rows(results)}
    for batch, need in TRAIN_VS_TORCH.items():
        v = train.get(batch, {}).get("vs_torch")
        checks.append(dict(what=f"training vaefast / PyTorch, batch {batch}",
                           required=f"≥ {need:g}x", measured=_x(v), verdict=verdict(v, need)))
    for batch in sorted(train) or [None]:
        v = train.get(batch, {}).get("vs_numpy")
        checks.append(dict(what="training vaefast / NumPy, "
                           + (f"batch {batch}" if batch else "every batch"),
                           required=f"≥ {TRAIN_VS_NUMPY:g}x", measured=_x(v),
                           verdict=verdict(v, TRAIN_VS_NUMPY)))
    for batch, need in TRAIN_PEAK_FRACTION.items():
        v = train.get(batch, {}).get("peak_fraction")
        checks.append(dict(what=f"training GFLOP/s as % of peak, batch {batch}",
                           required=f"≥ {100 * need:g} %", measured=_pct(v),
                           verdict=verdict(v, need)))
    gemm = gemm_rows(results)
    groups = [("forward", "GEMM forward (fused) vs NumPy x@W+b then ReLU, VAE shapes"),
              ("raw", "GEMM raw product vs OpenBLAS, VAE shapes"),
              ("sgemm", "GEMM square product vs OpenBLAS")]
    for kind, what in groups:
        rows = [r for r in gemm if r["kind"] == kind]
        need = GEMM_TARGETS[kind]
        if not rows:
            checks.append(dict(what=what, required=f"≥ {need:g}x", measured="—", verdict="n/a"))
            continue
        worst = min(rows, key=lambda r: r["ratio"])
        n_met = sum(r["verdict"] == "met" for r in rows)
        measured = _x(worst["ratio"]) + (
            f" (worst: {_shape(worst)}; {n_met}/{len(rows)} met)" if len(rows) > 1
            else f" ({_shape(worst)})")
        checks.append(dict(what=what, required=f"≥ {need:g}x", measured=measured,
                           verdict=verdict(worst["ratio"], need)))
    return checks


# ---------------------------------------------------------------- rendering
def _x(v):
    return "—" if v is None else f"{v:.2f}x"


def _pct(v):
    return "—" if v is None else f"{100 * v:.1f} %"


def _num(v, fmt="{:,.0f}"):
    return "—" if v is None else fmt.format(v)


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _machine_section(results):
    m, v = results["meta"], results["meta"]["versions"]
    cpu = m["cpu"]
    cores = f"{cpu['logical']} logical CPUs" + (
        f", {cpu['physical']} physical cores" if cpu.get("physical") else "") + (
        f", {cpu['available']} available to the benchmark" if cpu.get("available") else "")
    blas = "; ".join(f"{b.get('internal_api')} {b.get('version')} (architecture "
                     f"{b.get('architecture')}, threading {b.get('threading_layer')}, "
                     f"{b.get('num_threads')} threads)" for b in m.get("blas") or []) or "unknown"
    peak = peak_gflops(results)
    sq = next((r for r in results.get("gemm") or [] if r["kind"] == "sgemm"), None)
    rows = [
        ("Date", m["date"]),
        ("CPU", f"{cpu['model']} ({cores})"),
        ("Threads", f"{m['threads']} for every framework (vaefast.set_num_threads, "
                    "torch.set_num_threads, OMP_NUM_THREADS, OPENBLAS_NUM_THREADS)"),
        ("vaefast kernel set", f"`{m['isa']}` in the main tables"
         + ("; also measured: " + ", ".join(f"`{n}`" for n in results["sets"])
            + " (a section each, below)" if results.get("sets") else "")),
        ("Versions", ", ".join(f"{k} {v[k]}" for k in v if v[k]) + f", Python {m['python']}"),
        ("NumPy's BLAS", blas),
        ("Platform", m["platform"]),
        ("Load average", "—" if m.get("load") is None else
         f"{m['load'][0]:.2f} before the run, {m.get('load_after', [math.nan])[0]:.2f} after "
         "(1-minute; well above 0 before the run means other work shared the CPUs)"),
        ("Environment", (", ".join(f"`{k}={v}`" for k, v in m.get("env", {}).items())
                         or "no vaefast / OpenMP tuning variables set")
         + "; OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed for the benchmark processes"),
        ("Scheduling", m.get("scheduling", "—") + " (negative: the benchmark processes were "
         "given priority over other work on the machine)"),
        ("Practical peak", "—" if peak is None else
         f"{peak:.1f} GFLOP/s: NumPy's {sq['batch']}³ float32 matmul in this run"),
    ]
    return _table(["", ""], rows)


def _training_section(results):
    rows = training_rows(results)
    present = [f for f in FRAMEWORK_NAMES if any(f in r["rate"] for r in rows)]
    header = (["Batch"] + [f"{FRAMEWORK_NAMES[f]} samples/s" for f in present]
              + ["vaefast / PyTorch", "vaefast / NumPy", "vaefast GFLOP/s", "% of peak"])
    body = [[r["batch"]] + [_num(r["rate"].get(f)) for f in present]
            + [_x(r["vs_torch"]), _x(r["vs_numpy"]), _num(r["gflops"], "{:.1f}"),
               _pct(r["peak_fraction"])] for r in rows]
    fps, n = results["flop_per_sample"], results["meta"]["repeats"]
    warmed = results.get("peak_ratio") or []
    warm = (f"vaefast after {warmed[0]['warm_steps']} warm-up training steps (Adam's "
            f"subnormal first moments slow the steady state down after ~800 steps), the "
            f"others after a warm-up epoch" if warmed else "after a warm-up epoch")
    how = (f"vaefast GFLOP/s and % of peak: one thread, warmed up the same way, on the "
           f"thread's CPU clock, alternating {n} training epochs with NumPy's 2048³ sgemm in "
           f"one process (`bench_train.py --peak-ratio`): the best GFLOP/s and the median "
           f"ratio" if warmed else "GFLOP/s")
    return (f"784-400-20 VAE, Bernoulli likelihood, Adam, random binarised data: median "
            f"samples/s over {n} timed epochs ({max(1, n // 2)} for the NumPy reference, as "
            f"bench_train.py does), {warm}, each framework in a fresh process. {how}; "
            f"GFLOP/s counts "
            f"{fps / 1e6:.2f} MFLOP per sample per training step.\n\n" + _table(header, body))


def _gemm_section(results):
    body = [[r["batch"] if r["kind"] != "sgemm" else "—",
             f"{r['n_in']}→{r['n_out']}" if r["kind"] != "sgemm" else f"{r['batch']}³",
             KIND_NAMES.get(r["kind"], r["kind"]), f"{r['vaefast_gflops']:.1f}",
             _pct(r["peak_fraction"]), f"{r['numpy_gflops']:.1f}", _x(r["ratio"]),
             f"≥ {r['target']:g}x" if r["target"] else "—", r["verdict"] or "—"]
            for r in gemm_rows(results)]
    header = ["Batch", "Layer", "Product", "vaefast GFLOP/s", "% of peak", "NumPy GFLOP/s",
              "vaefast / NumPy", "Target", "Verdict"]
    return ("Each layer of the VAE (the encoder head is 400→40 = [mu | logvar]); NumPy runs "
            "`np.maximum(x @ W + b, 0)` for the forward pass, `x @ W` for the raw product "
            "and the same formulas for the backward products. Median seconds per call; "
            "vaefast / NumPy is NumPy's time over vaefast's.\n\n" + _table(header, body))


def _set_section(results):
    """Targets, training and GEMM tables of one more kernel set (no plots)."""
    isa = results["meta"]["isa"]
    return "\n".join([
        f"The same measurements with `VAEFAST_ISA={isa}` in the same run (PyTorch and "
        "the NumPy reference as above; NumPy's GEMM timed again beside this set's).", "",
        _table(["Target", "Required", "Measured", "Verdict"],
               [[c["what"], c["required"], c["measured"], c["verdict"]]
                for c in target_checks(results)]),
        "", f"### Training throughput, `{isa}`", "", _training_section(results),
        "", f"### GEMM per layer shape, `{isa}`", "", _gemm_section(results)]
        + _bf16_part(results, f"### bf16 and float32, `{isa}`"))


def bf16_rows(records):
    """Per (kind, batch) of bf16 records, training first: the four rates
    (None where not measured), vaefast's bf16/fp32 and bf16/autocast
    ratios, and whether vaefast's bf16 route is the emulation."""
    rate = {(r["framework"], r["precision"], r["kind"], r["batch"]): r["samples_per_s"]
            for r in records}
    emulated = any(r["framework"] == "vaefast" and r["label"].endswith("emulated")
                   for r in records)
    rows = []
    for kind, batch in sorted({(r["kind"], r["batch"]) for r in records},
                              key=lambda k: (k[0] != "train", k[1])):
        v32, v16 = (rate.get(("vaefast", p, kind, batch)) for p in ("fp32", "bf16"))
        t32, t16 = (rate.get(("torch", p, kind, batch)) for p in ("fp32", "bf16"))
        rows.append(dict(kind=kind, batch=batch, vaefast_fp32=v32, vaefast_bf16=v16,
                         torch_fp32=t32, torch_bf16=t16, vs_fp32=_ratio(v16, v32),
                         vs_autocast=_ratio(v16, t16), emulated=emulated))
    return rows


def bf16_checks(records):
    """The bf16 issue's speed targets (BF16_VS_FP32, BF16_VS_AUTOCAST)
    against these records, as target_checks gives them; "n/a (emulated)"
    where vaefast's bf16 route is the emulation."""
    checks = []
    for r in bf16_rows(records):
        train = r["kind"] == "train"
        pairs = [("fp32", BF16_VS_FP32.get(r["batch"] if train else "encode"), r["vs_fp32"])]
        if train:
            pairs.append(("PyTorch bf16 autocast", BF16_VS_AUTOCAST, r["vs_autocast"]))
        for against, need, value in pairs:
            if need is None:
                continue
            name = f"batch {r['batch']}" if train else "encode"
            checks.append(dict(
                what=f"bf16 {name}: vaefast bf16 / {against}",
                required=f"≥ {need:g}x", measured=_x(value),
                verdict="n/a (emulated)" if r["emulated"] else verdict(value, need)))
    return checks


def _bf16_section(records):
    rows = bf16_rows(records)
    label = next((r["label"] for r in records if r["framework"] == "vaefast"), "vaefast")
    header = ["What", "vaefast fp32 /s", "vaefast bf16 /s", "bf16 / fp32", "PyTorch fp32 /s",
              "PyTorch bf16 autocast /s", "vaefast bf16 / autocast"]
    body = [[f"train, batch {r['batch']}" if r["kind"] == "train"
             else f"encode {r['batch']:,} rows",
             _num(r["vaefast_fp32"]), _num(r["vaefast_bf16"]), _x(r["vs_fp32"]),
             _num(r["torch_fp32"]), _num(r["torch_bf16"]), _x(r["vs_autocast"])] for r in rows]
    intro = (f"The same 784-400-20 model with `precision=\"bf16\"` (bench_bf16_model.py), "
             f"{records[0]['threads']} thread(s), samples/s (rows/s for encode), medians, each "
             f"framework in a fresh process; route: {label}. PyTorch: eager float32, and the "
             f"same code under `torch.autocast(\"cpu\", dtype=torch.bfloat16)`.")
    if rows and rows[0]["emulated"]:
        intro += (f" This set runs bf16 through the scalar emulation of the instruction "
                  f"(bit-exact, for correctness), timed on at most "
                  f"{BF16_EMULATED_ROWS:,} rows and one round: the speed "
                  f"targets are the instruction's, so they read n/a here.")
    checks = [[c["what"], c["required"], c["measured"], c["verdict"]]
              for c in bf16_checks(records)]
    return "\n\n".join([intro, _table(header, body),
                         _table(["Target", "Required", "Measured", "Verdict"], checks)])


def _bf16_part(results, title):
    """The bf16 heading and section, or nothing for results without them."""
    if not results.get("bf16"):
        return []
    return ["", title, "", _bf16_section(results["bf16"])]


def _elementwise_section(results):
    e = results["elementwise"]
    body = []
    for r in e["cases"]:
        gf, gn = r["bytes"] / r["vaefast_s"] / 1e9, r["bytes"] / r["numpy_s"] / 1e9
        body.append([r["case"], f"{1e3 * r['vaefast_s']:.3f}", f"{gf:.1f}",
                     f"{100 * gf / e['copy_gbps']:.0f} %", f"{1e3 * r['numpy_s']:.3f}",
                     f"{gn:.1f}", _x(r["numpy_s"] / r["vaefast_s"])])
    header = ["Kernel", "vaefast ms", "vaefast GB/s", "% of copy", "NumPy ms", "NumPy GB/s",
              "vaefast / NumPy"]
    return (f"Losses and optimizer updates (vaefast writing into given outputs) against "
            f"the same formulas in float32 NumPy; normal draws against NumPy's float32 "
            f"`standard_normal`; reparameterization forward + backward against a float32 "
            f"NumPy version. GB/s of compulsory traffic; the copy "
            f"reference is np.copyto of 64 MB: {e['copy_gbps']:.1f} GB/s (best of 1 and "
            f"{e['threads']} copying threads).\n\n" + _table(header, body))


REPRODUCE = """\
On a quiet machine: vaefast's OpenMP threads spin-wait a while between kernels before
sleeping (libgomp's default), so other work on the same CPUs slows vaefast far more than
PyTorch or NumPy; the load average row above shows whether the run was alone.

    python3 -m venv venv && . venv/bin/activate
    pip install ".[bench]"                   # vaefast, matplotlib, scikit-learn (threadpoolctl)
    pip install torch --index-url https://download.pytorch.org/whl/cpu   # optional: the CPU build
    python bench/report.py --threads 2       # rewrites docs/benchmarks.md and docs/benchmarks-*.png

`--repeats N` sets the training repeats (default 5), `--isa NAME` (repeatable) the kernel
sets to measure (default: every set the machine supports), `--out-dir DIR` the output folder and
`--quick` makes a smoke run with tiny sizes (seconds; the numbers mean nothing). Each part
can also be run alone, printing a text table:

    python bench/bench_train.py --threads 2
    python bench/bench_train.py --peak-ratio     # one thread, warmed: % of the sgemm peak
    python bench/bench_gemm.py 2
    python bench/bench_elementwise.py 2
    python bench/bench_random.py
    python bench/bench_bf16_model.py --threads 1 2   # bf16 against float32 and autocast
    pytest bench/bench_gemm.py --benchmark-only      # pytest-benchmark suites
"""


def render_markdown(results, plots=None):
    """The benchmark page.

    Parameters
    ----------
    results : dict
        ``meta``, ``flop_per_sample``, ``train``, ``gemm`` and
        ``elementwise`` (may be None) as made by measure_all.
    plots : dict or None
        Section name ("training", "gemm", "elementwise") -> PNG file name
        relative to the page; None when matplotlib is missing.

    Returns
    -------
    str
    """
    m = results["meta"]

    def figure(name):
        if plots is None:
            return ""
        return f"\n\n![{name}]({plots[name]})" if name in plots else ""

    out = ["# vaefast benchmarks", "",
           f"Written by `{m.get('command') or 'python bench/report.py'}` on {m['date']}. "
           "Every number below comes from that run; the verdicts are computed from them."]
    if m.get("quick"):
        out += ["", "**Smoke run (`--quick`): tiny sizes and repeats, the numbers are "
                    "not meaningful.**"]
    if plots is None:
        out += ["", "Plots skipped: matplotlib is not installed (`pip install \".[bench]\"`)."]
    out += ["", "## Machine", "", _machine_section(results),
            "", "## Targets", "",
            "The performance targets of the issue, checked against this run.", "",
            _table(["Target", "Required", "Measured", "Verdict"],
                   [[c["what"], c["required"], c["measured"], c["verdict"]]
                    for c in target_checks(results)]),
            "", "## Training throughput", "", _training_section(results) + figure("training"),
            "", "## GEMM per layer shape", "", _gemm_section(results) + figure("gemm")]
    if results.get("elementwise"):
        out += ["", "## Element-wise and random kernels", "",
                _elementwise_section(results) + figure("elementwise")]
    out += _bf16_part(results, "## bf16 and float32")
    for name in results.get("sets") or {}:
        out += ["", f"## Kernel set `{name}`", "", _set_section(set_results(results, name))]
    out += ["", "## How to reproduce", "", REPRODUCE]
    return "\n".join(out)


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _save(plt, fig, path):
    tmp = path + ".tmp"
    fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def _plot_training(plt, results, path):
    rows = training_rows(results)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    batches = [r["batch"] for r in rows]
    for f, name in FRAMEWORK_NAMES.items():
        pts = [(r["batch"], r["rate"][f]) for r in rows if f in r["rate"]]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=name)
    ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="training samples/s",
           title="Training throughput")
    for key, label, targets in (("vs_torch", "vaefast / PyTorch", TRAIN_VS_TORCH),
                                ("vs_numpy", "vaefast / NumPy", None)):
        pts = [(r["batch"], r[key]) for r in rows if r[key]]
        if pts:
            line, = bx.plot(*zip(*pts), marker="o", label=label)
            tb = [b for b in batches if targets is None or b in targets]
            bx.plot(tb, [TRAIN_VS_NUMPY if targets is None else targets[b] for b in tb],
                    ls="none", marker="_", ms=24, mew=2, color=line.get_color(),
                    label=f"target {label}")
    bx.set(xscale="log", xlabel="batch size", ylabel="speed-up", title="vaefast speed-up")
    for a in (ax, bx):
        a.set_xticks(batches, [str(b) for b in batches])
        a.tick_params(axis="x", which="minor", bottom=False, labelbottom=False)
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    _save(plt, fig, path)


def _plot_gemm(plt, results, path):
    rows, peak = gemm_rows(results), peak_gflops(results)
    kinds = ["forward", "raw", "input_grad", "weight_grad"]
    fig, axes = plt.subplots(2, 2, figsize=(13, 8), sharey=True)
    for kind, ax in zip(kinds, axes.flat):
        sel = [r for r in rows if r["kind"] == kind or (kind == "raw" and r["kind"] == "sgemm")]
        xs = range(len(sel))
        ax.bar([x - 0.2 for x in xs], [r["vaefast_gflops"] for r in sel], 0.4, label="vaefast")
        ax.bar([x + 0.2 for x in xs], [r["numpy_gflops"] for r in sel], 0.4,
               label="NumPy / OpenBLAS")
        if peak:
            ax.axhline(peak, color="k", ls="--", lw=1, label="practical peak (NumPy sgemm)")
        ax.set_xticks(list(xs), [f"{r['batch']}³" if r["kind"] == "sgemm" else
                                 f"{r['n_in']}→{r['n_out']}\nb{r['batch']}" for r in sel],
                      fontsize=7)
        ax.set(title=KIND_NAMES[kind], ylabel="GFLOP/s")
        ax.grid(axis="y", alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    _save(plt, fig, path)


def _plot_elementwise(plt, results, path):
    e = results["elementwise"]
    cases = e["cases"]
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(cases) + 1.5))
    ys = range(len(cases))
    ax.barh([y - 0.2 for y in ys], [r["bytes"] / r["vaefast_s"] / 1e9 for r in cases], 0.4,
            label="vaefast")
    ax.barh([y + 0.2 for y in ys], [r["bytes"] / r["numpy_s"] / 1e9 for r in cases], 0.4,
            label="NumPy")
    ax.axvline(e["copy_gbps"], color="k", ls="--", lw=1, label="memory copy")
    ax.set_yticks(list(ys), [r["case"] for r in cases], fontsize=8)
    ax.invert_yaxis()
    ax.set(xlabel="GB/s", title="Element-wise and random kernels")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(plt, fig, path)


def render_plots(results, out_dir, prefix="benchmarks"):
    """Write the PNG plots into out_dir.

    Returns
    -------
    dict or None
        Section name -> file name (relative to out_dir); None when
        matplotlib is not installed.
    """
    plt = _pyplot()
    if plt is None:
        return None
    plots = {}
    jobs = [("training", _plot_training, results.get("train")),
            ("gemm", _plot_gemm, results.get("gemm")),
            ("elementwise", _plot_elementwise, results.get("elementwise"))]
    for name, plot, data in jobs:
        if data:
            plots[name] = f"{prefix}-{name}.png"
            plot(plt, results, os.path.join(out_dir, plots[name]))
    return plots


def write_report(results, out_dir, plots=True):
    """Write benchmarks.md (and the plots) into out_dir, each file through a
    temporary name and a rename.

    Returns
    -------
    list of str
        The paths written.
    """
    os.makedirs(out_dir, exist_ok=True)
    pngs = render_plots(results, out_dir) if plots else None
    path = os.path.join(out_dir, "benchmarks.md")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(render_markdown(results, pngs))
    os.replace(path + ".tmp", path)
    return [path] + [os.path.join(out_dir, p) for p in (pngs or {}).values()]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="threads of every framework")
    ap.add_argument("--repeats", type=int, default=None,
                    help="training repeats per number (default 5, --quick 1)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    ap.add_argument("--out-dir", default=os.path.join(os.path.dirname(HERE), "docs"))
    ap.add_argument("--isa", action="append", default=None,
                    help="kernel set to measure (repeatable; default: every supported set)")
    ap.add_argument("--worker", choices=["gemm", "elementwise"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.threads < 1 or (args.repeats is not None and args.repeats < 1):
        ap.error("--threads and --repeats must be at least 1")
    if args.worker:
        print(json.dumps(_worker(args.worker, args.threads, args.quick)))
        return
    repeats = args.repeats or (1 if args.quick else 5)
    try:
        kernel_sets(args.isa)
    except ValueError as e:
        ap.error(str(e))
    results = measure_all(args.threads, repeats, args.quick,
                          log=lambda s: print(s, file=sys.stderr, flush=True), isas=args.isa)
    results["meta"]["command"] = " ".join(
        ["python bench/report.py"] + (sys.argv[1:] if argv is None else list(argv)))
    for path in write_report(results, args.out_dir):
        print(path)


if __name__ == "__main__":
    main()
