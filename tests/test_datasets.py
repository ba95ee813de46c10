"""Dataset loaders: the IDX reader on files written here, and the real data."""

import gzip
import os
import struct

import numpy as np
import pytest

from vaefast import datasets


def write_idx(path, array, magic_type=0x08):
    header = bytes([0, 0, magic_type, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def make_fashion(folder, n=5, kind_names=("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28))
    labels = rng.integers(0, 10, size=n)
    write_idx(folder / kind_names[0], images)
    write_idx(folder / kind_names[1], labels)
    return images, labels


def test_read_fashion_from_written_files(tmp_path):
    images, labels = make_fashion(tmp_path)
    X, y = datasets.load_fashion_mnist(tmp_path)
    assert X.dtype == np.float32 and X.shape == (5, 784)
    np.testing.assert_allclose(X, images.reshape(5, -1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, labels)


@pytest.mark.parametrize("corrupt, match", [
    (lambda b: b"\x01" + b[1:], "magic"),
    (lambda b: b[:2] + b"\x0d" + b[3:], "element type"),
    (lambda b: b[:-3], "promises shape"),
    (lambda b: b[:6], "truncated"),
])
def test_idx_format_checks(tmp_path, corrupt, match):
    raw = bytes([0, 0, 8, 2]) + struct.pack(">II", 2, 3) + bytes(range(6))
    path = tmp_path / "x.idx"
    path.write_bytes(corrupt(raw))
    with pytest.raises(ValueError, match=match):
        datasets.read_idx(path)


def test_missing_files_explain_how_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        datasets.load_fashion_mnist(tmp_path)
    with pytest.raises(ValueError, match="kind"):
        datasets.load_fashion_mnist(tmp_path, kind="validation")


def test_real_fashion_mnist():
    if not os.path.exists(os.path.join(datasets.FASHION_MNIST_DIR, "t10k-images-idx3-ubyte.gz")):
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    X, y = datasets.load_fashion_mnist(kind="test")
    assert X.shape == (10000, 784) and y.shape == (10000,)
    assert 0 <= X.min() and X.max() <= 1 and set(np.unique(y)) == set(range(10))


def test_load_digits():
    pytest.importorskip("sklearn")
    X, y = datasets.load_digits(return_y=True)
    assert X.shape == (1797, 64) and X.dtype == np.float32
    assert X.min() == 0 and X.max() == 1 and y.shape == (1797,)
