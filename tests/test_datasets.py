import gzip
import os
import struct

import numpy as np
import pytest

from vaefast import datasets


def write_idx(path, magic, arr, dims=None):
    dims = arr.shape if dims is None else dims
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + struct.pack(">" + "I" * len(dims), *dims)
                + arr.astype(np.uint8).tobytes())


def make_fashion(folder, n=5, kind="train"):
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, size=(n, 28, 28))
    labs = rng.integers(0, 10, size=n)
    a, b = datasets._FASHION_FILES[kind]
    write_idx(os.path.join(folder, a), 2051, imgs)
    write_idx(os.path.join(folder, b), 2049, labs)
    return imgs, labs


@pytest.mark.parametrize("kind", ["train", "test"])
def test_fashion_tiny(tmp_path, kind):
    imgs, labs = make_fashion(tmp_path, kind=kind)
    X, y = datasets.load_fashion_mnist(tmp_path, kind=kind)
    assert X.dtype == np.float32 and X.shape == (5, 784) and y.dtype == np.uint8
    np.testing.assert_allclose(X, imgs.reshape(5, -1) / 255.0, rtol=1e-6)  # float32 rounding
    np.testing.assert_array_equal(y, labs)


def test_fashion_bad_magic(tmp_path):
    make_fashion(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", 2049, np.zeros((5, 28, 28)))
    with pytest.raises(ValueError, match="magic"):
        datasets.load_fashion_mnist(tmp_path)


def test_fashion_truncated(tmp_path):
    make_fashion(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", 2051, np.zeros((5, 28, 27)), dims=(5, 28, 28))
    with pytest.raises(ValueError, match="bytes"):
        datasets.load_fashion_mnist(tmp_path)


def test_fashion_label_count_mismatch(tmp_path):
    make_fashion(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", 2049, np.zeros(4))
    with pytest.raises(ValueError, match="labels"):
        datasets.load_fashion_mnist(tmp_path)


def test_fashion_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        datasets.load_fashion_mnist(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="kind"):
        datasets.load_fashion_mnist(tmp_path, kind="val")


def test_fashion_real():
    a = os.path.join(datasets.FASHION_MNIST_DIR, datasets._FASHION_FILES["test"][0])
    if not os.path.exists(a):
        pytest.skip(f"{a} not installed (apt-get install dataset-fashion-mnist)")
    X, y = datasets.load_fashion_mnist(kind="test")
    assert X.shape == (10000, 784) and y.shape == (10000,)
    assert 0 <= X.min() and X.max() <= 1 and set(np.unique(y)) == set(range(10))


def test_digits():
    pytest.importorskip("sklearn")
    X, y = datasets.load_digits(return_y=True)
    assert X.shape == (1797, 64) and X.dtype == np.float32
    assert X.min() == 0 and X.max() == 1 and len(y) == 1797
