"""Bad inputs: every one is a clear error, and none touches a file.

One table of cases across the model API, data, zoo, serving clients, the
exported SavedModel signatures, the command line and training/resume. Each
case names the error class and two regexes that the message must match:
`must`, what must hold, and `received`, what was received. A command line
case runs `pixel_keras.cli.main` in-process and expects exit status 2 and
exactly one line on stderr, starting `pixel-keras: error:`, with no
traceback; the regexes apply to that line.

A case with a `setup` works on files: the setup writes them (a copy of a
trained run, a foreign directory, a corrupt preset, ...) and returns the
directory involved. Every file under it is snapshotted (path -> bytes)
before the call, and each must still be there, byte for byte, afterwards.

Expensive things are built once per module, lazily (`Resources`): the tiny
`test_*` preset models (8x8 images), one SavedModel export of
`test_pixelcnn`, and one tiny run directory trained on digits, which the
file cases copy with `shutil.copytree`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pixel_keras import cli

# A tiny digits run: 8x8x1 images, 17 levels, one step per epoch. The shared
# run is trained for 2 epochs (keeping checkpoint 2 only); the cases ask
# for 3, so that a resume that wrongly goes ahead trains.
TINY = {"hidden_maps": 2, "output_maps": 2, "num_residual_blocks": 0}
TRAIN = {
    "model": "pixelcnn",
    "dataset": "digits",
    "model_config": TINY,
    "epochs": 3,
    "batch_size": 16,
    "train_split": "train[:64]",
    "test_split": "test[:16]",
    "steps_per_epoch": 1,
    "samples_per_epoch": 0,
    "verbose": 0,
}
# The same run on the command line.
TRAIN_OPTIONS = {
    "--model": "pixelcnn",
    "--hidden-maps": "2",
    "--output-maps": "2",
    "--residual-blocks": "0",
    "--dataset": "digits",
    "--train-split": "train[:64]",
    "--test-split": "test[:16]",
    "--epochs": "3",
    "--batch-size": "16",
    "--steps-per-epoch": "1",
    "--samples-per-epoch": "0",
    "--verbose": "0",
}
CHECKPOINT = "checkpoints/epoch_002.keras"


# ---------------------------------------------------------------------------
# Shared, lazily built resources
# ---------------------------------------------------------------------------


class Resources:
    """Models, one SavedModel export and one trained run, built on first use."""

    def __init__(self, tmp_path_factory):
        self._factory = tmp_path_factory

    @functools.cached_property
    def rgb(self):
        """`test_pixelcnn`: 8x8x3 images, 256 levels, unconditional."""
        from pixel_keras import zoo

        return zoo.load("test_pixelcnn", weights=False)

    @functools.cached_property
    def cond(self):
        """`test_gated_pixelcnn_conditional`: 8x8x1, 256 levels, 10 classes."""
        from pixel_keras import zoo

        return zoo.load("test_gated_pixelcnn_conditional", weights=False)

    @functools.cached_property
    def signatures(self):
        """The signatures of `test_pixelcnn`, exported once and loaded."""
        import tensorflow as tf

        from pixel_keras import export

        base = self._factory.mktemp("export")
        path = export.export_saved_model(self.rgb, base / "test_pixelcnn")
        return tf.saved_model.load(str(path)).signatures

    @functools.cached_property
    def trained_run(self):
        """A run directory trained for 2 epochs on digits (do not modify)."""
        from pixel_keras import training

        out = self._factory.mktemp("trained") / "run"
        training.train(**{**TRAIN, "epochs": 2}, out_dir=str(out))
        return out

    @functools.cached_property
    def digits_model(self):
        """The trained run's model: 8x8x1 images, 17 levels."""
        from pixel_keras import training

        return training.load_checkpoint(str(self.trained_run))


@pytest.fixture(scope="module")
def resources(tmp_path_factory):
    return Resources(tmp_path_factory)


class Ctx:
    """What a case sees: the shared resources and its own `tmp` directory."""

    def __init__(self, res, tmp):
        self.res = res
        self.tmp = tmp
        self.dir = None  # the directory a setup returned (watched)
        self.vars = {}  # more `<name>` placeholders for the regexes

    def copy_run(self, name="run"):
        target = self.tmp / name
        shutil.copytree(self.res.trained_run, target)
        return target


@dataclasses.dataclass(frozen=True)
class Case:
    """One bad input.

    `call(ctx)` makes the bad call (library cases); `argv(ctx)` gives the
    command line (CLI cases, `error` None). `must` and `received` are
    regexes on the message; `<dir>`, `<tmp>` and `ctx.vars` keys in angle
    brackets are replaced by the escaped values.
    """

    id: str
    area: str
    error: type | tuple | None
    must: str
    received: str
    call: Callable[[Ctx], Any] | None = None
    argv: Callable[[Ctx], list] | None = None
    setup: Callable[[Ctx], Path | None] | None = None


CASES: list[Case] = []


def case(area, id, error, must, received, call, setup=None):
    CASES.append(
        Case(f"{area}/{id}", area, error, must, received, call=call, setup=setup)
    )


def cli_case(id, argv, must, received, setup=None):
    CASES.append(Case(f"cli/{id}", "cli", None, must, received, argv=argv, setup=setup))


def _errors(name):
    """Error classes that need an import (resolved when the case runs)."""
    if name == "ServingConnectionError":
        from pixel_keras import serving

        return serving.ServingConnectionError
    import tensorflow as tf

    return {"InvalidArgument": tf.errors.InvalidArgumentError}[name]


# ---------------------------------------------------------------------------
# Helpers for the cases
# ---------------------------------------------------------------------------


def rgb(n=1, value=0, dtype="uint8", shape=(8, 8, 3)):
    return np.full((n, *shape), value, dtype)


def gray(n=1, value=0, dtype="uint8"):
    return np.full((n, 8, 8, 1), value, dtype)


def train_argv(out, *flags, **options):
    """`pixel-keras train` with the tiny run's options, some replaced."""
    opts = dict(TRAIN_OPTIONS)
    for key, value in options.items():
        opts["--" + key.replace("_", "-")] = value
    argv = ["train"]
    for key, value in opts.items():
        argv += [key, str(value)]
    return [*argv, *flags, "--out", str(out)]


def train(out, **overrides):
    from pixel_keras import training

    return training.train(**{**TRAIN, **overrides, "out_dir": str(out)})


def write(path, content):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, (dict, list)):
        content = json.dumps(content)
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    return path


# Setups: each returns the directory whose files must stay untouched.


def run_copy(ctx):
    ctx.dir = ctx.copy_run()
    return ctx.dir


def run_without_state(ctx):
    run = run_copy(ctx)
    (run / "state.json").unlink()
    return run


def run_with(rel, content):
    def setup(ctx):
        run = run_copy(ctx)
        write(run / rel, content)
        return run

    return setup


def run_minus(rel):
    def setup(ctx):
        run = run_copy(ctx)
        (run / rel).unlink()
        return run

    return setup


def foreign_dir(ctx):
    """A user's directory with no state.json and no checkpoints."""
    mine = ctx.tmp / "mine"
    write(mine / "config.json", {"app": "mine", "threshold": 0.5})
    write(mine / "logs" / "app.log", "started\nstopped\n")
    write(mine / "samples" / "photo.png", b"\x89PNG\r\n\x1a\n not really a png")
    return mine


