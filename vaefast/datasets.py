"""Datasets for trying vaefast: scikit-learn's digits and Fashion-MNIST.

Both come back as float32 in [0, 1], ready for the Bernoulli likelihood.
"""

import gzip
import os

import numpy as np

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IDX_UBYTE = 0x08  # the only element type MNIST-style files use


def load_digits(return_y=False):
    """scikit-learn's 8×8 digits (1797 × 64), scaled from 0..16 to [0, 1].

    Parameters
    ----------
    return_y : bool
        Also return the digit labels (int64, shape (1797,)).

    Returns
    -------
    X : ndarray, float32, shape (1797, 64)
    y : ndarray, shape (1797,), only with ``return_y=True``
    """
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:
        raise ImportError('load_digits needs scikit-learn: pip install "vaefast[sklearn]"') from None
    bunch = sk_load_digits()
    X = (bunch.data / 16.0).astype(np.float32)
    return (X, bunch.target) if return_y else X


def read_idx(path):
    """Read one IDX file (optionally gzip-compressed) of unsigned bytes.

    The format: two zero bytes, the element type (0x08 = unsigned byte), the
    number of dimensions, one big-endian uint32 per dimension, then the data.

    Raises
    ------
    ValueError
        If the header or the data length does not match the format.
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    if data[2] != _IDX_UBYTE:
        raise ValueError(f"{path}: IDX element type {data[2]:#04x} is not unsigned byte")
    ndim = data[3]
    if ndim < 1 or len(data) < 4 + 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    body = data[4 + 4 * ndim:]
    if len(body) != int(np.prod(shape, dtype=np.int64)):
        raise ValueError(f"{path}: IDX header promises shape {shape} "
                         f"({int(np.prod(shape))} bytes) but {len(body)} bytes follow")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def load_fashion_mnist(path=None, kind="train"):
    """Fashion-MNIST from the four IDX .gz files (Debian: dataset-fashion-mnist).

    Parameters
    ----------
    path : str, optional
        Folder holding the files; default /usr/share/datasets/fashion-mnist.
    kind : {"train", "test"}
        60000 training or 10000 test images.

    Returns
    -------
    X : ndarray, float32, shape (n, 784), in [0, 1]
    y : ndarray, uint8, shape (n,)
    """
    if kind not in _FASHION_FILES:
        raise ValueError(f"kind must be 'train' or 'test', got {kind!r}")
    folder = FASHION_MNIST_DIR if path is None else os.fspath(path)
    image_file, label_file = (os.path.join(folder, f) for f in _FASHION_FILES[kind])
    for f in (image_file, label_file):
        if not os.path.exists(f):
            raise FileNotFoundError(
                f"{f} not found: install Debian's package (apt-get install dataset-fashion-mnist) "
                "or pass path= the folder holding the IDX .gz files")
    images, labels = read_idx(image_file), read_idx(label_file)
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"{folder}: images {images.shape} and labels {labels.shape} do not match")
    X = images.reshape(images.shape[0], -1).astype(np.float32) / np.float32(255)
    return X, labels.copy()
