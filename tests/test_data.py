"""Tests for `pixel_keras.data`.

The Fashion-MNIST tests read the real IDX files of the Debian package
`dataset-fashion-mnist` and check them against an independent gzip + NumPy
read; other tests write tiny IDX files to `tmp_path`. TFDS data sets are
mocked with `tfds.testing.mock_data`, which needs no network: it builds
random examples from the feature specs that ship with the TFDS code.
"""

import dataclasses
import gzip
import os
import re
import struct

import numpy as np
import pytest
import tensorflow as tf

from pixel_keras import data, idx

REAL_FASHION_DIR = "/usr/share/datasets/fashion-mnist"
needs_real_fashion = pytest.mark.skipif(
    not os.path.isfile(os.path.join(REAL_FASHION_DIR, "train-images-idx3-ubyte.gz")),
    reason=(
        f"{REAL_FASHION_DIR} is missing; `apt-get install dataset-fashion-mnist` "
        "provides the real Fashion-MNIST files."
    ),
)


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def write_idx(path, array, compress=True):
    """Writes a uint8 array as an IDX file: magic 0x0000080R, dims, bytes."""
    array = np.asarray(array, np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    payload = header + array.tobytes()
    if compress:
        with gzip.open(f"{path}.gz", "wb") as f:
            f.write(payload)
        return f"{path}.gz"
    with open(path, "wb") as f:
        f.write(payload)
    return str(path)


def write_fashion_dir(directory, num_train=6, num_test=4, compress=True, seed=0):
    """Writes tiny 3x5 Fashion-MNIST-style IDX files; returns the arrays."""
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, prefix, num in (
        ("train", "train", num_train),
        ("test", "t10k", num_test),
    ):
        images = rng.integers(0, 256, size=(num, 3, 5), dtype=np.uint8)
        labels = rng.integers(0, 10, size=(num,), dtype=np.uint8)
        write_idx(
            os.path.join(directory, f"{prefix}-images-idx3-ubyte"), images, compress
        )
        write_idx(
            os.path.join(directory, f"{prefix}-labels-idx1-ubyte"), labels, compress
        )
        arrays[split] = (images[..., None], labels.astype(np.int64))
    return arrays


def read_gz_idx(path, header_size):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=header_size)


@pytest.fixture
def no_default_dirs(monkeypatch):
    """Hides the system Fashion-MNIST directory and `PIXEL_KERAS_DATA_DIR`."""
    monkeypatch.setattr(idx, "FASHION_MNIST_SYSTEM_DIRS", ())
    monkeypatch.delenv(data.ENV_DATA_DIR, raising=False)


@pytest.fixture(scope="module")
def tfds():
    import tensorflow_datasets

    return tensorflow_datasets


# --------------------------------------------------------------------------
# Real Fashion-MNIST
# --------------------------------------------------------------------------


@needs_real_fashion
def test_real_fashion_mnist_matches_independent_read(monkeypatch):
    monkeypatch.delenv(data.ENV_DATA_DIR, raising=False)
    train = data.load("fashion_mnist", split="train")
    test = data.load("fashion_mnist", split="test")
    assert int(train.cardinality()) == 60000
    assert int(test.cardinality()) == 10000
    assert train.element_spec["images"].shape == (28, 28, 1)
    assert train.element_spec["images"].dtype == tf.uint8
    assert train.element_spec["labels"].dtype == tf.int64

    images, labels = data.to_numpy(test)
    assert images.shape == (10000, 28, 28, 1)
    assert images.dtype == np.uint8
    assert labels.dtype == np.int64
    # Independent read: 16-byte image header, 8-byte label header.
    raw_images = read_gz_idx(f"{REAL_FASHION_DIR}/t10k-images-idx3-ubyte.gz", 16)
    raw_labels = read_gz_idx(f"{REAL_FASHION_DIR}/t10k-labels-idx1-ubyte.gz", 8)
    np.testing.assert_array_equal(images.reshape(-1), raw_images)
    np.testing.assert_array_equal(labels, raw_labels)
    # Fashion-MNIST is balanced: 1000 test images per class.
    np.testing.assert_array_equal(np.bincount(labels), [1000] * 10)