def files(named):
    """A setup writing files `{relative path: content}` under `tmp` to watch."""

    def setup(ctx):
        for name, content in named.items():
            write(ctx.tmp / name, content)
        return ctx.tmp

    return setup


def preset_dir(config=None, metadata=None, weights_of=None, **extra):
    """A preset directory `tmp/preset`; config None leaves out config.json."""

    def setup(ctx):
        path = ctx.tmp / "preset"
        path.mkdir()
        if config is not None:
            write(path / "config.json", config)
        if metadata is not None:
            write(path / "metadata.json", metadata)
        for name, content in extra.items():
            write(path / name.replace("__", "/"), content)
        ctx.vars["name"] = path.name
        return path

    return setup


def saved_preset_with_wrong_sha256(ctx):
    """`save_preset(test_pixelcnn)`, then its metadata sha256 replaced."""
    from pixel_keras import zoo

    path = zoo.save_preset(ctx.res.rgb, ctx.tmp / "preset")
    meta = json.loads((path / "metadata.json").read_text())
    ctx.vars["sha"] = meta["sha256"]  # the file's real digest
    meta["sha256"] = "0" * 64
    write(path / "metadata.json", json.dumps(meta, indent=2))
    return path


def idx(dims, data=None):
    """An IDX file (unsigned bytes) with `dims`; data defaults to zeros."""
    header = bytes([0, 0, 8, len(dims)]) + np.array(dims, ">u4").tobytes()
    if data is None:
        data = bytes(int(np.prod(dims)))
    return header + data


def fashion_dir(images, labels):
    def setup(ctx):
        path = ctx.tmp / "fashion"
        write(path / "train-images-idx3-ubyte", images)
        write(path / "train-labels-idx1-ubyte", labels)
        return path

    return setup


def export_base(ctx):
    """An export base directory with a version 1 already in it."""
    base = ctx.tmp / "exports"
    write(base / "1" / "saved_model.pb", b"version one, keep me")
    return base


def sig(name, **inputs):
    """Calls signature `name` of the exported `test_pixelcnn`."""

    def call(ctx):
        import tensorflow as tf

        defaults = {
            "images": rgb(),
            "known": rgb(),
            "seed": np.array([1], "int64"),
            "temperature": np.float32(1.0),
            "position": np.int32(0),
        }
        wanted = {
            "serving_default": ("images",),
            "sample": ("seed", "temperature"),
            "sample_step": ("images", "position", "seed", "temperature"),
            "complete": ("images", "known", "seed", "temperature"),
        }[name]
        args = {k: tf.constant(inputs.get(k, defaults[k])) for k in wanted}
        return ctx.res.signatures[name](**args)

    return call


def shape_re(*dims):
    """A shape in any notation: (1, 24, 8, 1), [1 24 8 1], [1, 24, 8, 1]."""
    return r"\D{1,3}".join(str(d) for d in dims)


# ---------------------------------------------------------------------------
# Model API (no files)
# ---------------------------------------------------------------------------


def _pixelcnn(**kwargs):
    from pixel_keras.models.pixel_cnn import PixelCNN

    return PixelCNN(**kwargs)


def _gated(**kwargs):
    from pixel_keras.models.gated_pixel_cnn import GatedPixelCNN

    return GatedPixelCNN(**kwargs)


def _row_lstm(**kwargs):
    from pixel_keras.models.pixel_rnn import RowLSTMPixelRNN

    return RowLSTMPixelRNN(**kwargs)


def _model_class(name):
    from pixel_keras.models import registry

    return registry.get_model_class(name)


