"""A minimal grayscale PNG writer (no matplotlib or Pillow needed)."""

import struct
import zlib

import numpy as np


def _chunk(kind, payload):
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def write_png(path, image):
    """Write a 2-D array of values in [0, 1] as an 8-bit grayscale PNG.

    Parameters
    ----------
    path : str or os.PathLike
    image : array_like, shape (height, width)
        Values are clipped to [0, 1].
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2 or img.size == 0:
        raise ValueError(f"image must be a non-empty 2-D array, got shape {img.shape}")
    pixels = np.round(np.clip(np.nan_to_num(img), 0, 1) * 255).astype(np.uint8)
    height, width = pixels.shape
    # each scanline starts with filter type 0 (none)
    raw = np.hstack([np.zeros((height, 1), np.uint8), pixels]).tobytes()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(data)


def image_grid(images, side, columns, pad=1, scale=4):
    """Tile rows of flattened (side × side) images into one 2-D array,
    each pixel enlarged to a scale × scale block."""
    images = np.asarray(images).reshape(-1, side, side)
    rows = -(-len(images) // columns)
    grid = np.ones((rows * (side + pad) + pad, columns * (side + pad) + pad))
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        top, left = pad + r * (side + pad), pad + c * (side + pad)
        grid[top:top + side, left:left + side] = img
    return np.kron(grid, np.ones((scale, scale)))