@needs_real_fashion
def test_real_fashion_mnist_train_statistics(monkeypatch):
    monkeypatch.delenv(data.ENV_DATA_DIR, raising=False)
    images, labels = data.to_numpy(data.load("fashion_mnist"))
    assert images.shape == (60000, 28, 28, 1)
    assert labels.min() == 0 and labels.max() == 9
    np.testing.assert_array_equal(np.bincount(labels), [6000] * 10)
    raw_images = read_gz_idx(f"{REAL_FASHION_DIR}/train-images-idx3-ubyte.gz", 16)
    raw_labels = read_gz_idx(f"{REAL_FASHION_DIR}/train-labels-idx1-ubyte.gz", 8)
    assert labels[0] == raw_labels[0]
    assert int(images[0].sum()) == int(raw_images[:784].astype(np.int64).sum())
    assert int(images.sum(dtype=np.int64)) == int(raw_images.sum(dtype=np.int64))


@needs_real_fashion
def test_real_fashion_mnist_info(monkeypatch):
    monkeypatch.delenv(data.ENV_DATA_DIR, raising=False)
    info = data.get_info("fashion_mnist")
    assert info == data.DatasetInfo(
        name="fashion_mnist",
        image_shape=(28, 28, 1),
        num_levels=256,
        num_classes=10,
        split_sizes={"train": 60000, "test": 10000},
    )


# --------------------------------------------------------------------------
# Fashion-MNIST file search and IDX parsing (tiny files)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False], ids=["gz", "raw"])
@pytest.mark.parametrize("subdir", ["", "fashion-mnist"])
def test_fashion_mnist_data_dir(tmp_path, no_default_dirs, compress, subdir):
    arrays = write_fashion_dir(tmp_path / subdir, compress=compress)
    for split in ("train", "test"):
        images, labels = data.to_numpy(
            data.load("fashion_mnist", split=split, data_dir=tmp_path)
        )
        np.testing.assert_array_equal(images, arrays[split][0])
        np.testing.assert_array_equal(labels, arrays[split][1])
    info = data.get_info("fashion_mnist", data_dir=tmp_path)
    assert info.image_shape == (3, 5, 1)
    assert info.split_sizes == {"train": 6, "test": 4}


@pytest.mark.parametrize("subdir", ["", "fashion-mnist"])
def test_fashion_mnist_env_var(tmp_path, no_default_dirs, monkeypatch, subdir):
    arrays = write_fashion_dir(tmp_path / subdir, num_test=7)
    monkeypatch.setenv(data.ENV_DATA_DIR, str(tmp_path))
    images, labels = data.to_numpy(data.load("fashion_mnist", split="test"))
    np.testing.assert_array_equal(images, arrays["test"][0])
    np.testing.assert_array_equal(labels, arrays["test"][1])


def test_fashion_mnist_data_dir_comes_before_env_var(
    tmp_path, no_default_dirs, monkeypatch
):
    write_fashion_dir(tmp_path / "arg", num_train=3)
    write_fashion_dir(tmp_path / "env", num_train=5)
    monkeypatch.setenv(data.ENV_DATA_DIR, str(tmp_path / "env"))
    assert int(data.load("fashion_mnist").cardinality()) == 5
    ds = data.load("fashion_mnist", data_dir=tmp_path / "arg")
    assert int(ds.cardinality()) == 3


def test_fashion_mnist_bad_magic(tmp_path, no_default_dirs):
    write_fashion_dir(tmp_path)
    bad = np.zeros((6, 3, 5), np.uint8)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:  # Label magic (rank 1) on an image file.
        f.write(bytes([0, 0, 8, 1]) + struct.pack(">I", 90) + bad.tobytes())
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz.*magic"):
        data.load("fashion_mnist", data_dir=tmp_path)


def test_fashion_mnist_truncated_data(tmp_path, no_default_dirs):
    write_fashion_dir(tmp_path, compress=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.*truncated"):
        data.load("fashion_mnist", split="test", data_dir=tmp_path)


def test_fashion_mnist_truncated_header(tmp_path, no_default_dirs):
    write_fashion_dir(tmp_path, compress=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1, 0]))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.*truncated"):
        data.load("fashion_mnist", split="test", data_dir=tmp_path)


def test_fashion_mnist_truncated_gzip(tmp_path, no_default_dirs):
    write_fashion_dir(tmp_path)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz"):
        data.load("fashion_mnist", data_dir=tmp_path)


def test_fashion_mnist_count_mismatch(tmp_path, no_default_dirs):
    write_fashion_dir(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match="6 images.*2 labels"):
        data.load("fashion_mnist", data_dir=tmp_path)


def test_fashion_mnist_rewritten_file_is_reread(tmp_path, no_default_dirs):
    write_fashion_dir(tmp_path, num_test=4)
    assert int(data.load("fashion_mnist", "test", data_dir=tmp_path).cardinality()) == 4
    write_fashion_dir(tmp_path, num_test=2, seed=1)
    assert int(data.load("fashion_mnist", "test", data_dir=tmp_path).cardinality()) == 2


def test_fashion_mnist_unavailable(tmp_path, no_default_dirs):
    with pytest.raises(
        data.DataUnavailableError, match="apt-get install dataset-fashion-mnist"
    ) as info:
        data.load("fashion_mnist", data_dir=tmp_path, download=False)
    assert isinstance(info.value, RuntimeError)
    assert info.value.__cause__ is not None
    assert data.ENV_DATA_DIR in str(info.value)


def test_idx_load_fashion_mnist_reads_the_arrays(tmp_path, no_default_dirs):
    arrays = write_fashion_dir(tmp_path)
    for split in ("train", "test"):
        images, labels = idx.load_fashion_mnist(split, data_dir=tmp_path)
        np.testing.assert_array_equal(images, arrays[split][0])
        np.testing.assert_array_equal(labels, arrays[split][1])
        assert images.dtype == np.uint8 and labels.dtype == np.int64