M = "model"
case(
    M,
    "ctor_num_levels_1",
    ValueError,
    r"\[2, 256\]",
    r"num_levels=1\b",
    lambda c: _pixelcnn(image_shape=(8, 8, 1), num_levels=1),
)
case(
    M,
    "ctor_num_levels_257",
    ValueError,
    r"\[2, 256\]",
    r"num_levels=257\b",
    lambda c: _pixelcnn(image_shape=(8, 8, 1), num_levels=257),
)
case(
    M,
    "ctor_image_shape_rank_2",
    ValueError,
    r"three positive ints",
    r"image_shape=\(8, 8\)",
    lambda c: _pixelcnn(image_shape=(8, 8)),
)
case(
    M,
    "ctor_image_shape_zero",
    ValueError,
    r"three positive ints",
    r"image_shape=\(8, 0, 1\)",
    lambda c: _pixelcnn(image_shape=(8, 0, 1)),
)
case(
    M,
    "ctor_hidden_maps_below_channels",
    ValueError,
    r">= the number of image channels \(3\)",
    r"hidden_maps=2\b",
    lambda c: _pixelcnn(image_shape=(8, 8, 3), hidden_maps=2),
)
case(
    M,
    "ctor_residual_blocks_negative",
    ValueError,
    r">= 0",
    r"num_residual_blocks=-1\b",
    lambda c: _pixelcnn(image_shape=(8, 8, 1), num_residual_blocks=-1),
)
case(
    M,
    "ctor_gated_even_kernel",
    ValueError,
    r"odd int >= 3",
    r"kernel_size=4\b",
    lambda c: _gated(image_shape=(8, 8, 1), kernel_size=4),
)
case(
    M,
    "ctor_gated_num_classes_1",
    ValueError,
    r"int >= 2",
    r"num_classes=1\b",
    lambda c: _gated(image_shape=(8, 8, 1), num_classes=1),
)
case(
    M,
    "ctor_row_lstm_even_kernel",
    ValueError,
    r"odd positive int",
    r"kernel_size=2\b",
    lambda c: _row_lstm(image_shape=(8, 8, 1), kernel_size=2),
)
case(
    M,
    "registry_unknown_name",
    ValueError,
    r"Available: .*pixelcnn",
    r"'pixelcnnn'",
    lambda c: _model_class("pixelcnnn"),
)
# Direct calls check concrete input too (the README promises the checks).
case(
    M,
    "call_float_images",
    ValueError,
    r"integer",
    r"float32",
    lambda c: c.res.rgb(rgb(dtype="float32")),
)
case(
    M,
    "call_out_of_range_images",
    ValueError,
    r"\[0, 255\]",
    r"\b300\b",
    lambda c: c.res.rgb(rgb(value=300, dtype="int32")),
)
case(
    M,
    "call_class_label_99",
    ValueError,
    r"\[0, 9\]|num_classes=10",
    r"\b99\b",
    lambda c: c.res.cond({"images": gray(), "class_label": np.array([99], "int32")}),
)
case(
    M,
    "log_prob_float_images",
    ValueError,
    r"integer",
    r"float32",
    lambda c: c.res.rgb.log_prob(rgb(dtype="float32")),
)
case(
    M,
    "log_prob_rank_3",
    ValueError,
    r"rank 4",
    r"\(8, 8, 3\)",
    lambda c: c.res.rgb.log_prob(np.zeros((8, 8, 3), "uint8")),
)
case(
    M,
    "log_prob_wrong_image_shape",
    ValueError,
    r"\(8, 8, 3\)",
    r"\(2, 8, 8, 1\)",
    lambda c: c.res.rgb.log_prob(gray(2)),
)
case(
    M,
    "log_prob_negative_values",
    ValueError,
    r"\[0, 255\]",
    r"-1\b",
    lambda c: c.res.rgb.log_prob(rgb(value=-1, dtype="int32")),
)
case(
    M,
    "log_prob_empty_batch",
    ValueError,
    r"at least one|non-empty|>= ?1",
    r"\(0, 8, 8, 3\)",
    lambda c: c.res.rgb.log_prob(rgb(0)),
)
case(
    M,
    "log_prob_batch_size_0",
    ValueError,
    r"batch_size.*(positive|>= ?1|> ?0)",
    r"batch_size=0\b",
    lambda c: c.res.rgb.log_prob(rgb(2), batch_size=0),
)
case(
    M,
    "bits_per_dim_value_256",
    ValueError,
    r"\[0, 255\]",
    r"\b256\b",
    lambda c: c.res.rgb.bits_per_dim(rgb(value=256, dtype="int32")),
)
case(
    M,
    "log_prob_label_on_unconditional",
    ValueError,
    r"takes no|unconditional",
    r"class_label=1\b",
    lambda c: c.res.rgb.log_prob(rgb(), class_label=1),
)
case(
    M,
    "cond_log_prob_missing_label",
    ValueError,
    r"required",
    r"class_label=None",
    lambda c: c.res.cond.log_prob(gray(2)),
)
case(
    M,
    "cond_log_prob_string_label",
    ValueError,
    r"int",
    r"'3'|\bstr\b|<U1",
    lambda c: c.res.cond.log_prob(gray(2), class_label="3"),
)
case(
    M,
    "cond_log_prob_label_10",
    ValueError,
    r"\[0, 9\]",
    r"\b10\b",
    lambda c: c.res.cond.log_prob(gray(2), class_label=[1, 10]),
)
case(
    M,
    "cond_log_prob_label_negative",
    ValueError,
    r"\[0, 9\]",
    r"-1\b",
    lambda c: c.res.cond.log_prob(gray(2), class_label=[-1, 0]),
)
case(
    M,
    "cond_log_prob_label_batch",
    ValueError,
    r"\(2,\)",
    r"\(3,\)",
    lambda c: c.res.cond.log_prob(gray(2), class_label=[1, 2, 3]),
)
case(
    M,
    "cond_log_prob_float_label",
    ValueError,
    r"integers",
    r"float",
    lambda c: c.res.cond.log_prob(gray(2), class_label=np.array([1.5, 2.0])),
)
case(
    M,
    "sample_temperature_inf",
    ValueError,
    r"finite",
    r"temperature=inf\b",
    lambda c: c.res.rgb.sample(1, seed=0, temperature=float("inf"), verbose=0),
)
case(
    M,
    "sample_temperature_nan",
    ValueError,
    r"finite",
    r"temperature=nan\b",
    lambda c: c.res.rgb.sample(1, seed=0, temperature=float("nan"), verbose=0),
)
case(
    M,
    "sample_temperature_zero",
    ValueError,
    r"> ?0",
    r"temperature=0\b",
    lambda c: c.res.rgb.sample(1, seed=0, temperature=0, verbose=0),
)
case(
    M,
    "sample_temperature_negative",
    ValueError,
    r"> ?0",
    r"temperature=-0\.5\b",
    lambda c: c.res.rgb.sample(1, seed=0, temperature=-0.5, verbose=0),
)
case(
    M,
    "sample_temperature_string",
    ValueError,
    r"number",
    r"temperature='hot'",
    lambda c: c.res.rgb.sample(1, seed=0, temperature="hot", verbose=0),
)
case(
    M,
    "sample_num_samples_0",
    ValueError,
    r"positive int",
    r"num_samples=0\b",
    lambda c: c.res.rgb.sample(0, seed=0, verbose=0),
)
case(
    M,
    "sample_num_samples_float",
    ValueError,
    r"positive int",
    r"num_samples=2\.5\b",
    lambda c: c.res.rgb.sample(2.5, seed=0, verbose=0),
)
case(
    M,
    "sample_seed_wrong_length",
    ValueError,
    r"one int per sample\b.*\b2\b",
    r"seed=\[1, 2, 3\]",
    lambda c: c.res.rgb.sample(2, seed=[1, 2, 3], verbose=0),
)
case(
    M,
    "sample_seed_float",
    ValueError,
    r"None, an int, or .*one int per sample",
    r"seed=1\.5\b",
    lambda c: c.res.rgb.sample(1, seed=1.5, verbose=0),
)
case(
    M,
    "sample_method_unknown",
    ValueError,
    r"\{'naive', 'cached'\}",
    r"method='fast'",
    lambda c: c.res.rgb.sample(1, seed=0, method="fast", verbose=0),
)
case(
    M,
    "sample_conditioned_on_not_a_pair",
    ValueError,
    r"pair \(images, mask\)",
    r"ndarray",
    lambda c: c.res.rgb.sample(1, seed=0, conditioned_on=rgb(), verbose=0),
)
case(
    M,
    "sample_mask_shape",
    ValueError,
    r"\(2, 8, 8, 3\)",
    r"\(2, 8, 8, 1\)",
    lambda c: c.res.rgb.sample(
        2, seed=0, conditioned_on=(rgb(2), np.ones((2, 8, 8, 1), bool)), verbose=0
    ),
)
case(
    M,
    "sample_known_mask_fractional",
    ValueError,
    r"bool|0 ?(/|or|and) ?1",
    r"0\.5\b",
    lambda c: c.res.rgb.sample(
        1, seed=0, conditioned_on=(rgb(), np.full((1, 8, 8, 3), 0.5)), verbose=0
    ),
)
case(
    M,
    "sample_known_mask_int_2",
    ValueError,
    r"bool|0 ?(/|or|and) ?1",
    r"\b2\b",
    lambda c: c.res.rgb.sample(
        1, seed=0, conditioned_on=(rgb(), np.full((1, 8, 8, 3), 2)), verbose=0
    ),
)
case(
    M,
    "sample_given_out_of_range",
    ValueError,
    r"\[0, 255\]",
    r"\b256\b",
    lambda c: c.res.rgb.sample(
        1, seed=0, conditioned_on=(rgb(value=256, dtype="int32"), rgb()), verbose=0
    ),
)
case(
    M,
    "sample_given_float",
    ValueError,
    r"integer",
    r"float64",
    lambda c: c.res.rgb.sample(
        1, seed=0, conditioned_on=(rgb(dtype="float64"), rgb()), verbose=0
    ),
)
case(
    M,
    "sample_given_batch_mismatch",
    ValueError,
    r"num_samples=3|\(3, 8, 8, 3\)",
    r"\(2, 8, 8, 3\)",
    lambda c: c.res.rgb.sample(3, seed=0, conditioned_on=(rgb(2), rgb(2)), verbose=0),
)
case(
    M,
    "cond_sample_label_10",
    ValueError,
    r"\[0, 9\]",
    r"\b10\b",
    lambda c: c.res.cond.sample(2, seed=0, class_label=10, verbose=0),
)
case(
    M,
    "cond_sample_string_label",
    ValueError,
    r"int",
    r"'cat'|\bstr\b|<U3",
    lambda c: c.res.cond.sample(2, seed=0, class_label="cat", verbose=0),
)
case(
    M,
    "cond_sample_missing_label",
    ValueError,
    r"required",
    r"class_label=None",
    lambda c: c.res.cond.sample(2, seed=0, verbose=0),
)
case(
    M,
    "sample_label_on_unconditional",
    ValueError,
    r"takes no|unconditional",
    r"class_label=0\b",
    lambda c: c.res.rgb.sample(1, seed=0, class_label=0, verbose=0),
)


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


