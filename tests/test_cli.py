"""The command line demo and the PNG writer."""

import struct
import zlib

import numpy as np
import pytest

from vaefast import cli
from vaefast._png import image_grid, write_png


def read_png(path):
    """Decode our own 8-bit grayscale PNGs, checking signature and CRCs."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, payload = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + payload) & 0xFFFFFFFF
        chunks[kind] = chunks.get(kind, b"") + payload
        pos += 12 + length
    width, height, depth, color = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, color) == (8, 0)
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(height, width + 1)
    assert np.all(raw[:, 0] == 0)
    return raw[:, 1:]


def test_png_round_trip(tmp_path):
    img = np.linspace(0, 1, 35).reshape(5, 7)
    write_png(tmp_path / "a.png", img)
    np.testing.assert_array_equal(read_png(tmp_path / "a.png"), np.round(img * 255).astype(np.uint8))


def test_png_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="image"):
        write_png(tmp_path / "a.png", np.zeros(5))


def test_image_grid_layout():
    imgs = np.arange(3 * 4).reshape(3, 4) / 11.0  # three 2x2 images
    grid = image_grid(imgs, 2, columns=2, pad=1, scale=1)
    assert grid.shape == (7, 7)
    np.testing.assert_array_equal(grid[1:3, 4:6], imgs[1].reshape(2, 2))


def test_demo_in_process(tmp_path, capsys):
    pytest.importorskip("sklearn")
    assert cli.main(["demo", "--epochs", "3", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [int(r[0]) for r in rows[:3]] == [1, 2, 3]
    val_losses = [float(r[4]) for r in rows[:3]]
    assert val_losses[-1] < val_losses[0]  # it learns
    for name in ("samples.png", "reconstructions.png", "digits.vae"):
        assert f"wrote {tmp_path / name}" in out
    assert read_png(tmp_path / "samples.png").shape == (4 * 73, 4 * 73)


def test_demo_as_module(tmp_path, run_python):
    pytest.importorskip("sklearn")
    result = run_python("import sys, runpy; sys.argv = ['vaefast', 'demo', '--epochs', '2', "
                        f"'--out', {str(tmp_path / 'o')!r}]; runpy.run_module('vaefast', run_name='__main__')")
    assert result.returncode == 0, result.stderr
    assert "samples.png" in result.stdout


def test_bad_epochs_exit_code(capsys):
    assert cli.main(["demo", "--epochs", "0"]) == 2
    assert "--epochs" in capsys.readouterr().err


def test_module_runs_from_the_source_checkout(request, tmp_path):
    """`python -m vaefast demo` in the repository root (the README's command)
    must use the installed compiled core, not fail on the source folder."""
    import os
    import subprocess
    import sys

    pytest.importorskip("sklearn")
    env = dict(os.environ)
    env.pop("VAEFAST_ISA", None)
    result = subprocess.run([sys.executable, "-m", "vaefast", "demo", "--epochs", "1",
                             "--out", str(tmp_path)], cwd=request.config.rootpath, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout
