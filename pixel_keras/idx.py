"""Fashion-MNIST's original IDX files, found and read without TensorFlow.

`pixel_keras.data` builds its `tf.data` pipeline on these readers; code that
must not import TensorFlow (a JAX-only machine, `tools/train_gpu_jax.py`)
reads the arrays with `load_fashion_mnist`.

The files are looked for, in order, in `data_dir`, `$PIXEL_KERAS_DATA_DIR`
(each also with a `fashion-mnist/` subdirectory) and Debian's
`dataset-fashion-mnist` directory, gzipped or not. Headers (magic number,
rank, dimensions) and sizes are validated; a bad file is a `ValueError`
naming it.
"""

from __future__ import annotations

import functools
import gzip
import math
import os

import numpy as np

PathLike = str | os.PathLike

ENV_DATA_DIR = "PIXEL_KERAS_DATA_DIR"
# Directories searched after `data_dir` and `$PIXEL_KERAS_DATA_DIR`.
FASHION_MNIST_SYSTEM_DIRS = ("/usr/share/datasets/fashion-mnist",)
FASHION_MNIST_SIZES = {"train": 60000, "test": 10000}
_FASHION_MNIST_SUBDIR = "fashion-mnist"
_FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_UBYTE = 0x08


def load_fashion_mnist(
    split: str, data_dir: PathLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """`(images, labels)` of a whole split, read from the IDX files.

    Args:
        split: "train" or "test" (no slicing; slice the arrays).
        data_dir: directory searched first.

    Returns:
        uint8 images `[N, 28, 28, 1]` (read-only) and int64 labels `[N]`.

    Raises:
        ValueError: for another split, or a corrupt file.
        FileNotFoundError: when no directory holds both files of the split.
    """
    if split not in _FASHION_MNIST_FILES:
        raise ValueError(
            f"`split` must be one of {tuple(_FASHION_MNIST_FILES)}. Received: split={split!r}"
        )
    found = find_fashion_mnist(split, data_dir)
    if found is None:
        raise FileNotFoundError(
            f"Fashion-MNIST {split!r} IDX files ({', '.join(_FASHION_MNIST_FILES[split])}"
            f"[.gz]) are in none of {candidate_dirs(data_dir)}."
        )
    return read_idx_pair(*found)


def candidate_dirs(data_dir: PathLike | None) -> list[str]:
    roots = []
    if data_dir is not None:
        roots.append(os.fspath(data_dir))
    env_dir = os.environ.get(ENV_DATA_DIR)
    if env_dir:
        roots.append(env_dir)
    dirs = []
    for root in roots:
        dirs += [root, os.path.join(root, _FASHION_MNIST_SUBDIR)]
    return dirs + list(FASHION_MNIST_SYSTEM_DIRS)


def _find_file(directory: str, stem: str) -> str | None:
    for filename in (stem + ".gz", stem):
        path = os.path.join(directory, filename)
        if os.path.isfile(path):
            return path
    return None


def find_fashion_mnist(
    split_name: str, data_dir: PathLike | None
) -> tuple[str, str] | None:
    """Returns `(images_path, labels_path)` from the first directory with both."""
    images_stem, labels_stem = _FASHION_MNIST_FILES[split_name]
    for directory in candidate_dirs(data_dir):
        images_path = _find_file(directory, images_stem)
        labels_path = _find_file(directory, labels_stem)
        if images_path and labels_path:
            return images_path, labels_path
    return None


def _open(path: str):
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def _parse_idx_header(header: bytes, path: str, expected_rank: int) -> tuple[int, ...]:
    """Validates an IDX header: 2 zero bytes, type 0x08, rank, big-endian dims."""
    if len(header) < 4:
        raise ValueError(
            f"IDX file {path!r} is truncated: {len(header)} bytes, no header."
        )
    zeros, data_type, rank = header[:2], header[2], header[3]
    if zeros != b"\x00\x00" or data_type != _IDX_UBYTE or rank != expected_rank:
        raise ValueError(
            f"IDX file {path!r} has a bad magic number 0x{header[:4].hex()}; "
            f"expected 0x{_IDX_UBYTE:08x} + rank {expected_rank}, i.e. "
            f"0x{(_IDX_UBYTE << 8) | expected_rank:08x} (unsigned bytes, "
            f"{expected_rank} dimensions)."
        )
    header_size = 4 + 4 * rank
    if len(header) < header_size:
        raise ValueError(
            f"IDX file {path!r} is truncated inside its header "
            f"({len(header)} of {header_size} bytes)."
        )
    dims = tuple(int(d) for d in np.frombuffer(header[4:header_size], ">u4"))
    if any(d == 0 for d in dims[1:]):
        raise ValueError(f"IDX file {path!r} has a zero dimension: {dims}.")
    return dims


def read_idx_header(path: str, expected_rank: int) -> tuple[int, ...]:
    try:
        with _open(path) as f:
            header = f.read(4 + 4 * expected_rank)
    except (OSError, EOFError) as err:
        raise ValueError(f"Could not read IDX file {path!r}: {err}") from err
    return _parse_idx_header(header, path, expected_rank)


def _read_idx(path: str, expected_rank: int) -> np.ndarray:
    stat = os.stat(path)
    return _read_idx_cached(path, stat.st_mtime_ns, stat.st_size, expected_rank)


@functools.lru_cache(maxsize=8)
def _read_idx_cached(
    path: str, mtime_ns: int, size: int, expected_rank: int
) -> np.ndarray:
    del mtime_ns, size  # Only part of the cache key.
    try:
        with _open(path) as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise ValueError(f"Could not read IDX file {path!r}: {err}") from err
    dims = _parse_idx_header(raw, path, expected_rank)
    offset = 4 + 4 * len(dims)
    expected = math.prod(dims)
    if len(raw) - offset != expected:
        raise ValueError(
            f"IDX file {path!r} holds {len(raw) - offset} data bytes, but its "
            f"header declares dims {dims} ({expected} bytes). The file is "
            "truncated or corrupt."
        )
    array = np.frombuffer(raw, np.uint8, offset=offset).reshape(dims)
    array.setflags(write=False)
    return array


def read_idx_pair(images_path: str, labels_path: str) -> tuple[np.ndarray, np.ndarray]:
    images = _read_idx(images_path, expected_rank=3)[..., None]  # [N, H, W, 1]
    labels = _read_idx(labels_path, expected_rank=1)
    if len(images) != len(labels):
        raise ValueError(
            f"IDX files disagree: {images_path!r} holds {len(images)} images "
            f"but {labels_path!r} holds {len(labels)} labels."
        )
    if labels.size and labels.max() >= 10:
        raise ValueError(
            f"IDX file {labels_path!r} holds label {int(labels.max())}; "
            "Fashion-MNIST labels are in [0, 9]."
        )
    return images, labels.astype(np.int64)
