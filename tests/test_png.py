import struct
import zlib

import numpy as np
import pytest

from vaefast.io import png as _png


def decode_png(path):
    """Independent decoder for 8-bit grayscale, filter-0 PNGs: checks signature and CRCs."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        chunks.append((kind, body))
        pos += 12 + n
    assert [c[0] for c in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    w, h, depth, color, comp, filt, inter = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, color, comp, filt, inter) == (8, 0, 0, 0, 0)
    raw = np.frombuffer(zlib.decompress(chunks[1][1]), np.uint8).reshape(h, w + 1)
    assert np.all(raw[:, 0] == 0)  # filter byte None on every row
    return raw[:, 1:]


def test_roundtrip_float(tmp_path):
    img = np.random.default_rng(0).random((7, 13))
    p = _png.write_png(tmp_path / "a.png", img)
    got = decode_png(p)
    np.testing.assert_array_equal(got, np.round(img * 255).astype(np.uint8))


def test_roundtrip_uint8_and_clip(tmp_path):
    img = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    np.testing.assert_array_equal(decode_png(_png.write_png(tmp_path / "b.png", img)), img)
    clipped = decode_png(_png.write_png(tmp_path / "c.png", np.array([[-1.0, 2.0, 0.5]])))
    np.testing.assert_array_equal(clipped, [[0, 255, 128]])


def test_bad_shape(tmp_path):
    with pytest.raises(ValueError, match="2-D"):
        _png.write_png(tmp_path / "d.png", np.zeros(5))


def test_tile():
    imgs = np.stack([np.full(4, i + 1.0) for i in range(3)])
    g = _png.tile(imgs, 2, 2, 2, pad=1)
    assert g.shape == (7, 7)
    assert np.all(g[1:3, 1:3] == 1) and np.all(g[1:3, 4:6] == 2) and np.all(g[4:6, 1:3] == 3)
    assert np.all(g[4:6, 4:6] == 0) and np.all(g[0] == 0)