def test_idx_load_fashion_mnist_bad_split_and_missing_files(tmp_path, no_default_dirs):
    with pytest.raises(
        ValueError, match=r"`split` must be one of .*Received: split='test\[:5\]'"
    ):
        idx.load_fashion_mnist("test[:5]", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        idx.load_fashion_mnist("test", data_dir=tmp_path)


def test_idx_module_imports_neither_tensorflow_nor_keras():
    import subprocess
    import sys

    code = (
        "import sys, pixel_keras.idx; "
        "print(any(m in sys.modules for m in ('tensorflow', 'keras')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_fashion_mnist_falls_back_to_tfds(tmp_path, no_default_dirs, tfds):
    with tfds.testing.mock_data(num_examples=3):
        images, labels = data.to_numpy(data.load("fashion_mnist", "test"))
    assert images.shape == (3, 28, 28, 1)
    assert images.dtype == np.uint8
    assert labels.shape == (3,)


# --------------------------------------------------------------------------
# Digits
# --------------------------------------------------------------------------


def test_digits_split():
    from sklearn.datasets import load_digits

    digits = load_digits()
    permutation = np.random.default_rng(0).permutation(1797)
    train_x, train_y = data.to_numpy(data.load("digits", "train"))
    test_x, test_y = data.to_numpy(data.load("digits", "test"))
    assert train_x.shape == (1500, 8, 8, 1) and test_x.shape == (297, 8, 8, 1)
    assert train_x.dtype == np.uint8 and train_y.dtype == np.int64
    assert train_x.min() == 0 and max(train_x.max(), test_x.max()) == 16
    assert set(np.unique(train_y)) == set(range(10))
    np.testing.assert_array_equal(train_y, digits.target[permutation[:1500]])
    np.testing.assert_array_equal(test_y, digits.target[permutation[1500:]])
    np.testing.assert_array_equal(
        test_x[..., 0], digits.images[permutation[1500:]].astype(np.uint8)
    )
    # Deterministic across calls.
    again_x, again_y = data.to_numpy(data.load("digits", "test"))
    np.testing.assert_array_equal(again_x, test_x)
    np.testing.assert_array_equal(again_y, test_y)


def test_digits_info():
    assert data.get_info("digits") == data.DatasetInfo(
        name="digits",
        image_shape=(8, 8, 1),
        num_levels=17,
        num_classes=10,
        split_sizes={"train": 1500, "test": 297},
    )


# --------------------------------------------------------------------------
# Binarization
# --------------------------------------------------------------------------


def test_binarized_digits_thresholds_at_8():
    images, _ = data.to_numpy(data.load("digits", "test"))
    binary, labels = data.to_numpy(data.load("binarized_digits", "test"))
    assert set(np.unique(binary)) == {0, 1}
    assert binary.dtype == np.uint8
    np.testing.assert_array_equal(binary, (images >= 8).astype(np.uint8))
    assert labels.shape == (297,)
    info = data.get_info("binarized_digits")
    assert info.num_levels == 2 and info.name == "binarized_digits"


def test_binarized_fashion_mnist_thresholds_at_128(tmp_path, no_default_dirs):
    write_fashion_dir(tmp_path)
    edge = np.array([[[0, 1, 127, 128, 255]] * 3], np.uint8)  # [1, 3, 5]
    write_idx(tmp_path / "t10k-images-idx3-ubyte", edge)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([4], np.uint8))
    binary, labels = data.to_numpy(
        data.load("binarized_fashion_mnist", "test", data_dir=tmp_path)
    )
    np.testing.assert_array_equal(binary[0, 0, :, 0], [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(labels, [4])


@needs_real_fashion
def test_binarized_real_fashion_mnist(monkeypatch):
    monkeypatch.delenv(data.ENV_DATA_DIR, raising=False)
    binary, _ = data.to_numpy(data.load("binarized_fashion_mnist", "test[:500]"))
    assert binary.shape == (500, 28, 28, 1)
    assert set(np.unique(binary)) == {0, 1}


# --------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "split, expected",
    [
        ("train[:100]", slice(0, 100)),
        ("train[100:200]", slice(100, 200)),
        ("train[:10%]", slice(0, 150)),
        ("train[10%:20%]", slice(150, 300)),
        ("test[-97:]", slice(200, 297)),
        ("test[:50%]", slice(0, 148)),  # round(148.5) == 148, as in TFDS.
        ("test[250:]", slice(250, 297)),
        ("test[:]", slice(0, 297)),
        ("test[:1000]", slice(0, 297)),
        (" train [ : 7 ] ", slice(0, 7)),
    ],
)
def test_split_slices(split, expected):
    name = split.strip().split("[")[0].strip()
    full_x, full_y = data.to_numpy(data.load("digits", name))
    images, labels = data.to_numpy(data.load("digits", split))
    np.testing.assert_array_equal(images, full_x[expected])
    np.testing.assert_array_equal(labels, full_y[expected])


def test_split_slice_of_fashion_mnist(tmp_path, no_default_dirs):
    arrays = write_fashion_dir(tmp_path, num_train=10)
    images, labels = data.to_numpy(
        data.load("fashion_mnist", "train[2:50%]", data_dir=tmp_path)
    )
    np.testing.assert_array_equal(images, arrays["train"][0][2:5])
    np.testing.assert_array_equal(labels, arrays["train"][1][2:5])


@pytest.mark.parametrize(
    "split",
    [
        "validation",
        "Train",
        "train[5]",
        "train[]",
        "train[:101%]",
        "train[a:b]",
        "train[:10]x",
        "train+test",
        "train[1:2:3]",
        "",
        3,
    ],
)
def test_bad_split(split, tmp_path, no_default_dirs):
    with pytest.raises(ValueError, match=r"`split` must be .* Received: split="):
        data.load("digits", split)
    with pytest.raises(ValueError, match=r"`split` must be .* Received: split="):
        data.load("fashion_mnist", split, data_dir=tmp_path)


EMPTY_SPLITS = [
    # (split, resolved [begin:end] on digits' 1500/297 examples)
    ("train[5:2]", "[5:2] of the 1500 examples of split 'train'"),
    ("train[3:3]", "[3:3] of the 1500 examples of split 'train'"),
    ("test[100%:]", "[297:297] of the 297 examples of split 'test'"),
    ("train[-0:0]", "[0:0] of the 1500 examples of split 'train'"),
    ("test[:0]", "[0:0] of the 297 examples of split 'test'"),
    ("test[-5:3]", "[292:3] of the 297 examples of split 'test'"),
    ("test[400:500]", "[297:297] of the 297 examples of split 'test'"),
]


def _empty_split_match(split, resolved):
    return r"`split` must select at least one example.*" + re.escape(
        f"resolves to {resolved}. Received: split={split!r}"
    )


@pytest.mark.parametrize("split, resolved", EMPTY_SPLITS)
def test_empty_or_reversed_split_is_an_error_digits(split, resolved):
    with pytest.raises(ValueError, match=_empty_split_match(split, resolved)):
        data.load("digits", split)
    with pytest.raises(ValueError, match=_empty_split_match(split, resolved)):
        data.load("binarized_digits", split)


@pytest.mark.parametrize(
    "split, resolved",
    [
        ("train[5:2]", "[5:2] of the 10 examples of split 'train'"),
        ("train[3:3]", "[3:3] of the 10 examples of split 'train'"),
        ("test[100%:]", "[4:4] of the 4 examples of split 'test'"),
        ("train[-0:0]", "[0:0] of the 10 examples of split 'train'"),
        ("train[-5:3]", "[5:3] of the 10 examples of split 'train'"),
    ],
)
def test_empty_or_reversed_split_is_an_error_fashion_mnist(
    split, resolved, tmp_path, no_default_dirs
):
    write_fashion_dir(tmp_path, num_train=10)
    with pytest.raises(ValueError, match=_empty_split_match(split, resolved)):
        data.load("fashion_mnist", split, data_dir=tmp_path)


@needs_real_fashion
def test_empty_split_of_real_fashion_mnist(monkeypatch):
    monkeypatch.delenv(data.ENV_DATA_DIR, raising=False)
    resolved = "[10000:10000] of the 10000 examples of split 'test'"
    with pytest.raises(ValueError, match=_empty_split_match("test[100%:]", resolved)):
        data.load("fashion_mnist", "test[100%:]")


@pytest.mark.parametrize(
    "split, part",
    [
        ("train[5:2]", None),
        ("train[3:3]", None),
        ("test[100%:]", None),
        ("train[-0:0]", None),
        ("train + test[4:1]", "test[4:1]"),
    ],
)
def test_empty_split_is_an_error_tfds_before_preparing(split, part, tfds):
    """Split sizes unknown: slices empty whatever the size are refused."""
    subject = "it" if part is None else f"its part {part!r}"
    match = (
        r"`split` must select at least one example.*"
        + re.escape(f"{subject} selects no example whatever the size")
        + ".*"
        + re.escape(f"Received: split={split!r}")
    )
    with tfds.testing.mock_data(num_examples=4):
        with pytest.raises(ValueError, match=match):
            data.load("mnist", split)
        # Empty only for some sizes: left to TFDS (the mock ignores slices).
        assert data.to_numpy(data.load("mnist", "train[-5:3]"))[0].shape[0] == 4


def test_empty_split_in_fashion_mnist_tfds_fallback(tmp_path, no_default_dirs, tfds):
    with tfds.testing.mock_data(num_examples=3):
        with pytest.raises(ValueError, match="whatever the size of split 'test'"):
            data.load("fashion_mnist", "test[100%:]")


@pytest.fixture(scope="module")
def prepared_tfds(tmp_path_factory):
    """A real prepared TFDS data set (`dummy_mnist`, 20 + 20 examples)."""
    from tensorflow_datasets import testing

    data_dir = tmp_path_factory.mktemp("tfds")
    testing.DummyMnist(data_dir=data_dir).download_and_prepare()
    return str(data_dir)


@pytest.mark.parametrize(
    "split, message",
    [
        ("train[5:2]", "it resolves to [5:2] of the 20 examples of split 'train'"),
        ("train[-5:3]", "it resolves to [15:3] of the 20 examples of split 'train'"),
        ("test[30:40]", "it resolves to [20:20] of the 20 examples of split 'test'"),
        (
            "train[:0]+test",
            "its part 'train[:0]' resolves to [0:0] of the 20 examples of "
            "split 'train'",
        ),
    ],
)
def test_empty_split_is_an_error_tfds_prepared(split, message, prepared_tfds):
    """Split sizes known: TFDS itself says "__len__() should return >= 0"."""
    match = re.escape(f"{message}. Received: split={split!r}")
    with pytest.raises(ValueError, match=match):
        data.load("dummy_mnist", split, data_dir=prepared_tfds, download=False)
    images, labels = data.to_numpy(
        data.load("dummy_mnist", "train[2:5]", data_dir=prepared_tfds, download=False)
    )
    assert images.shape == (3, 28, 28, 1) and labels.shape == (3,)


def test_tfds_split_must_be_one_string(tfds):
    with pytest.raises(
        ValueError, match=r"one split string.*Received: split=\['train'"
    ):
        data.load("mnist", ["train", "test"])


def test_tfds_bad_split_message_says_what_must_hold(prepared_tfds):
    with pytest.raises(
        ValueError,
        match=r"`split` must name splits of 'dummy_mnist'.*Received: split='validation'",
    ):
        data.load("dummy_mnist", "validation", data_dir=prepared_tfds, download=False)


@pytest.mark.parametrize("bad", [3, ["/tmp"], b"/tmp"])
def test_data_dir_must_be_a_path(bad):
    with pytest.raises(
        TypeError,
        match=r"`data_dir` must be a directory path.*"
        r"Received: data_dir=",
    ):
        data.load("digits", "test[:4]", data_dir=bad)
    with pytest.raises(TypeError, match="`data_dir` must be a directory path"):
        data.get_info("fashion_mnist", data_dir=bad)


def test_data_dir_must_not_be_a_file(tmp_path):
    path = tmp_path / "a_file"
    path.write_text("x")
    with pytest.raises(
        ValueError,
        match=rf"`data_dir` must be a directory.*Received: data_dir='{path}'",
    ):
        data.load("fashion_mnist", "test", data_dir=path)


def test_missing_data_dir_is_named_when_data_is_unavailable(tmp_path, no_default_dirs):
    missing = tmp_path / "nope"
    with pytest.raises(
        data.DataUnavailableError, match=rf"{missing} \(does not exist\)"
    ):
        data.load("fashion_mnist", data_dir=missing, download=False)
    with pytest.raises(
        data.DataUnavailableError, match=r"`data_dir` '.*nope' does not exist"
    ):
        data.load("mnist", data_dir=missing, download=False)


# --------------------------------------------------------------------------
# TFDS
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, shape", [("cifar10", (32, 32, 3)), ("mnist", (28, 28, 1))]
)
def test_tfds_mock(name, shape, tfds):
    with tfds.testing.mock_data(num_examples=4):
        ds = data.load(name, "train")
        images, labels = data.to_numpy(ds)
    assert set(ds.element_spec) == {"images", "labels"}
    assert ds.element_spec["images"].shape == shape
    assert images.shape == (4, *shape) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and labels.shape == (4,)
    assert labels.min() >= 0 and labels.max() <= 9
    info = data.get_info(name)
    assert info.image_shape == shape
    assert (info.num_levels, info.num_classes) == (256, 10)


def test_tfds_binarized_mnist_thresholds_mnist(tfds):
    with tfds.testing.mock_data(num_examples=4):
        images, _ = data.to_numpy(data.load("mnist", "test"))
        binary, labels = data.to_numpy(data.load("binarized_mnist", "test"))
    assert set(np.unique(binary)) <= {0, 1}
    np.testing.assert_array_equal(binary, (images >= 128).astype(np.uint8))
    assert labels.shape == (4,)


def test_tfds_prefix_reaches_catalog(tfds):
    info = data.get_info("tfds:binarized_mnist")
    assert info.num_levels == 2 and info.num_classes is None
    with tfds.testing.mock_data(num_examples=2, max_value=1):
        ds = data.load("tfds:binarized_mnist", "train")
    assert set(ds.element_spec) == {"images"}
    images, labels = data.to_numpy(ds)
    assert images.shape == (2, 28, 28, 1) and labels is None


def test_tfds_not_an_image_data_set(tfds):
    with tfds.testing.mock_data(num_examples=1):
        with pytest.raises(ValueError, match="no 'image' feature"):
            data.load("imdb_reviews", "train")


@pytest.mark.parametrize("name", ["no_such_dataset", "binarized_no_such_dataset"])
def test_unknown_name(name):
    with pytest.raises(ValueError, match="Unknown data set 'no_such_dataset'"):
        data.load(name)
    with pytest.raises(ValueError, match="Unknown data set 'no_such_dataset'"):
        data.get_info(name)


@pytest.mark.parametrize("name", ["", None, "tfds:"])
def test_bad_name(name):
    with pytest.raises(ValueError, match="`name` must"):
        data.load(name)


def test_tfds_unavailable_offline(tmp_path):
    with pytest.raises(data.DataUnavailableError, match="'mnist'") as info:
        data.load("mnist", data_dir=tmp_path, download=False)
    assert info.value.__cause__ is not None


# --------------------------------------------------------------------------
# to_numpy and DatasetInfo
# --------------------------------------------------------------------------


def test_to_numpy_limit_and_batched_input():
    images, labels = data.to_numpy(data.load("digits", "test"), limit=10)
    assert images.shape == (10, 8, 8, 1) and labels.shape == (10,)
    batched = data.load("digits", "test").batch(64)
    images, labels = data.to_numpy(batched, limit=100)
    assert images.shape == (100, 8, 8, 1) and labels.shape == (100,)
    empty_x, empty_y = data.to_numpy(data.load("digits", "test").take(0))
    assert empty_x.shape == (0, 8, 8, 1) and empty_x.dtype == np.uint8
    assert empty_y.shape == (0,)


def test_to_numpy_errors():
    with pytest.raises(ValueError, match="Received: limit=-1"):
        data.to_numpy(data.load("digits", "test"), limit=-1)
    with pytest.raises(ValueError, match="Received: limit=True"):
        data.to_numpy(data.load("digits", "test"), limit=True)
    with pytest.raises(
        TypeError, match=r"`ds` must be a `tf.data.Dataset`.*Received: ds of type list"
    ):
        data.to_numpy([{"images": np.zeros((8, 8, 1), np.uint8)}])
    with pytest.raises(ValueError, match="'images' key"):
        data.to_numpy(tf.data.Dataset.range(3))


def test_dataset_info_is_frozen():
    info = data.get_info("digits")
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.num_levels = 3
    assert hash(info) == hash(data.get_info("digits"))
