"""bench/report.py rendering, on synthetic measurement records (no timing)."""

import importlib.util
import sys
from pathlib import Path

import pytest

REPORT_PY = Path(__file__).resolve().parents[1] / "bench" / "report.py"
if not REPORT_PY.exists():
    pytest.skip("bench/report.py is only in a source checkout", allow_module_level=True)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PEAK = 100.0  # GFLOP/s of the synthetic NumPy sgemm
LAYERS = ((784, 400), (400, 40), (20, 400), (400, 784))


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("vaefast_bench_report", REPORT_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_results(vs_torch=None, vs_numpy=5.0, gflops_1024=80.0, forward=1.5, raw=0.95,
                 square=0.85, torch=True, elementwise=True):
    """Records shaped like measure_all's; vaefast's numbers set by the ratios."""
    vs_torch = {32: 3.5, 128: 2.5, 1024: 1.5, **(vs_torch or {})}
    fps = 3.28e6
    train = []
    for batch in (32, 128, 1024):
        v = gflops_1024 * 1e9 / fps if batch == 1024 else 10000.0 * batch / 32
        train.append(dict(batch=batch, framework="vaefast", samples_per_s=v))
        if torch:
            train.append(dict(batch=batch, framework="torch", samples_per_s=v / vs_torch[batch]))
        train.append(dict(batch=batch, framework="numpy", samples_per_s=v / vs_numpy))
    gemm = []
    for batch in (32, 128, 1024):
        for n_in, n_out in LAYERS:
            flops = 2.0 * batch * n_in * n_out
            ratios = {"forward": forward, "raw": raw, "input_grad": 1.1, "weight_grad": 0.7}
            for kind, ratio in ratios.items():
                if callable(ratio):
                    ratio = ratio(batch, n_in, n_out)
                numpy_s = flops / 40e9
                gemm.append(dict(batch=batch, n_in=n_in, n_out=n_out, kind=kind, flops=flops,
                                 vaefast_s=numpy_s / ratio, numpy_s=numpy_s))
    flops = 2.0 * 2048**3
    gemm.append(dict(batch=2048, n_in=2048, n_out=2048, kind="sgemm", flops=flops,
                     vaefast_s=flops / (PEAK * 1e9) / square, numpy_s=flops / (PEAK * 1e9)))
    meta = dict(date="2026-01-01 00:00 UTC", threads=2, repeats=5, quick=False, isa="avx2",
                cpu=dict(model="Test CPU 9000", logical=8, physical=4, available=8),
                python="3.11.0", platform="Linux-test",
                versions=dict(vaefast="0.1.0", numpy="2.0.0", torch="2.13.0" if torch else None),
                env={}, load=[0.1, 0.1, 0.1], load_after=[2.0, 1.0, 0.5],
                blas=[dict(internal_api="openblas", version="0.3.27", architecture="Haswell",
                           threading_layer="pthreads", num_threads=2)])
    ew = dict(threads=2, copy_1thread_gbps=10.0, copy_gbps=12.0,
              cases=[dict(case="adam-650k", bytes=18_200_000, vaefast_s=2e-3, alloc_s=2e-3,
                          numpy_s=1e-2)]) if elementwise else None
    return dict(meta=meta, flop_per_sample=fps, train=train, gemm=gemm, elementwise=ew)


def table_rows(md):
    """Cells of every Markdown table row, header and separator lines dropped."""
    rows = []
    for line in md.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def check(md, what):
    """Measured value and verdict of the target row whose text starts with `what`."""
    hits = [r for r in table_rows(md) if r[0].startswith(what)]
    assert len(hits) == 1, (what, hits)
    return hits[0][2], hits[0][3]


@pytest.mark.parametrize("ratio, expected", [(2.9, "not met"), (3.1, "met"), (3.0, "met")])
def test_torch_ratio_at_batch_32(report, ratio, expected):
    md = report.render_markdown(make_results(vs_torch={32: ratio}), plots={})
    assert check(md, "training vaefast / PyTorch, batch 32") == (f"{ratio:.2f}x", expected)
    assert check(md, "training vaefast / PyTorch, batch 128")[1] == "met"


@pytest.mark.parametrize("batch, ratio, expected", [(128, 1.9, "not met"), (1024, 1.3, "met"),
                                                    (1024, 1.25, "not met")])
def test_torch_ratio_targets_per_batch(report, batch, ratio, expected):
    md = report.render_markdown(make_results(vs_torch={batch: ratio}), plots={})
    assert check(md, f"training vaefast / PyTorch, batch {batch}")[1] == expected


@pytest.mark.parametrize("ratio, expected", [(2.95, "not met"), (3.2, "met")])
def test_numpy_ratio_every_batch(report, ratio, expected):
    md = report.render_markdown(make_results(vs_numpy=ratio), plots={})
    for batch in (32, 128, 1024):
        assert check(md, f"training vaefast / NumPy, batch {batch}")[1] == expected


@pytest.mark.parametrize("gflops, expected", [(69.0, "not met"), (71.0, "met")])
def test_fraction_of_peak_at_1024(report, gflops, expected):
    md = report.render_markdown(make_results(gflops_1024=gflops), plots={})
    assert check(md, "training GFLOP/s as % of peak, batch 1024") == (f"{gflops:.1f} %", expected)
    row = next(r for r in table_rows(md) if r[0] == "1024" and len(r) == 8)
    assert row[-2:] == [f"{gflops:.1f}", f"{gflops:.1f} %"]  # GFLOP/s, % of peak


def test_warmed_peak_ratio_gives_gflops_and_fraction(report):
    """The one-thread warmed records, not samples/s over the run's sgemm,
    give the GFLOP/s and % of peak columns and the peak target."""
    results = make_results(gflops_1024=90.0)  # would be 90 % without the records
    results["peak_ratio"] = [dict(batch=b, best=0.7, median=0.65, train_gflops=120.0,
                                  sgemm_gflops=180.0, warm_steps=1200)
                             for b in (32, 128, 1024)]
    results["peak_ratio"][2].update(median=0.69, train_gflops=125.0)
    md = report.render_markdown(results, plots={})
    assert check(md, "training GFLOP/s as % of peak, batch 1024") == ("69.0 %", "not met")
    rows = {r[0]: r for r in table_rows(md) if len(r) == 8 and r[0].isdigit()}
    assert rows["1024"][-2:] == ["125.0", "69.0 %"]
    assert rows["128"][-2:] == ["120.0", "65.0 %"]
    assert rows["32"][1] == "10,000"  # samples/s still the run's own
    assert "after 1200 warm-up training steps" in md


def test_training_table_rows(report):
    md = report.render_markdown(make_results(), plots={})
    rows = {r[0]: r for r in table_rows(md) if len(r) == 8 and r[0].isdigit()}
    assert set(rows) == {"32", "128", "1024"}
    assert rows["32"][1:6] == ["10,000", "2,857", "2,000", "3.50x", "5.00x"]


def test_gemm_verdicts_per_row_and_summary(report):
    slow = lambda b, i, o: 1.2 if (b, i, o) == (32, 784, 400) else 1.5  # noqa: E731
    md = report.render_markdown(make_results(forward=slow, raw=0.89, square=0.81), plots={})
    gemm = {(r[0], r[1], r[2]): r for r in table_rows(md) if len(r) == 9}
    fwd = report.KIND_NAMES["forward"]
    assert gemm[("32", "784→400", fwd)][6:] == ["1.20x", "≥ 1.3x", "not met"]
    assert gemm[("128", "784→400", fwd)][6:] == ["1.50x", "≥ 1.3x", "met"]
    assert gemm[("1024", "20→400", report.KIND_NAMES["raw"])][-1] == "not met"
    assert gemm[("32", "400→40", report.KIND_NAMES["weight_grad"])][-2:] == ["—", "—"]
    sq = gemm[("—", "2048³", report.KIND_NAMES["sgemm"])]
    assert sq[3:] == ["81.0", "81.0 %", "100.0", "0.81x", "≥ 0.8x", "met"]
    measured, verdict = check(md, "GEMM forward")
    assert verdict == "not met" and "11/12 met" in measured and "784→400, batch 32" in measured
    assert check(md, "GEMM raw product")[1] == "not met"
    assert check(md, "GEMM square product") == ("0.81x (2048³)", "met")


def test_gemm_all_met(report):
    md = report.render_markdown(make_results(forward=1.31, raw=0.9, square=0.79), plots={})
    assert check(md, "GEMM forward")[1] == "met"
    assert check(md, "GEMM raw product")[1] == "met"
    assert check(md, "GEMM square product")[1] == "not met"


def test_page_states_the_machine(report):
    md = report.render_markdown(make_results(), plots={})
    for text in ("Test CPU 9000", "8 logical CPUs", "4 physical cores", "`avx2`",
                 "numpy 2.0.0", "torch 2.13.0", "openblas 0.3.27", "Haswell",
                 "2026-01-01", "100.0 GFLOP/s", "## How to reproduce", "bench/report.py",
                 "## Element-wise and random kernels", "adam-650k"):
        assert text in md, text
    assert "Smoke run" not in md


def test_without_torch_and_elementwise(report):
    md = report.render_markdown(make_results(torch=False, elementwise=False), plots={})
    assert check(md, "training vaefast / PyTorch, batch 32") == ("—", "n/a")
    assert check(md, "training vaefast / NumPy, batch 32")[1] == "met"
    assert "PyTorch samples/s" not in md and "## Element-wise" not in md


def test_write_report_with_plots(report, tmp_path):
    pytest.importorskip("matplotlib")
    paths = report.write_report(make_results(), str(tmp_path))
    names = sorted(Path(p).name for p in paths)
    assert names == ["benchmarks-elementwise.png", "benchmarks-gemm.png",
                     "benchmarks-training.png", "benchmarks.md"]
    for p in paths:
        if p.endswith(".png"):
            data = Path(p).read_bytes()
            assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    md = (tmp_path / "benchmarks.md").read_text(encoding="utf-8")
    assert "![gemm](benchmarks-gemm.png)" in md and "Plots skipped" not in md
    assert sorted(p.name for p in tmp_path.iterdir()) == names  # no temporary files left


def test_write_report_without_matplotlib(report, tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    paths = report.write_report(make_results(), str(tmp_path / "out"))
    assert [Path(p).name for p in paths] == ["benchmarks.md"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["benchmarks.md"]
    md = Path(paths[0]).read_text(encoding="utf-8")
    assert "Plots skipped: matplotlib is not installed" in md and "![" not in md


def test_quick_run_is_flagged(report):
    results = make_results()
    results["meta"]["quick"] = True
    assert "Smoke run" in report.render_markdown(results, plots=None)


def test_cpu_info(report):
    cpu = report.cpu_info()
    assert isinstance(cpu["model"], str) and cpu["model"]
    assert cpu["logical"] >= 1 and cpu["available"] >= 1
    assert cpu["physical"] is None or 1 <= cpu["physical"] <= cpu["logical"]


@pytest.mark.parametrize("args", [["--threads", "0"], ["--repeats", "0"]])
def test_rejects_nonpositive_counts(report, args):
    with pytest.raises(SystemExit):
        report.main(args)  # argparse errors out before anything is measured


def test_other_kernel_set_gets_its_own_tables_and_verdicts(report):
    results = make_results()
    slow = make_results(raw=0.5, square=0.4, gflops_1024=20.0)  # a slow set
    results["sets"] = {"generic": dict(
        train=[r for r in slow["train"] if r["framework"] == "vaefast"], gemm=slow["gemm"])}
    md = report.render_markdown(results, plots={})
    main, _, other = md.partition("## Kernel set `generic`")
    assert other, "no section for the second kernel set"
    assert "also measured: `generic`" in main
    # the default set's verdicts, then the slow set's, each from its own records
    assert check(main, "GEMM square product vs OpenBLAS") == ("0.85x (2048³)", "met")
    assert check(other, "GEMM square product vs OpenBLAS") == ("0.40x (2048³)", "not met")
    # the slow set's training ratio uses the run's PyTorch numbers (made for the fast set)
    fast_1024 = 80.0e9 / 3.28e6
    torch_1024 = fast_1024 / 1.5
    want = (20.0e9 / 3.28e6) / torch_1024
    assert check(other, "training vaefast / PyTorch, batch 1024") == (f"{want:.2f}x", "not met")
    assert "### GEMM per layer shape, `generic`" in other


def test_kernel_sets_default_first_and_rejects_unsupported(report):
    import vaefast

    sets = report.kernel_sets()
    assert sets[0] == vaefast.isa() and sorted(sets) == sorted(vaefast.supported_isas())
    assert report.kernel_sets(["generic"]) == ["generic"]
    with pytest.raises(ValueError, match="not supported"):
        report.kernel_sets(["no-such-set"])


def bf16_records(route="native", vs_fp32=None, vs_autocast=1.8, threads=1):
    """bench_bf16_model.measure-shaped records; vaefast bf16 set by the ratios."""
    vs_fp32 = {32: 1.35, 128: 1.7, 1024: 1.5, 8192: 1.9, **(vs_fp32 or {})}
    out = []
    for kind, batch in (("train", 32), ("train", 128), ("train", 1024), ("encode", 8192)):
        fp32 = 1000.0 * batch
        bf16 = fp32 * vs_fp32[batch]
        for fw, precision, rate, label in (
                ("vaefast", "fp32", fp32, f"vaefast {route}"),
                ("vaefast", "bf16", bf16, f"vaefast {route}"),
                ("torch", "fp32", fp32 / 3, "torch 2.13.0"),
                ("torch", "bf16", bf16 / vs_autocast, "torch 2.13.0")):
            out.append(dict(framework=fw, label=label, kind=kind, precision=precision,
                            batch=batch, threads=threads, samples_per_s=rate))
    return out


def test_bf16_section_ratios_and_verdicts(report):
    results = make_results()
    results["bf16"] = bf16_records()
    md = report.render_markdown(results, plots={})
    _, _, bf16 = md.partition("## bf16 and float32")
    assert bf16, "no bf16 section"
    rows = {r[0]: r for r in table_rows(bf16)}
    # batch 128: vaefast fp32 128,000/s, bf16 1.7x that, PyTorch fp32 a third of fp32
    assert rows["train, batch 128"][1:] == ["128,000", "217,600", "1.70x", "42,667", "120,889",
                                            "1.80x"]
    assert rows["encode 8,192 rows"][3] == "1.90x"
    assert check(bf16, "bf16 batch 32: vaefast bf16 / fp32") == ("1.35x", "met")
    assert check(bf16, "bf16 batch 1024: vaefast bf16 / fp32") == ("1.50x", "not met")
    assert check(bf16, "bf16 batch 1024: vaefast bf16 / PyTorch") == ("1.80x", "met")
    assert check(bf16, "bf16 encode: vaefast bf16 / fp32") == ("1.90x", "met")
    assert "route: vaefast native" in bf16


def test_bf16_section_on_an_emulating_set_has_no_verdicts(report):
    results = make_results()
    results["bf16"] = bf16_records()
    own = [r for r in bf16_records(route="emulated", vs_fp32={32: 0.01, 128: 0.01, 1024: 0.01,
                                                               8192: 0.01})
           if r["framework"] == "vaefast"]
    results["sets"] = {"generic": dict(train=[r for r in results["train"]
                                              if r["framework"] == "vaefast"],
                                       gemm=results["gemm"], bf16=own)}
    md = report.render_markdown(results, plots={})
    _, _, other = md.partition("## Kernel set `generic`")
    _, _, bf16 = other.partition("### bf16 and float32, `generic`")
    assert "scalar emulation" in bf16
    assert check(bf16, "bf16 batch 128: vaefast bf16 / fp32") == ("0.01x", "n/a (emulated)")
    # the emulating set's own vaefast rows, beside the run's PyTorch ones
    rows = {r[0]: r for r in table_rows(bf16)}
    assert rows["train, batch 32"][1:3] == ["32,000", "320"]
    assert rows["train, batch 32"][4] == "10,667"


def test_no_bf16_section_without_records(report):
    md = report.render_markdown(make_results(), plots={})
    assert "## bf16 and float32" not in md