def _load(*args, **kwargs):
    from pixel_keras import data

    return data.load(*args, **kwargs)


def _get_info(*args, **kwargs):
    from pixel_keras import data

    return data.get_info(*args, **kwargs)


def _to_numpy(ds, **kwargs):
    from pixel_keras import data

    return data.to_numpy(ds, **kwargs)


def _range_ds():
    import tensorflow as tf

    return tf.data.Dataset.range(3)


# An empty or reversed range is an error, not an empty data set: the
# message says the slice must select at least one example.
EMPTY_MUST = r"empty|at least one|start.*(<|before|less than).*stop"
D = "data"
case(
    D,
    "load_empty_name",
    ValueError,
    r"non-empty data set name",
    r"name=''",
    lambda c: _load(""),
)
case(
    D,
    "load_name_not_a_string",
    ValueError,
    r"non-empty data set name",
    r"name=42\b",
    lambda c: _load(42),
)
case(
    D,
    "load_unknown_split",
    ValueError,
    r"one of \('train', 'test'\)",
    r"split='validation'",
    lambda c: _load("digits", "validation"),
)
case(
    D,
    "load_reversed_split",
    ValueError,
    EMPTY_MUST,
    r"train\[5:2\]",
    lambda c: _load("digits", "train[5:2]"),
)
case(
    D,
    "load_empty_split",
    ValueError,
    EMPTY_MUST,
    r"train\[10:10\]",
    lambda c: _load("digits", "train[10:10]"),
)
case(
    D,
    "load_split_past_the_end",
    ValueError,
    EMPTY_MUST,
    r"test\[400:\]",
    lambda c: _load("digits", "test[400:]"),
)
case(
    D,
    "load_binarized_reversed_split",
    ValueError,
    EMPTY_MUST,
    r"test\[9:3\]",
    lambda c: _load("binarized_digits", "test[9:3]"),
)
case(
    D,
    "load_percent_out_of_range",
    ValueError,
    r"\[-100%, 100%\]",
    r"train\[:150%\]",
    lambda c: _load("digits", "train[:150%]"),
)
case(
    D,
    "load_malformed_split",
    ValueError,
    r"\[start:stop\]",
    r"split='train\[:10'",
    lambda c: _load("digits", "train[:10"),
)
case(
    D,
    "load_slice_without_colon",
    ValueError,
    r"colon",
    r"split='train\[5\]'",
    lambda c: _load("digits", "train[5]"),
)
case(
    D,
    "load_split_not_a_string",
    ValueError,
    r"one of \('train', 'test'\)",
    r"split=None",
    lambda c: _load("digits", None),
)
case(
    D,
    "get_info_blank_name",
    ValueError,
    r"non-empty data set name",
    r"name='  '",
    lambda c: _get_info("  "),
)
case(
    D,
    "get_info_bare_tfds_prefix",
    ValueError,
    r"TFDS data set after 'tfds:'",
    r"name='tfds:'",
    lambda c: _get_info("tfds:"),
)
case(
    D,
    "to_numpy_negative_limit",
    ValueError,
    r"non-negative int",
    r"limit=-1\b",
    lambda c: _to_numpy(_load("digits", "test[:4]"), limit=-1),
)
case(
    D,
    "to_numpy_not_dicts",
    ValueError,
    r"'images' key",
    r"element_spec=",
    lambda c: _to_numpy(_range_ds()),
)
case(
    D,
    "fashion_mnist_bad_magic",
    ValueError,
    r"expected .*0x00000803",
    r"<dir>.*0x00000801",
    lambda c: _load("fashion_mnist", "train", data_dir=c.dir),
    setup=fashion_dir(bytes([0, 0, 8, 1, 0, 0, 0, 2]), idx([2])),
)
case(
    D,
    "fashion_mnist_truncated",
    ValueError,
    r"declares dims \(2, 28, 28\)",
    r"holds 100 data bytes",
    lambda c: _load("fashion_mnist", "train", data_dir=c.dir),
    setup=fashion_dir(idx([2, 28, 28], bytes(100)), idx([2])),
)
case(
    D,
    "fashion_mnist_label_12",
    ValueError,
    r"\[0, 9\]",
    r"label 12\b",
    lambda c: _load("fashion_mnist", "train", data_dir=c.dir),
    setup=fashion_dir(idx([2, 28, 28]), idx([2], bytes([3, 12]))),
)


# ---------------------------------------------------------------------------
# Zoo
# ---------------------------------------------------------------------------


def _zoo_load(*args, **kwargs):
    from pixel_keras import zoo

    return zoo.load(*args, **kwargs)


def _save_preset(ctx, path):
    from pixel_keras import zoo

    return zoo.save_preset(ctx.res.rgb, path)


def _save_row_lstm_weights(ctx):
    from pixel_keras import zoo

    path = ctx.tmp / "other.weights.h5"
    zoo.load("test_row_lstm", weights=False).save_weights(str(path))
    return ctx.tmp


PIXELCNN_CONFIG = {
    "model": "pixelcnn",
    "config": {
        "image_shape": [8, 8, 3],
        "num_levels": 256,
        "hidden_maps": 6,
        "num_residual_blocks": 1,
        "output_maps": 6,
    },
}
Z = "zoo"
case(
    Z,
    "unknown_preset",
    ValueError,
    r"Available: .*test_pixelcnn",
    r"'no_such_preset'",
    lambda c: _zoo_load("no_such_preset"),
)
case(
    Z,
    "name_not_a_string",
    (TypeError, ValueError),
    r"preset name|directory",
    r"\b42\b|\bint\b",
    lambda c: _zoo_load(42),
)
case(
    Z,
    "dir_without_config_json",
    ValueError,
    r"config\.json",
    r"<dir>",
    lambda c: _zoo_load(c.dir),
    setup=preset_dir(metadata={"dataset": "digits"}),
)
case(
    Z,
    "corrupt_config_json",
    ValueError,
    r"JSON",
    r"<dir>/config\.json",
    lambda c: _zoo_load(c.dir),
    setup=preset_dir(config='{"model": "pixelcnn",'),
)
case(
    Z,
    "config_json_without_model",
    ValueError,
    r"must hold \{[\"']model[\"']",
    r"\{\"config\": \{\}\}|\['config'\]",
    lambda c: _zoo_load(c.dir),
    setup=preset_dir(config={"config": {}}),
)
case(
    Z,
    "config_json_unknown_model",
    ValueError,
    r"Available: .*pixelcnn",
    r"'pixelcnnn'",
    lambda c: _zoo_load(c.dir),
    setup=preset_dir(config={"model": "pixelcnnn", "config": {}}),
)
case(
    Z,
    "corrupt_metadata_json",
    ValueError,
    r"JSON",
    r"<dir>/metadata\.json",
    lambda c: _zoo_load(c.dir),
    setup=preset_dir(config=PIXELCNN_CONFIG, metadata="{,}"),
)
case(
    Z,
    "weights_sha256_mismatch",
    ValueError,
    r"0{64}",
    r"<sha>",
    lambda c: _zoo_load(c.dir),
    setup=saved_preset_with_wrong_sha256,
)
case(
    Z,
    "weights_bad_type",
    ValueError,
    r"'auto', True, False or a path",
    r"weights=42\b",
    lambda c: _zoo_load("test_pixelcnn", weights=42),
)
case(
    Z,
    "weights_file_missing",
    FileNotFoundError,
    r"existing|not found|does not exist|[Nn]o such",
    r"<tmp>/missing\.weights\.h5",
    lambda c: _zoo_load("test_pixelcnn", weights=str(c.tmp / "missing.weights.h5")),
)
case(
    Z,
    "weights_true_without_weights",
    ValueError,
    r"no trained weights",
    r"'test_pixelcnn'",
    lambda c: _zoo_load("test_pixelcnn", weights=True),
)
case(
    Z,
    "weights_of_another_architecture",
    ValueError,
    r"architecture PixelCNN",
    r"other\.weights\.h5",
    lambda c: _zoo_load("test_pixelcnn", weights=str(c.tmp / "other.weights.h5")),
    setup=_save_row_lstm_weights,
)
case(
    Z,
    "overrides_with_weights",
    ValueError,
    r"cannot be combined",
    r"hidden_maps",
    lambda c: _zoo_load("test_pixelcnn", weights=True, hidden_maps=8),
)
case(
    Z,
    "save_preset_existing_dir",
    FileExistsError,
    r"overwrite=True",
    r"<dir>",
    lambda c: _save_preset(c, c.dir),
    setup=preset_dir(config=PIXELCNN_CONFIG),
)
case(
    Z,
    "weights_url_bad_scheme",
    ValueError,
    r"https?\b.*\bfile\b|one of",
    r"ftp://example\.com/w\.h5",
    lambda c: _zoo_load(c.dir),
    setup=preset_dir(
        config=PIXELCNN_CONFIG,
        metadata={"weights_url": "ftp://example.com/w.h5", "sha256": "0" * 64},
    ),
)
case(
    Z,
    "weights_url_without_sha256",
    ValueError,
    r"sha256",
    r"'<name>'",
    lambda c: _zoo_load(c.dir),
    setup=preset_dir(
        config=PIXELCNN_CONFIG, metadata={"weights_url": "file:///nonexistent/w.h5"}
    ),
)


