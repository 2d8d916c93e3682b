"""Offline-first image data sets for autoregressive models.

Every data set is returned by `load()` as an *unbatched* `tf.data.Dataset` of
dicts:

```
{"images": tf.uint8 [H, W, C],   # integer levels in [0, num_levels - 1]
 "labels": tf.int64 []}          # only where the data set has labels
```

Images are never converted to float here: the models in this package predict
a categorical distribution over the `num_levels` integer values of each
sub-pixel, so the data stays discrete until a model decides how to scale it.

Data sets
---------
| name            | source                | shape   | levels | classes | train/test  |
| --------------- | --------------------- | ------- | ------ | ------- | ----------- |
| `fashion_mnist` | original IDX files    | 28x28x1 | 256    | 10      | 60000/10000 |
| `digits`        | scikit-learn          | 8x8x1   | 17     | 10      | 1500/297    |
| `binarized_X`   | `X`, thresholded      | as `X`  | 2      | as `X`  | as `X`      |
| `tfds:X`, other | `tfds.load(X)`        | TFDS    | 256    | TFDS    | TFDS        |

`fashion_mnist` reads the four original IDX files

```
train-images-idx3-ubyte[.gz]   train-labels-idx1-ubyte[.gz]
t10k-images-idx3-ubyte[.gz]    t10k-labels-idx1-ubyte[.gz]
```

gzipped or not, from the first of these directories that holds the pair of
files a split needs:

1. the `data_dir` argument, then `<data_dir>/fashion-mnist`;
2. the environment variable `PIXEL_KERAS_DATA_DIR`, then
   `$PIXEL_KERAS_DATA_DIR/fashion-mnist`;
3. `/usr/share/datasets/fashion-mnist` (Debian/Ubuntu package
   `dataset-fashion-mnist`).

The IDX headers (magic number, rank, dimensions) are validated against the
file size, so a corrupt or truncated file raises a `ValueError` naming it.
Decoded arrays are cached per process. If no directory holds the files,
`tfds.load("fashion_mnist")` is tried; if that fails too (e.g. offline),
`DataUnavailableError` (a `RuntimeError`) is raised, telling how to install
the files.

`digits` is scikit-learn's bundled 8x8 digits set (1797 images, values
0..16, so 17 levels). It has no official split; this module fixes one:
`np.random.default_rng(0).permutation(1797)`, whose first 1500 indices are
the training set and whose last 297 are the test set, each kept in
permutation order.

`binarized_<name>` works for every other name accepted here (for example
`binarized_fashion_mnist`, `binarized_digits`, or `binarized_mnist`, which
thresholds TFDS `mnist`). The binarization is a *static* threshold, not a
stochastic one: a sub-pixel becomes 1 when `value >= num_levels // 2` (128
for 256 levels, 8 for `digits`) and 0 otherwise.

Any other name is passed to `tfds.load()` together with `split`, `data_dir`,
`shuffle_files` and `download`; its `"image"` feature must be `uint8` and
becomes `"images"` (256 levels; 2 for TFDS's own `binarized_mnist`), and its
`"label"` feature, if any, becomes `"labels"`. Prefix a name with `tfds:` to
skip the rules above and reach the TFDS catalog directly, e.g.
`"tfds:binarized_mnist"` for the fixed binarization of Larochelle & Murray
(2011) rather than the thresholded `mnist`. A name TFDS does not know raises
`ValueError`; data that TFDS cannot find or download raises
`DataUnavailableError`, with the TFDS error as `__cause__`.

Splits
------
The local data sets (`fashion_mnist`, `digits` and their binarized variants)
accept `"train"`, `"test"` and TFDS-style slices of one of them:
`"train[:1000]"`, `"test[500:]"`, `"train[100:200]"`, `"train[-100:]"`,
`"train[:10%]"`. A percent bound `p%` of a split of `n` examples becomes
`round(p * n / 100)` (Python's `round`), as TFDS's default rounding does.
`shuffle_files` has no effect on them (they are single arrays); use
`Dataset.shuffle`. TFDS names accept whatever TFDS accepts.

A slice must select at least one example: an empty or reversed range such as
`"train[5:2]"`, `"train[3:3]"` or `"test[100%:]"` raises `ValueError` (with
the resolved bounds and the split size) instead of returning an empty data
set. For TFDS names the same holds for each `+`-joined part; before the data
set is prepared its split sizes are unknown, so only slices that are empty
whatever the size are refused up front.

Example:

```python
from pixel_keras import data

ds = data.load("fashion_mnist", split="train[:1000]")
images, labels = data.to_numpy(ds)  # uint8 [1000, 28, 28, 1], int64 [1000]
info = data.get_info("binarized_fashion_mnist")
info.num_levels  # 2
```
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from pixel_keras.idx import (  # noqa: F401  (ENV_DATA_DIR, ... re-exported)
    ENV_DATA_DIR,
    FASHION_MNIST_SIZES,
    candidate_dirs,
    find_fashion_mnist,
    read_idx_header,
    read_idx_pair,
)

__all__ = [
    "DataUnavailableError",
    "DatasetInfo",
    "check_data_fits_model",
    "get_info",
    "image_batches",
    "load",
    "make_dataset",
    "to_numpy",
]

PathLike = str | os.PathLike

BINARIZED_PREFIX = "binarized_"
TFDS_PREFIX = "tfds:"


DIGITS_NUM_TEST = 297
DIGITS_SEED = 0

# TFDS data sets whose uint8 images do not use all 256 levels.
_TFDS_NUM_LEVELS = {"binarized_mnist": 2}

_LOCAL_NAMES = ("fashion_mnist", "digits")
_LOCAL_SPLITS = ("train", "test")
_SPLIT_PATTERN = re.compile(
    r"^(?P<split>[a-z_]+)"
    r"(?:\[(?P<start>[+-]?\d+%?)?(?P<colon>:)?(?P<stop>[+-]?\d+%?)?\])?$"
)


class DataUnavailableError(RuntimeError):
    """A known data set whose data is neither on disk nor downloadable.

    Raised by `load()` when neither the local files nor TFDS can provide the
    requested data (typically: no network and nothing prepared). The
    underlying error, if any, is kept as `__cause__`.
    """


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a data set, as `load()` returns it.

    Args:
        name: The name passed to `get_info()`.
        image_shape: `(height, width, channels)`; a dimension is `None` when
            TFDS reports a variable size.
        num_levels: Number of distinct sub-pixel values; images hold
            integers in `[0, num_levels - 1]`.
        num_classes: Number of label classes, or `None` without labels.
        split_sizes: Number of examples per split. For TFDS names it is
            empty until the data set has been prepared in `data_dir`.
    """

    name: str
    image_shape: tuple[int | None, int | None, int | None]
    num_levels: int
    num_classes: int | None
    split_sizes: Mapping[str, int] = dataclasses.field(default_factory=dict, hash=False)


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def load(
    name: str,
    split: str = "train",
    *,
    data_dir: PathLike | None = None,
    shuffle_files: bool = False,
    download: bool = True,
) -> tf.data.Dataset:
    """Loads a data set as an unbatched `tf.data.Dataset` of dicts.

    Args:
        name: `"fashion_mnist"`, `"digits"`, `"binarized_<name>"`,
            `"tfds:<name>"` or any TFDS name (see the module docstring).
        split: `"train"`, `"test"` or a slice such as `"train[:10%]"`.
        data_dir: Directory searched first for the Fashion-MNIST IDX files,
            and passed to TFDS as its `data_dir`.
        shuffle_files: Passed to TFDS; no effect on local data sets.
        download: Whether TFDS may download and prepare data that is not
            already prepared in `data_dir`.

    Returns:
        A `tf.data.Dataset` whose elements are
        `{"images": uint8 [H, W, C], "labels": int64 []}` (`"labels"` only
        where the data set has labels).

    Raises:
        ValueError: for an unknown name, a bad split (including a slice
            that selects no example, such as `"train[5:2]"`) or corrupt
            files.
        TypeError: for a `data_dir` that is not a path.
        DataUnavailableError: when the data cannot be found or downloaded.
    """
    _check_name(name)
    _check_data_dir(data_dir)
    base, binarized = _strip_binarized(name)
    if base in _LOCAL_NAMES:
        ds = _load_local(base, split, data_dir, shuffle_files, download)
    else:
        ds = _load_tfds(
            _strip_tfds_prefix(base), split, data_dir, shuffle_files, download
        )
    if binarized:
        threshold = _num_levels(base) // 2
        ds = ds.map(
            functools.partial(_binarize, threshold=threshold),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    return ds


def get_info(name: str, data_dir: PathLike | None = None) -> DatasetInfo:
    """Returns the `DatasetInfo` of a data set without loading its images.

    For TFDS names the facts come from the TFDS builder's metadata, which
    needs no download; split sizes are only known once the data set has been
    prepared in `data_dir`.

    Args:
        name: Any name accepted by `load()`.
        data_dir: As for `load()`. For Fashion-MNIST, split sizes and image
            shape are read from the IDX headers of the files `load()` would
            use, or are the canonical ones when no files are found.

    Returns:
        A `DatasetInfo`.

    Raises:
        ValueError: for an unknown name.
        TypeError: for a `data_dir` that is not a path.
    """
    _check_name(name)
    _check_data_dir(data_dir)
    base, binarized = _strip_binarized(name)
    if base == "digits":
        info = DatasetInfo(
            name=name,
            image_shape=(8, 8, 1),
            num_levels=17,
            num_classes=10,
            split_sizes=_digits_split_sizes(),
        )
    elif base == "fashion_mnist":
        image_shape, split_sizes = _fashion_mnist_header_info(data_dir)
        info = DatasetInfo(
            name=name,
            image_shape=image_shape,
            num_levels=256,
            num_classes=10,
            split_sizes=split_sizes,
        )
    else:
        info = _tfds_info(name, _strip_tfds_prefix(base), data_dir)
    if binarized:
        info = dataclasses.replace(info, name=name, num_levels=2)
    return info


def to_numpy(
    ds: tf.data.Dataset, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Materializes a data set from `load()` as NumPy arrays.

    Args:
        ds: A data set of `{"images", ["labels"]}` dicts, unbatched or
            batched.
        limit: Keep at most this many examples; `None` keeps all. All
            images must share one shape.

    Returns:
        `(images, labels)`: `uint8 [N, H, W, C]` and `int64 [N]`, or `None`
        for `labels` when the data set has none.
    """
    if not isinstance(ds, tf.data.Dataset):
        raise TypeError(
            "`ds` must be a `tf.data.Dataset` of {'images', ['labels']} dicts, "
            f"as `load()` returns. Received: ds of type {type(ds).__name__}"
        )
    if limit is not None and (
        not isinstance(limit, int) or isinstance(limit, bool) or limit < 0
    ):
        raise ValueError(
            f"`limit` must be a non-negative int or None. Received: limit={limit!r}"
        )
    spec = ds.element_spec
    if not isinstance(spec, Mapping) or "images" not in spec:
        raise ValueError(
            "`ds` must yield dicts with an 'images' key, as `load()` returns. "
            f"Received: element_spec={spec!r}"
        )
    if spec["images"].shape.rank == 4:
        ds = ds.unbatch()
        spec = ds.element_spec
    if limit is not None:
        ds = ds.take(limit)

    image_batches, label_batches = [], []
    for batch in ds.batch(4096).as_numpy_iterator():
        image_batches.append(batch["images"])
        if "labels" in batch:
            label_batches.append(batch["labels"])

    if image_batches:
        images = np.concatenate(image_batches)
    else:
        shape = [0] + [d or 0 for d in spec["images"].shape.as_list()]
        images = np.zeros(shape, spec["images"].dtype.as_numpy_dtype)
    if "labels" not in spec:
        return images, None
    if label_batches:
        labels = np.concatenate(label_batches)
    else:
        labels = np.zeros([0], spec["labels"].dtype.as_numpy_dtype)
    return images, labels


# --------------------------------------------------------------------------
# Names, splits, binarization
# --------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Input pipeline (what `pixel_keras.training` feeds `fit` and `evaluate`)
# ---------------------------------------------------------------------------


def check_data_fits_model(model, info, dataset):
    """Raises ValueError unless data set `info` has the model's images and levels.

    Args:
        model: a model with `image_shape` and `num_levels`.
        info: the data set's `get_info(...)`.
        dataset: its name, for the message.
    """
    if tuple(model.image_shape) != tuple(info.image_shape) or (
        model.num_levels != info.num_levels
    ):
        raise ValueError(
            f"The model expects images {tuple(model.image_shape)} with "
            f"{model.num_levels} levels; {dataset!r} has "
            f"{tuple(info.image_shape)} with {info.num_levels}. Received: "
            f"dataset={dataset!r}"
        )


def make_dataset(
    dataset,
    split,
    batch_size,
    *,
    shuffle=False,
    repeat=False,
    seed=None,
    data_dir=None,
    shuffle_buffer=10_000,
    class_labels=False,
):
    """Batched `tf.data` of `(x, images)` pairs, images int32.

    `x` is the images, or with `class_labels=True` the dict
    `{"images": images, "class_label": labels}` (int32 `[B]`, the data
    set's labels) that class-conditional models take.

    Args:
        dataset: a name for `load`.
        split: e.g. `"train"`, `"test[:1000]"`.
        batch_size: global batch size (the last batch may be smaller).
        shuffle: shuffle examples (reshuffled every epoch) with `seed`.
        repeat: repeat forever (for a fixed `steps_per_epoch`).
        seed: shuffle seed.
        data_dir: passed to `load`.
        shuffle_buffer: shuffle buffer size.
        class_labels: also feed the labels as the `class_label` input.

    Raises:
        ValueError: a bad batch size, or `class_labels` for a data set
            without labels.
    """
    # Lazily: importing `data` loads no Keras model code.
    from pixel_keras.models.base import check_batch_size

    check_batch_size(batch_size)
    ds = load(dataset, split, data_dir=data_dir)
    if class_labels and "labels" not in ds.element_spec:
        raise ValueError(
            f"A class-conditional model needs labels, and data set {dataset!r} "
            "has none. Train an unconditional model (no `num_classes`)."
        )

    def inputs(example):
        images = tf.cast(example["images"], tf.int32)
        if not class_labels:
            return images
        return {"images": images, "class_label": tf.cast(example["labels"], tf.int32)}

    ds = ds.map(inputs, num_parallel_calls=tf.data.AUTOTUNE)
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size)
    if class_labels:
        ds = ds.map(lambda x: (x, x["images"]))
    else:
        ds = ds.map(lambda x: (x, x))
    return ds.prefetch(tf.data.AUTOTUNE)


def image_batches(dataset, split, batch_size, data_dir, class_label=None):
    """Yields NumPy `(images, labels)` batches; labels None where there are none."""
    if isinstance(dataset, (np.ndarray, list, tuple)):
        images = np.asarray(dataset)
        labels = None if class_label is None else np.asarray(class_label)
        for i in range(0, len(images), batch_size):
            batch_labels = labels
            if labels is not None and labels.ndim:
                batch_labels = labels[i : i + batch_size]
            yield images[i : i + batch_size], batch_labels
        return
    if isinstance(dataset, str):
        dataset = load(dataset, split, data_dir=data_dir)

    def as_dict(x, *_):  # (x, y) pairs: keep x.
        if not isinstance(x, dict):
            return {"images": x}
        out = {"images": x["images"]}
        for key in ("class_label", "labels"):
            if key in x:
                out["labels"] = x[key]
                break
        return out

    dataset = dataset.map(as_dict)
    if dataset.element_spec["images"].shape.rank == 3:
        dataset = dataset.batch(batch_size)
    for batch in dataset.as_numpy_iterator():
        yield batch["images"], batch.get("labels")


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(
            f"`name` must be a non-empty data set name. Received: name={name!r}"
        )


def _check_data_dir(data_dir: Any) -> None:
    if data_dir is None:
        return
    if not isinstance(data_dir, (str, os.PathLike)):
        raise TypeError(
            "`data_dir` must be a directory path (str or os.PathLike) or None. "
            f"Received: data_dir={data_dir!r}"
        )
    if os.path.exists(data_dir) and not os.path.isdir(data_dir):
        raise ValueError(
            "`data_dir` must be a directory (TFDS may create it when it "
            f"downloads). Received: data_dir={os.fspath(data_dir)!r}, a file"
        )


def _strip_binarized(name: str) -> tuple[str, bool]:
    if name.startswith(BINARIZED_PREFIX) and len(name) > len(BINARIZED_PREFIX):
        return name[len(BINARIZED_PREFIX) :], True
    return name, False


def _strip_tfds_prefix(name: str) -> str:
    if name.startswith(TFDS_PREFIX):
        name = name[len(TFDS_PREFIX) :]
        if not name:
            raise ValueError(
                "`name` must name a TFDS data set after 'tfds:'. "
                f"Received: name={TFDS_PREFIX!r}"
            )
    return name


def _num_levels(base: str) -> int:
    if base == "digits":
        return 17
    if base == "fashion_mnist":
        return 256
    tfds_name = _strip_tfds_prefix(base)
    return _TFDS_NUM_LEVELS.get(_bare_tfds_name(tfds_name), 256)


def _bare_tfds_name(tfds_name: str) -> str:
    """`"mnist/config:3.0.1"` -> `"mnist"`."""
    return re.split(r"[/:]", tfds_name, maxsplit=1)[0]


def _binarize(example: dict, threshold: int) -> dict:
    example = dict(example)
    images = example["images"]
    example["images"] = tf.cast(
        images >= tf.constant(threshold, images.dtype), tf.uint8
    )
    return example


def _split_error(split: Any, names: tuple[str, ...], problem: str) -> ValueError:
    return ValueError(
        f"`split` must be one of {names}, optionally followed by a "
        "[start:stop] slice such as 'train[:1000]', 'test[100:200]' or "
        f"'train[:10%]' ({problem}). Received: split={split!r}"
    )


def _empty_split_error(split: str, part: str, problem: str) -> ValueError:
    subject = "it" if part == split else f"its part {part!r}"
    return ValueError(
        "`split` must select at least one example, i.e. its slice must "
        f"resolve to start < stop; {subject} {problem}. Received: split={split!r}"
    )


def _match_split(
    split: Any, names: tuple[str, ...]
) -> tuple[str, str | None, str | None]:
    """Checks the syntax of `"train[a:b]"`; returns `("train", "a", "b")`."""
    if not isinstance(split, str):
        raise _split_error(split, names, "not a string")
    match = _SPLIT_PATTERN.match(split.replace(" ", ""))
    if match is None:
        raise _split_error(split, names, "malformed")
    name = match["split"]
    if name not in names:
        raise _split_error(split, names, f"unknown split {name!r}")
    if "[" in split and not match["colon"]:
        raise _split_error(split, names, "a slice needs a colon")
    for bound in (match["start"], match["stop"]):
        if bound is not None and bound.endswith("%"):
            if not -100 <= int(bound[:-1]) <= 100:
                raise _split_error(split, names, "percentages must be in [-100%, 100%]")
    return name, match["start"], match["stop"]


def _parse_split(split: Any, sizes: Mapping[str, int]) -> tuple[str, int, int]:
    """Parses `"train[a:b]"` into `("train", start, stop)` given split sizes.

    Raises `ValueError` when the slice selects no example.
    """
    name, start, stop = _match_split(split, tuple(sizes))
    begin, end = _resolve_range(split, split, start, stop, name, sizes[name])
    return name, begin, end


def _resolve_range(
    split: str, part: str, start: str | None, stop: str | None, name: str, num: int
) -> tuple[int, int]:
    """`[start:stop]` of a split of `num` examples as `(begin, end)`, non-empty."""
    begin = _resolve_bound(start, num)
    end = _resolve_bound(stop, num)
    begin, end, _ = slice(begin, end).indices(num)
    if end <= begin:
        raise _empty_split_error(
            split,
            part,
            f"resolves to [{begin}:{end}] of the {num} examples of split {name!r}",
        )
    return begin, end


def _resolve_bound(bound: str | None, num: int) -> int | None:
    if bound is None:
        return None
    if not bound.endswith("%"):
        return int(bound)
    # The closest example, as TFDS's default "closest" rounding computes it.
    return int(round(int(bound[:-1]) * num / 100.0))


def _bound_positions(bound: str | None, is_stop: bool) -> dict[str, int]:
    """The ways to read a bound as a value that grows with its position.

    Within one kind the position is a non-decreasing function of the value,
    whatever the split size `n`: `"front"` is `min(v, n)` for `v >= 0`,
    `"back"` is `max(n + v, 0)` for `v < 0`, `"pct+"` is `round(p * n / 100)`
    for `p% >= 0` and `"pct-"` is `n + round(p * n / 100)` for `p% < 0`.
    """
    if bound is None:
        return {"pct+": 100} if is_stop else {"front": 0, "pct+": 0}
    if bound.endswith("%"):
        percent = int(bound[:-1])
        return {"pct+" if percent >= 0 else "pct-": percent}
    value = int(bound)
    return {"front" if value >= 0 else "back": value}


def _selects_nothing_at_any_size(start: str | None, stop: str | None) -> bool:
    """Whether `[start:stop]` is empty for every split size (sizes unknown)."""
    begin = _bound_positions(start, is_stop=False)
    end = _bound_positions(stop, is_stop=True)
    return any(kind in begin and end[kind] <= begin[kind] for kind in end)


# --------------------------------------------------------------------------
# Local data sets
# --------------------------------------------------------------------------


def _load_local(
    base: str,
    split: str,
    data_dir: PathLike | None,
    shuffle_files: bool,
    download: bool,
) -> tf.data.Dataset:
    if base == "digits":
        split_name, begin, end = _parse_split(split, _digits_split_sizes())
        images, labels = _digits_arrays(split_name)
    else:
        # Sizes are only known once the files are found: check syntax first.
        split_name, _, _ = _match_split(split, _LOCAL_SPLITS)
        found = find_fashion_mnist(split_name, data_dir)
        if found is None:
            return _fashion_mnist_from_tfds(split, data_dir, shuffle_files, download)
        images, labels = read_idx_pair(*found)
        _, begin, end = _parse_split(split, {split_name: len(labels)})
    return tf.data.Dataset.from_tensor_slices(
        {"images": images[begin:end], "labels": labels[begin:end]}
    )


@functools.lru_cache(maxsize=1)
def _digits_all() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.uint8)[..., None]  # [N, 8, 8, 1]
    labels = bunch.target.astype(np.int64)
    permutation = np.random.default_rng(DIGITS_SEED).permutation(len(labels))
    for array in (images, labels, permutation):
        array.setflags(write=False)
    return images, labels, permutation


def _digits_split_sizes() -> dict[str, int]:
    _, labels, _ = _digits_all()
    return {"train": len(labels) - DIGITS_NUM_TEST, "test": DIGITS_NUM_TEST}


def _digits_arrays(split_name: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels, permutation = _digits_all()
    num_train = len(labels) - DIGITS_NUM_TEST
    if split_name == "train":
        indices = permutation[:num_train]
    else:
        indices = permutation[num_train:]
    return images[indices], labels[indices]


def _fashion_mnist_header_info(
    data_dir: PathLike | None,
) -> tuple[tuple[int, int, int], dict[str, int]]:
    image_shape = (28, 28, 1)
    sizes = dict(FASHION_MNIST_SIZES)
    for split_name in _LOCAL_SPLITS:
        found = find_fashion_mnist(split_name, data_dir)
        if found is not None:
            dims = read_idx_header(found[0], expected_rank=3)
            sizes[split_name] = dims[0]
            image_shape = (dims[1], dims[2], 1)
    return image_shape, sizes


def _fashion_mnist_from_tfds(
    split: str, data_dir: PathLike | None, shuffle_files: bool, download: bool
) -> tf.data.Dataset:
    searched = "\n".join(
        f"  - {d}" + ("" if os.path.isdir(d) else " (does not exist)")
        for d in candidate_dirs(data_dir)
    )
    hint = (
        "Fashion-MNIST IDX files (train-images-idx3-ubyte.gz, ...) were not "
        f"found in:\n{searched}\nand TFDS could not provide the data either. "
        "Install them with `apt-get install dataset-fashion-mnist`, or put "
        f"the four files in a directory and set {ENV_DATA_DIR} to it (or pass "
        "`data_dir=`)."
    )
    try:
        return _load_tfds("fashion_mnist", split, data_dir, shuffle_files, download)
    except DataUnavailableError as err:
        raise DataUnavailableError(f"{hint}\nTFDS said: {err.__cause__!r}") from (
            err.__cause__
        )


# --------------------------------------------------------------------------
# TFDS
# --------------------------------------------------------------------------


def _tfds():
    # Imported lazily: tensorflow_datasets is slow to import.
    import tensorflow_datasets as tfds

    return tfds


def _unknown_name_error(name: str, err: Exception) -> ValueError:
    return ValueError(
        f"Unknown data set {name!r}. Available: {', '.join(_LOCAL_NAMES)}, "
        "'binarized_<name>' for any of them, or a TensorFlow Datasets name "
        f"(see `tfds.list_builders()`). TFDS said: {err}"
    )


def _load_tfds(
    tfds_name: str,
    split: str,
    data_dir: PathLike | None,
    shuffle_files: bool,
    download: bool,
) -> tf.data.Dataset:
    tfds = _tfds()
    data_dir = None if data_dir is None else os.fspath(data_dir)
    if split is None or isinstance(split, (list, tuple, dict, int, float)):
        raise ValueError(
            "`split` must be one split string such as 'train', 'test[:10%]' "
            "or 'train+test' (call `load()` once per data set you need). "
            f"Received: split={split!r}"
        )
    _check_tfds_split(tfds, tfds_name, split, data_dir)
    try:
        ds = tfds.load(
            tfds_name,
            split=split,
            data_dir=data_dir,
            shuffle_files=shuffle_files,
            download=download,
        )
    except tfds.core.registered.DatasetNotFoundError as err:
        raise _unknown_name_error(tfds_name, err) from err
    except ValueError as err:
        # The data may have just been prepared, so its split sizes are known
        # now: TFDS's own message for an empty slice is not helpful.
        _check_tfds_split(tfds, tfds_name, split, data_dir, cause=err)
        raise ValueError(
            f"TFDS could not load split={split!r} of {tfds_name!r}: "
            f"{str(err).rstrip('.')}. "
            f"`split` must name splits of {tfds_name!r}, each optionally "
            f"sliced, e.g. 'train[:10%]'. Received: split={split!r}"
        ) from err
    except Exception as err:  # Network, missing files, bad checksums, ...
        missing = ""
        if data_dir is not None and not os.path.isdir(data_dir):
            missing = f" (`data_dir` {data_dir!r} does not exist)"
        raise DataUnavailableError(
            f"TFDS could not provide {tfds_name!r} (split={split!r}, "
            f"data_dir={data_dir!r}, download={download}){missing}. Without "
            "network access, prepare it elsewhere with `tfds build` and copy "
            f"it to `data_dir`. TFDS said: {err!r}"
        ) from err
    return _from_tfds_examples(ds, tfds_name)


def _tfds_split_sizes(info) -> dict[str, int]:
    """Examples per split; empty until the data set is prepared."""
    return {k: int(v.num_examples) for k, v in info.splits.items()}


def _check_tfds_split(
    tfds, tfds_name: str, split: Any, data_dir: str | None, cause=None
) -> None:
    """Raises when a slice of a TFDS split string selects no example.

    Parts TFDS reads differently from the local data sets (mixed units such
    as `train[5:50%]`, shards, fractions) are left to TFDS. With the split
    sizes known (the data set is prepared), slices are resolved exactly;
    otherwise only those empty for every split size are refused.
    """
    if not isinstance(split, str) or "[" not in split:
        return
    sizes = None
    for part in re.split(r"\s*\+\s*", split.strip()):
        match = _SPLIT_PATTERN.match(part.replace(" ", ""))
        if match is None or not match["colon"]:
            continue
        start, stop = match["start"], match["stop"]
        if start and stop and start.endswith("%") != stop.endswith("%"):
            continue
        percents = [int(b[:-1]) for b in (start, stop) if b and b.endswith("%")]
        if any(abs(percent) > 100 for percent in percents):
            continue
        if sizes is None:
            try:
                sizes = _tfds_split_sizes(
                    tfds.builder(tfds_name, data_dir=data_dir).info
                )
            except tfds.core.registered.DatasetNotFoundError as err:
                raise _unknown_name_error(tfds_name, err) from err
            except Exception:  # Best effort: tfds.load reports the problem.
                sizes = {}
        name = match["split"]
        if name in sizes:
            try:
                _resolve_range(split, part, start, stop, name, sizes[name])
            except ValueError as err:
                raise err from cause
        elif _selects_nothing_at_any_size(start, stop):
            raise _empty_split_error(
                split, part, f"selects no example whatever the size of split {name!r}"
            ) from cause


def _from_tfds_examples(ds: tf.data.Dataset, tfds_name: str) -> tf.data.Dataset:
    spec = ds.element_spec
    if not isinstance(spec, Mapping) or "image" not in spec:
        keys = sorted(spec) if isinstance(spec, Mapping) else spec
        raise ValueError(
            f"TFDS data set {tfds_name!r} has no 'image' feature, so it is not "
            f"an image data set. Features: {keys}"
        )
    if spec["image"].dtype != tf.uint8:
        raise ValueError(
            f"TFDS data set {tfds_name!r} has {spec['image'].dtype.name} images; "
            "only uint8 images are supported."
        )
    has_labels = "label" in spec

    def to_dict(example):
        out = {"images": example["image"]}
        if has_labels:
            out["labels"] = tf.cast(example["label"], tf.int64)
        return out

    return ds.map(to_dict, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _tfds_info(name: str, tfds_name: str, data_dir: PathLike | None) -> DatasetInfo:
    tfds = _tfds()
    data_dir = None if data_dir is None else os.fspath(data_dir)
    try:
        info = tfds.builder(tfds_name, data_dir=data_dir).info
    except tfds.core.registered.DatasetNotFoundError as err:
        raise _unknown_name_error(tfds_name, err) from err
    except Exception as err:
        raise DataUnavailableError(
            f"Could not read the TFDS metadata of {tfds_name!r}: {err!r}"
        ) from err
    features = info.features
    if "image" not in features:
        raise ValueError(
            f"TFDS data set {tfds_name!r} has no 'image' feature, so it is not "
            f"an image data set. Features: {sorted(features)}"
        )
    shape = tuple(features["image"].shape)
    num_classes = None
    if "label" in features:
        num_classes = getattr(features["label"], "num_classes", None)
    return DatasetInfo(
        name=name,
        image_shape=shape,
        num_levels=_TFDS_NUM_LEVELS.get(_bare_tfds_name(tfds_name), 256),
        num_classes=num_classes,
        split_sizes=_tfds_split_sizes(info),
    )
