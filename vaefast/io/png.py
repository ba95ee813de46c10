"""A tiny grayscale PNG writer (zlib + struct + CRC), so the demo needs no matplotlib."""

import struct
import zlib

import os
from typing import Union

import numpy as np

from .._typing import ArrayLike, F64


def _chunk(kind: bytes, data: bytes) -> bytes:
    # Each chunk: length, type, data, CRC-32 over type + data.
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def write_png(path: "Union[str, os.PathLike[str]]", image: ArrayLike) -> str:
    """Write a 2-D array as an 8-bit grayscale PNG.

    Parameters
    ----------
    path : str or path-like
        Output file.
    image : array_like, shape (height, width)
        Floats in [0, 1] (clipped, scaled to 0..255) or uint8 values.

    Returns
    -------
    str
        The path written.
    """
    a = np.asarray(image)
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"image must be a non-empty 2-D array, got shape {a.shape}")
    if a.dtype != np.uint8:
        a = np.clip(np.nan_to_num(a.astype(np.float64)), 0.0, 1.0)
        a = np.round(a * 255.0).astype(np.uint8)
    h, w = a.shape
    # Filter type 0 (None) byte in front of every scanline.
    raw = np.hstack([np.zeros((h, 1), np.uint8), a]).tobytes()
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)  # 8-bit, grayscale
    data = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def tile(images: ArrayLike, rows: int, cols: int, side: int,
         pad: int = 1) -> F64:
    """Arrange flat square images into a grid (rows × cols) with `pad` pixels of gap.

    Parameters
    ----------
    images : array_like, shape (k, side*side)
        At most rows*cols images; missing cells stay black.
    rows, cols, side, pad : int

    Returns
    -------
    ndarray of float64, shape (rows*(side+pad)+pad, cols*(side+pad)+pad)
    """
    imgs = np.asarray(images, dtype=np.float64).reshape(-1, side, side)
    out = np.zeros((rows * (side + pad) + pad, cols * (side + pad) + pad))
    for i, im in enumerate(imgs[: rows * cols]):
        r, c = divmod(i, cols)
        y, x = pad + r * (side + pad), pad + c * (side + pad)
        out[y:y + side, x:x + side] = im
    return out