# ---------------------------------------------------------------------------
# Serving clients (no server: a closed port)
# ---------------------------------------------------------------------------


def _rest(url="http://127.0.0.1:9", timeout=5):
    from pixel_keras import serving

    return serving.RestClient(url, model_name="pixel", timeout=timeout)


S = "serving"
case(
    S,
    "rest_images_rank_3",
    ValueError,
    r"rank 4",
    r"\(8, 8, 1\)",
    lambda c: _rest().log_prob(np.zeros((8, 8, 1), "uint8")),
)
case(
    S,
    "rest_float_seeds",
    ValueError,
    r"integers",
    r"float64",
    lambda c: _rest().sample([1.5, 2.5]),
)
# Connection errors name the URL they could not reach.
case(
    S,
    "rest_url_without_scheme",
    ValueError,
    r"http:// or https://",
    r"url='localhost:8501'",
    lambda c: _rest("localhost:8501"),
)
case(
    S, "rest_timeout_0", ValueError, r"> ?0", r"timeout=0\b", lambda c: _rest(timeout=0)
)
case(
    S,
    "rest_connection_refused",
    "ServingConnectionError",
    r"connect|reach|refused",
    r"http://127\.0\.0\.1:9\b",
    lambda c: _rest().log_prob(gray()),
)


# ---------------------------------------------------------------------------
# Exported SavedModel signatures of test_pixelcnn (8x8x3, 192 sub-pixels)
# ---------------------------------------------------------------------------


def _export(ctx, model=None, **kwargs):
    from pixel_keras import export

    return export.export_saved_model(
        ctx.res.rgb if model is None else model, ctx.dir, **kwargs
    )


def _not_a_pixel_model():
    import keras

    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])


IA = "InvalidArgument"
X = "export"
# Full shapes are checked, not just element counts (TF Serving's C++ loader
# feeds any shape into the placeholders).
case(
    X,
    "sample_step_images_4x16",
    IA,
    shape_re(8, 8, 3),
    shape_re(1, 4, 16, 3),
    sig("sample_step", images=rgb(shape=(4, 16, 3))),
)
case(
    X,
    "serving_default_images_4x16",
    IA,
    shape_re(8, 8, 3),
    shape_re(1, 4, 16, 3),
    sig("serving_default", images=rgb(shape=(4, 16, 3))),
)
case(
    X,
    "complete_images_4x16",
    IA,
    shape_re(8, 8, 3),
    shape_re(1, 4, 16, 3),
    sig("complete", images=rgb(shape=(4, 16, 3)), known=rgb(shape=(4, 16, 3))),
)
case(
    X,
    "complete_known_24x8x1",
    IA,
    shape_re(8, 8, 3),
    shape_re(1, 24, 8, 1),
    sig("complete", known=rgb(shape=(24, 8, 1))),
)
case(
    X,
    "complete_known_batch_2",
    IA,
    r"known",
    r"\[2\]|\b2\D{1,3}8\D{1,3}8\D{1,3}3",
    sig("complete", known=rgb(2)),
)
case(
    X,
    "complete_seed_batch_2",
    IA,
    r"one entry per image",
    r"\[2\]",
    sig("complete", seed=np.array([1, 2], "int64")),
)
case(
    X,
    "sample_step_seed_batch_2",
    IA,
    r"one entry per image",
    r"\[2\]",
    sig("sample_step", seed=np.array([1, 2], "int64")),
)
case(
    X,
    "sample_step_position_500",
    IA,
    r"position.*(\[0, 191\]|< H\*W\*C = 192)",
    r"\b500\b",
    sig("sample_step", position=np.int32(500)),
)
case(
    X,
    "sample_step_position_negative",
    IA,
    r"position.*(\[0, 191\]|>= 0)",
    r"-3\b",
    sig("sample_step", position=np.int32(-3)),
)
case(
    X,
    "sample_temperature_zero",
    IA,
    r"temperature.*> ?0",
    r"\[0(\.0*)?\]",
    sig("sample", temperature=np.float32(0.0)),
)
case(
    X,
    "sample_temperature_negative",
    IA,
    r"temperature.*> ?0",
    r"-2\.5\b",
    sig("sample", temperature=np.float32(-2.5)),
)
case(
    X,
    "sample_temperature_nan",
    IA,
    r"temperature.*(finite|> ?0)",
    r"\bnan\b",
    sig("sample", temperature=np.float32("nan")),
)
case(
    X,
    "sample_temperature_inf",
    IA,
    r"temperature.*finite",
    r"\binf\b",
    sig("sample", temperature=np.float32("inf")),
)
case(
    X,
    "complete_temperature_inf",
    IA,
    r"temperature.*finite",
    r"\binf\b",
    sig("complete", temperature=np.float32("inf")),
)
case(
    X,
    "sample_step_temperature_inf",
    IA,
    r"temperature.*finite",
    r"\binf\b",
    sig("sample_step", temperature=np.float32("inf")),
)
case(
    X,
    "sample_step_temperature_zero",
    IA,
    r"temperature.*> ?0",
    r"\[0(\.0*)?\]",
    sig("sample_step", temperature=np.float32(0.0)),
)
case(
    X,
    "sample_empty_seed",
    IA,
    r"N >= 1|at least one",
    r"\[0\]",
    sig("sample", seed=np.zeros([0], "int64")),
)
case(
    X,
    "complete_known_value_2",
    IA,
    r"known.*(\b0\b.*\b1\b|bool)",
    r"\[2\]|\b2\b",
    sig("complete", known=rgb(value=2)),
)
case(
    X,
    "export_version_0",
    ValueError,
    r"int >= 1 or None",
    r"version=0\b",
    lambda c: _export(c, version=0),
    setup=export_base,
)
case(
    X,
    "export_version_bool",
    ValueError,
    r"int >= 1 or None",
    r"version=True\b",
    lambda c: _export(c, version=True),
    setup=export_base,
)
case(
    X,
    "export_existing_version",
    FileExistsError,
    r"overwrite=True",
    r"Version 1 already exists in <dir>",
    lambda c: _export(c, version=1),
    setup=export_base,
)
case(
    X,
    "export_not_a_pixel_model",
    ValueError,
    r"AutoregressiveImageModel",
    r"Received: Sequential",
    lambda c: _export(c, model=_not_a_pixel_model()),
    setup=export_base,
)


