"""Small data sets for examples and the demo: scikit-learn digits, Fashion-MNIST IDX files."""

import gzip
import os
import struct

from typing import Literal, Optional, Union, overload

import numpy as np
from numpy.typing import NDArray

from ._typing import F32, I64

U8 = NDArray[np.uint8]

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


@overload
def load_digits(return_y: Literal[False] = False) -> F32: ...
@overload
def load_digits(return_y: Literal[True]) -> tuple[F32, I64]: ...
def load_digits(return_y: bool = False) -> Union[F32, tuple[F32, I64]]:
    """The 8×8 handwritten digits of scikit-learn, scaled to [0, 1].

    Parameters
    ----------
    return_y : bool
        Also return the labels.

    Returns
    -------
    X : ndarray of float32, shape (1797, 64)
        Pixel intensities divided by 16.
    y : ndarray of int, shape (1797,)
        Only when `return_y` is true.
    """
    try:
        from sklearn.datasets import load_digits as _load
    except ImportError:
        raise ImportError('load_digits needs scikit-learn: pip install "vaefast[sklearn]"') from None
    d = _load()
    X = (d.data / 16.0).astype(np.float32)
    return (X, d.target) if return_y else X


def _read_idx(path: str, magic: int, ndim: int) -> U8:
    """Read one gzipped IDX file; check magic number, dimensions and byte count."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 + 4 * ndim:
        raise ValueError(f"{path}: too short for an IDX header ({len(data)} bytes)")
    (m,) = struct.unpack(">I", data[:4])
    if m != magic:
        raise ValueError(f"{path}: IDX magic number {m}, expected {magic}")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    body = data[4 + 4 * ndim:]
    expected = int(np.prod(dims))
    if len(body) != expected:
        raise ValueError(f"{path}: {len(body)} data bytes, header dims {dims} need {expected}")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def load_fashion_mnist(path: "Optional[str | os.PathLike[str]]" = None,
                       kind: Literal["train", "test"] = "train") -> tuple[F32, U8]:
    """Fashion-MNIST from its IDX .gz files.

    Parameters
    ----------
    path : str or os.PathLike, optional
        Folder holding the files (default /usr/share/datasets/fashion-mnist,
        where the Debian package ``dataset-fashion-mnist`` installs them).
    kind : {"train", "test"}

    Returns
    -------
    X : ndarray of float32, shape (n, 784)
        Pixels divided by 255.
    y : ndarray of uint8, shape (n,)
    """
    if kind not in _FASHION_FILES:
        raise ValueError(f"kind must be 'train' or 'test', got {kind!r}")
    folder = FASHION_MNIST_DIR if path is None else os.fspath(path)
    img_name, lab_name = _FASHION_FILES[kind]
    paths = [os.path.join(folder, img_name), os.path.join(folder, lab_name)]
    for p in paths:
        if not os.path.exists(p):
            raise FileNotFoundError(
                f"Fashion-MNIST file not found: {p} (install it with "
                "'apt-get install dataset-fashion-mnist' or pass path= to a folder "
                f"holding {img_name} and {lab_name})")
    images = _read_idx(paths[0], 2051, 3)
    labels = _read_idx(paths[1], 2049, 1)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels")
    X = (images.reshape(images.shape[0], -1) / np.float32(255.0)).astype(np.float32)
    return X, labels.copy()