# ---------------------------------------------------------------------------
# Training, resume, evaluation, checkpoints
# ---------------------------------------------------------------------------


def _evaluate(model, *args, **kwargs):
    from pixel_keras import training

    return training.evaluate(model, *args, **kwargs)


def _load_checkpoint(path):
    from pixel_keras import training

    return training.load_checkpoint(str(path))


def _read_config(path):
    from pixel_keras import training

    return training.read_config(str(path))


def _make_dataset(*args, **kwargs):
    from pixel_keras import training

    return training.make_dataset(*args, **kwargs)


T = "training"
# Data loss: resume without state.json must not start over on top of the
# checkpoints; overwrite must not delete a directory this tool did not write.
case(
    T,
    "resume_without_state_json",
    FileExistsError,
    r"state\.json",
    r"epoch_002\.keras",
    lambda c: train(c.dir, resume=True),
    setup=run_without_state,
)
case(
    T,
    "overwrite_foreign_dir",
    FileExistsError,
    r"state\.json|not a (pixel-keras )?(training )?run|recogni",
    r"<dir>",
    lambda c: train(c.dir, overwrite=True),
    setup=foreign_dir,
)
case(
    T,
    "resume_empty_split",
    ValueError,
    EMPTY_MUST,
    r"train\[5:2\]",
    lambda c: train(c.dir, resume=True, train_split="train[5:2]"),
    setup=run_copy,
)
case(
    T,
    "fresh_empty_split",
    ValueError,
    EMPTY_MUST,
    r"train\[10:10\]",
    lambda c: train(c.tmp / "new", train_split="train[10:10]"),
    setup=files({"keep": "x"}),
)
case(
    T,
    "resume_epochs_0",
    ValueError,
    r"int >= 1",
    r"epochs=0\b",
    lambda c: train(c.dir, resume=True, epochs=0),
    setup=run_copy,
)
case(
    T,
    "resume_batch_size_0",
    ValueError,
    r"positive int|>= ?1",
    r"batch_size=0\b",
    lambda c: train(c.dir, resume=True, batch_size=0),
    setup=run_copy,
)
case(
    T,
    "resume_batch_size_negative",
    ValueError,
    r"positive int|>= ?1",
    r"batch_size=-1\b",
    lambda c: train(c.dir, resume=True, batch_size=-1),
    setup=run_copy,
)
case(
    T,
    "resume_lr_zero",
    ValueError,
    r"> ?0",
    r"learning_rate=0\b",
    lambda c: train(c.dir, resume=True, learning_rate=0),
    setup=run_copy,
)
case(
    T,
    "resume_lr_inf",
    ValueError,
    r"finite",
    r"learning_rate=inf\b",
    lambda c: train(c.dir, resume=True, learning_rate=float("inf")),
    setup=run_copy,
)
case(
    T,
    "lr_string",
    ValueError,
    r"number > 0",
    r"learning_rate='fast'",
    lambda c: train(c.tmp / "new", learning_rate="fast"),
)
case(
    T,
    "steps_per_epoch_0",
    ValueError,
    r"positive int",
    r"steps_per_epoch=0\b",
    lambda c: train(c.tmp / "new", steps_per_epoch=0),
)
case(
    T,
    "samples_per_epoch_negative",
    ValueError,
    r"int >= 0",
    r"samples_per_epoch=-1\b",
    lambda c: train(c.tmp / "new", samples_per_epoch=-1),
)
case(
    T,
    "keep_checkpoints_0",
    ValueError,
    r"int >= 1",
    r"keep_checkpoints=0\b",
    lambda c: train(c.tmp / "new", keep_checkpoints=0),
)
case(
    T,
    "verbose_3",
    ValueError,
    r'"auto", 0, 1 or 2',
    r"verbose=3\b",
    lambda c: train(c.tmp / "new", verbose=3),
)
case(
    T,
    "verbose_string",
    ValueError,
    r'"auto", 0, 1 or 2',
    r"verbose='loud'",
    lambda c: train(c.tmp / "new", verbose="loud"),
)
case(
    T,
    "verbose_bool",
    ValueError,
    r'"auto", 0, 1 or 2',
    r"verbose=True\b",
    lambda c: train(c.tmp / "new", verbose=True),
)
case(
    T,
    "max_minutes_0",
    ValueError,
    r"> ?0",
    r"max_minutes=0\b",
    lambda c: train(c.tmp / "new", max_minutes=0),
)
case(
    T,
    "resume_and_overwrite",
    ValueError,
    r"at most one",
    r"resume=True.*overwrite=True|overwrite=True.*resume=True",
    lambda c: train(c.dir, resume=True, overwrite=True),
    setup=run_copy,
)
case(
    T,
    "unknown_model",
    ValueError,
    r"Available: .*pixelcnn",
    r"'pixelcnnn'",
    lambda c: train(c.tmp / "new", model="pixelcnnn"),
)
case(
    T,
    "unknown_model_argument",
    ValueError,
    r"Available: .*hidden_maps",
    r"hidden_map\b",
    lambda c: train(c.tmp / "new", model_config={"hidden_map": 2}),
)
case(
    T,
    "image_shape_in_model_config",
    ValueError,
    r"comes from the data set",
    r"image_shape=",
    lambda c: train(c.tmp / "new", model_config={"image_shape": (8, 8, 1)}),
)
case(
    T,
    "resume_other_model_config",
    ValueError,
    r"checkpoint: 2\b",
    r"hidden_maps=3\b",
    lambda c: train(c.dir, resume=True, model_config={**TINY, "hidden_maps": 3}),
    setup=run_copy,
)
case(
    T,
    "resume_other_dataset",
    ValueError,
    r"'digits'",
    r"'binarized_digits'",
    lambda c: train(c.dir, resume=True, dataset="binarized_digits"),
    setup=run_copy,
)
case(
    T,
    "existing_run_without_resume",
    FileExistsError,
    r"resume.*overwrite",
    r"<dir>",
    lambda c: train(c.dir),
    setup=run_copy,
)
case(
    T,
    "out_dir_is_a_file",
    FileExistsError,
    r"not a directory",
    r"<tmp>/file\.txt",
    lambda c: train(c.tmp / "file.txt"),
    setup=files({"file.txt": "user data"}),
)
case(
    T,
    "resume_corrupt_state_json",
    ValueError,
    r"JSON|[Uu]nreadable|corrupt",
    r"<dir>/state\.json",
    lambda c: train(c.dir, resume=True),
    setup=run_with("state.json", '{"epoch": 1,'),
)
case(
    T,
    "resume_modified_checkpoint",
    ValueError,
    r"SHA-256|sha256",
    r"epoch_002\.keras",
    lambda c: train(c.dir, resume=True),
    setup=run_with(CHECKPOINT, b"PK\x03\x04 not the checkpoint that was saved"),
)
case(
    T,
    "resume_checkpoint_missing",
    FileNotFoundError,
    r"state\.json",
    r"epoch_002\.keras",
    lambda c: train(c.dir, resume=True),
    setup=run_minus(CHECKPOINT),
)
case(
    T,
    "preset_for_other_images",
    ValueError,
    r"\(8, 8, 3\) with 256 levels",
    r"\(8, 8, 1\) with 17 levels",
    lambda c: train(c.tmp / "new", model=None, model_config={}, preset="test_pixelcnn"),
)
case(
    T,
    "preset_other_model",
    ValueError,
    r"'pixelcnn' model",
    r"model='row_lstm'",
    lambda c: train(
        c.tmp / "new", model="row_lstm", model_config={}, preset="test_pixelcnn"
    ),
)
case(
    T,
    "evaluate_other_num_levels",
    ValueError,
    r"\b17\b",
    r"'binarized_digits'.*\b2\b",
    lambda c: _evaluate(c.res.digits_model, "binarized_digits", "test[:8]"),
)
case(
    T,
    "evaluate_batch_size_0",
    ValueError,
    r"positive|>= ?1",
    r"batch_size=0\b",
    lambda c: _evaluate(c.res.digits_model, "digits", "test[:8]", batch_size=0),
)
case(
    T,
    "evaluate_batch_size_negative",
    ValueError,
    r"positive|>= ?1",
    r"batch_size=-1\b",
    lambda c: _evaluate(c.res.digits_model, "digits", "test[:8]", batch_size=-1),
)
case(
    T,
    "evaluate_empty_split",
    ValueError,
    EMPTY_MUST,
    r"test\[5:2\]",
    lambda c: _evaluate(c.res.digits_model, "digits", "test[5:2]"),
)
case(
    T,
    "evaluate_rgb_images",
    ValueError,
    r"\(8, 8, 1\)",
    r"\(2, 8, 8, 3\)",
    lambda c: _evaluate(c.res.digits_model, rgb(2)),
)
case(
    T,
    "evaluate_empty_image_array",
    ValueError,
    r"at least one|non-empty|empty",
    r"\(0, 8, 8, 1\)|\b0 images",
    lambda c: _evaluate(c.res.digits_model, gray(0)),
)
case(
    T,
    "make_dataset_batch_size_0",
    ValueError,
    r"positive int|>= ?1",
    r"batch_size=0\b",
    lambda c: _make_dataset("digits", "train[:8]", 0),
)
case(
    T,
    "load_checkpoint_corrupt_file",
    ValueError,
    r"corrupt|must be a zip|not a (valid )?zip",
    r"<tmp>/bad\.keras",
    lambda c: _load_checkpoint(c.tmp / "bad.keras"),
    setup=files({"bad.keras": b"this is not a zip archive"}),
)
case(
    T,
    "load_checkpoint_wrong_suffix",
    ValueError,
    r"run directory or a `\.keras` file",
    r"<tmp>/model\.h5",
    lambda c: _load_checkpoint(c.tmp / "model.h5"),
    setup=files({"model.h5": b"\x89HDF\r\n\x1a\n"}),
)
case(
    T,
    "load_checkpoint_dir_without_state",
    FileNotFoundError,
    r"state\.json",
    r"<dir>",
    lambda c: _load_checkpoint(c.dir),
    setup=files({"notes.txt": "mine"}),
)
case(
    T,
    "load_checkpoint_missing_file",
    FileNotFoundError,
    r"[Nn]o such|not found",
    r"<tmp>/missing\.keras",
    lambda c: _load_checkpoint(c.tmp / "missing.keras"),
)
case(
    T,
    "read_config_corrupt",
    ValueError,
    r"JSON|[Uu]nreadable|corrupt",
    r"<dir>/config\.json",
    lambda c: _read_config(c.dir),
    setup=run_with("config.json", '{"dataset": '),
)


# ---------------------------------------------------------------------------
# Command line (in-process; one `pixel-keras: error:` line, exit status 2)
# ---------------------------------------------------------------------------


def _failed_start(ctx):
    """A first `train` that fails on its split; the retry is the case."""
    import contextlib
    import io

    out = ctx.tmp / "run"
    with (
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        cli.main(train_argv(out, train_split="train[5:2]"))
    return ctx.tmp


cli_case(
    "train_epochs_0", lambda c: train_argv(c.tmp / "r", epochs=0), r">= ?1", r"\b0\b"
)
cli_case(
    "train_lr_inf", lambda c: train_argv(c.tmp / "r", lr="inf"), r"finite", r"\binf\b"
)
cli_case(
    "train_batch_size_negative",
    lambda c: train_argv(c.tmp / "r", batch_size=-1),
    r">= ?1",
    r"-1\b",
)
cli_case(
    "train_verbose_3",
    lambda c: train_argv(c.tmp / "r", verbose="3"),
    r'"auto", 0, 1 or 2',
    r"\b3\b",
)
cli_case(
    "train_unknown_model",
    lambda c: train_argv(c.tmp / "r", model="nope"),
    r"choose from .*pixelcnn",
    r"'nope'",
)
cli_case(
    "train_resume_and_overwrite",
    lambda c: train_argv(c.tmp / "r", "--resume", "--overwrite"),
    r"not allowed with",
    r"--resume",
)
cli_case(
    "sample_temperature_nan",
    lambda c: [
        "sample",
        str(c.tmp),
        "--out",
        str(c.tmp / "s.png"),
        "--temperature",
        "nan",
    ],
    r"finite",
    r"\bnan\b",
)
cli_case(
    "sample_num_samples_0",
    lambda c: [
        "sample",
        str(c.tmp),
        "--out",
        str(c.tmp / "s.png"),
        "--num-samples",
        "0",
    ],
    r">= ?1",
    r"\b0\b",
)
cli_case(
    "evaluate_batch_size_0",
    lambda c: ["evaluate", str(c.dir), "--batch-size", "0"],
    r">= ?1",
    r"\b0\b",
    setup=run_copy,
)
cli_case(
    "sample_out_not_png",
    lambda c: ["sample", str(c.dir / "run"), "--out", str(c.dir / "s.jpg")],
    r"\.png",
    r"s\.jpg",
    setup=files({"keep": "x"}),
)
cli_case(
    "sample_out_exists",
    lambda c: ["sample", "--preset", "test_pixelcnn", "--out", str(c.dir / "s.png")],
    r"--overwrite",
    r"<dir>/s\.png",
    setup=files({"s.png": b"\x89PNG my picture"}),
)
cli_case(
    "evaluate_missing_checkpoint",
    lambda c: ["evaluate", str(c.tmp / "missing")],
    r"[Nn]o such|does not exist|not found",
    r"<tmp>/missing",
)
cli_case(
    "evaluate_checkpoint_and_preset",
    lambda c: ["evaluate", str(c.dir), "--preset", "test_pixelcnn"],
    r"exactly one",
    r"test_pixelcnn",
    setup=run_copy,
)
cli_case(
    "evaluate_other_num_levels",
    lambda c: [
        "evaluate",
        str(c.dir),
        "--dataset",
        "binarized_digits",
        "--split",
        "test[:8]",
    ],
    r"\b17\b",
    r"binarized_digits",
    setup=run_copy,
)
cli_case(
    "evaluate_unknown_split",
    lambda c: ["evaluate", str(c.dir), "--split", "validation"],
    r"one of \('train', 'test'\)",
    r"'validation'",
    setup=run_copy,
)
cli_case(
    "evaluate_empty_split",
    lambda c: ["evaluate", str(c.dir), "--split", "test[7:7]"],
    EMPTY_MUST,
    r"test\[7:7\]",
    setup=run_copy,
)
cli_case(
    "evaluate_corrupt_config_json",
    lambda c: ["evaluate", str(c.dir)],
    r"JSON|[Uu]nreadable|corrupt",
    r"<dir>/config\.json",
    setup=run_with("config.json", "{"),
)
cli_case(
    "evaluate_corrupt_checkpoint",
    lambda c: ["evaluate", str(c.tmp / "bad.keras"), "--dataset", "digits"],
    r"corrupt|must be a zip|not a (valid )?zip",
    r"<tmp>/bad\.keras",
    setup=files({"bad.keras": b"garbage, not a zip archive"}),
)
cli_case(
    "train_resume_without_state_json",
    lambda c: train_argv(c.dir, "--resume"),
    r"state\.json",
    r"epoch_002\.keras",
    setup=run_without_state,
)
cli_case(
    "train_overwrite_foreign_dir",
    lambda c: train_argv(c.dir, "--overwrite"),
    r"state\.json|not a (pixel-keras )?(training )?run|recogni",
    r"<dir>",
    setup=foreign_dir,
)
cli_case(
    "train_existing_run_without_flags",
    lambda c: train_argv(c.dir),
    r"--resume.*--overwrite",
    r"<dir>",
    setup=run_copy,
)
cli_case(
    "train_resume_corrupt_state_json",
    lambda c: train_argv(c.dir, "--resume"),
    r"JSON|[Uu]nreadable|corrupt",
    r"<dir>/state\.json",
    setup=run_with("state.json", "{]"),
)
cli_case(
    "train_empty_split",
    lambda c: train_argv(c.tmp / "r", train_split="train[5:2]"),
    EMPTY_MUST,
    r"train\[5:2\]",
)
cli_case(
    "train_retry_after_failed_start",
    lambda c: train_argv(c.tmp / "run", train_split="train[5:2]"),
    EMPTY_MUST,
    r"train\[5:2\]",
    setup=_failed_start,
)
cli_case(
    "train_preset_other_images",
    lambda c: [
        "train",
        "--preset",
        "test_pixelcnn",
        "--dataset",
        "digits",
        "--out",
        str(c.tmp / "r"),
    ],
    r"\(8, 8, 3\) with 256 levels",
    r"\(8, 8, 1\) with 17 levels",
)
cli_case(
    "sample_class_label_unconditional",
    lambda c: [
        "sample",
        str(c.dir),
        "--out",
        str(c.dir / "s.png"),
        "--class-label",
        "3",
    ],
    r"class-conditional",
    r"pixelcnn",
    setup=run_copy,
)
cli_case(
    "sample_preset_dir_without_config_json",
    lambda c: ["sample", "--preset", str(c.dir), "--out", str(c.tmp / "s.png")],
    r"config\.json",
    r"<dir>",
    setup=preset_dir(metadata={"dataset": "digits"}),
)
cli_case(
    "zoo_show_unknown",
    lambda c: ["zoo", "show", "no_such_preset"],
    r"Available: .*test_pixelcnn",
    r"'no_such_preset'",
)
cli_case(
    "zoo_list_no_match",
    lambda c: ["zoo", "list", "no_such_*"],
    r"Available: .*test_pixelcnn",
    r"'no_such_\*'",
)
cli_case(
    "export_existing_version",
    lambda c: [
        "export",
        "--preset",
        "test_pixelcnn",
        "--weights",
        "none",
        "--out",
        str(c.dir),
        "--version",
        "1",
    ],
    r"--overwrite",
    r"Version 1 already exists",
    setup=export_base,
)
cli_case(
    "export_version_0",
    lambda c: [
        "export",
        "--preset",
        "test_pixelcnn",
        "--weights",
        "none",
        "--out",
        str(c.dir),
        "--version",
        "0",
    ],
    r">= ?1",
    r"\b0\b",
    setup=export_base,
)


# ---------------------------------------------------------------------------
# The test
# ---------------------------------------------------------------------------

# Without the TensorFlow backend: the model API, zoo and serving cases run.
_BACKEND_FREE = ("model", "zoo", "serving")


def snapshot(directory):
    """{relative path: bytes} of every file under `directory`."""
    root = Path(directory)
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _fill(pattern, ctx):
    values = {"dir": ctx.dir, "tmp": ctx.tmp, **ctx.vars}
    return re.sub(
        r"<(\w+)>",
        lambda m: re.escape(str(values[m[1]])) if m[1] in values else m[0],
        pattern,
    )


def _params():
    return [
        pytest.param(
            c,
            id=c.id,
            marks=() if c.area in _BACKEND_FREE else pytest.mark.tf_only,
        )
        for c in CASES
    ]


def test_case_table():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 70
    areas = {c.area for c in CASES}
    assert areas == {"model", "data", "zoo", "serving", "export", "cli", "training"}


@pytest.mark.parametrize("case", _params())
def test_bad_input(case, resources, tmp_path, capsys):
    ctx = Ctx(resources, tmp_path)
    watched = case.setup(ctx) if case.setup else None
    if watched is not None:
        ctx.dir = Path(watched)
    before = snapshot(ctx.dir) if watched is not None else None
    problems = []

    if case.argv is not None:
        argv = [str(a) for a in case.argv(ctx)]
        capsys.readouterr()
        status = cli.main(argv)
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        message = lines[0] if len(lines) == 1 else err
        if status != 2:
            problems.append(f"exit status {status}, expected 2")
        if "Traceback" in err:
            problems.append("a traceback on stderr")
        if len(lines) != 1 or not lines[0].startswith("pixel-keras: error: "):
            problems.append(f"stderr is not one 'pixel-keras: error:' line: {err!r}")
    else:
        error = _errors(case.error) if isinstance(case.error, str) else case.error
        try:
            case.call(ctx)
        except Exception as e:  # noqa: BLE001 - compared below
            got = e
        else:
            got = None
        message = str(got) if got is not None else ""
        if got is None:
            problems.append(f"no error raised (expected {error})")
        elif not isinstance(got, error):
            problems.append(f"raised {type(got).__name__}, expected {error}")

    for label, pattern in (("must", case.must), ("received", case.received)):
        pattern = _fill(pattern, ctx)
        if not re.search(pattern, message, re.DOTALL):
            problems.append(f"message does not say what {label} (/{pattern}/)")

    if before is not None:
        after = snapshot(ctx.dir)
        for path, content in before.items():
            if path not in after:
                problems.append(f"file removed: {path}")
            elif after[path] != content:
                problems.append(f"file changed: {path}")

    assert not problems, "\n".join([*problems, f"message: {message[:2000]}"])
