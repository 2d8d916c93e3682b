"""Export to TensorFlow SavedModel for TF Serving (TensorFlow backend only).

`export_saved_model(model, base_dir)` writes `base_dir/<version>/`, the
layout TF Serving polls, with four signatures (all `tensorflow/serving/predict`,
batch dimension first and unknown; conditional models also take their
conditions, e.g. `class_label` int32 `[N]`, in every signature):

```
serving_default  images uint8 [N,H,W,C]                -> log_prob [N] (nats),
                                                           bits_per_dim [N]
sample           seed int64 [N], temperature float32 [] -> images uint8 [N,H,W,C]
sample_step      images, position int32 [], seed, temperature
                                                        -> images, probs [N,K]
complete         images, known uint8 [N,H,W,C], seed, temperature -> images
```

Sampling runs entirely in the graph: `sample` and `complete` are one
`tf.while_loop` over all H*W*C sub-pixels with the cached sampler (the
model's cache hooks driven by `sampling.run_steps`: O(1) work per sub-pixel,
the same images as the naive sampler), and `sample_step` runs one full
forward pass (`sampling.naive_step`). The noise
is counter-based (`sampling.gumbel_noise`): sample n at step t depends only on
(seed_n mod 2**32, t), so

```
canvas = zeros
for t in range(H * W * C):
    canvas, probs = sample_step(canvas, position=t, seed=s, temperature=T)
```

gives exactly `sample(seed=s, temperature=T)`, and exactly
`model.sample(len(s), seed=s, temperature=T)` in Python: a stateless server
can stream a sample one sub-pixel at a time (`pixel_keras.serving`).

Bad requests fail with InvalidArgument instead of returning garbage, with a
message saying what must hold and what was received. The signatures fix the
dtypes; in-graph `Assert` ops (which TF Serving's C++ loader runs too: it
does not check fed shapes against the signature) check first the full shape
of every input (every dimension; `temperature` and `position` scalars; the
batch size N >= 1 and equal in all inputs), then the values: images in
[0, K-1], `known` all 0 (draw) or 1 (keep), `temperature` finite and > 0,
`position` in [0, H*W*C-1], `class_label` in [0, num_classes-1]. Nothing is
computed from an input before its checks pass.

NOTE: the graph holds only standard TensorFlow ops (no py_function, no custom
ops, no XLA-only ops such as `XlaDynamicUpdateSlice`), so TF Serving's C++
loader runs it as is.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
from pathlib import Path

import keras

SIGNATURE_NAMES = ("serving_default", "sample", "sample_step", "complete")
_VERSION = re.compile(r"^[0-9]+$")


def _tf():
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            "SavedModel export needs the TensorFlow backend. "
            f"Received: KERAS_BACKEND={keras.backend.backend()!r}"
        )
    import tensorflow as tf

    return tf


def versions(base_dir: str | os.PathLike) -> list[int]:
    """The integer versions already exported under `base_dir` (sorted)."""
    base = Path(base_dir)
    if not base.is_dir():
        return []
    return sorted(
        int(p.name) for p in base.iterdir() if p.is_dir() and _VERSION.match(p.name)
    )


def _condition_specs(model, tf):
    """TensorSpecs for the model's conditioning inputs, batch first."""
    specs = {}
    for tensor in model.inputs or ():
        if tensor.name == "images":
            continue
        dtype = keras.backend.standardize_dtype(tensor.dtype)
        dtype = tf.int32 if "int" in dtype else tf.float32
        specs[tensor.name] = tf.TensorSpec(
            (None, *tensor.shape[1:]), dtype, name=tensor.name
        )
    return specs


def _named(fn, names):
    """Wraps `fn(**kwargs)` as a positional function of `names`.

    The signature's input keys come from the TensorSpec names, so one generic
    body serves models with any set of conditions.
    """

    def positional(*args):
        return fn(**dict(zip(names, args, strict=True)))

    return positional


def _slice_update(inputs, start_indices, updates):
    """`keras.ops.slice_update` from standard TensorFlow ops.

    Keras' TensorFlow backend writes slices with `XlaDynamicUpdateSlice`, an
    XLA op; a TF Serving build without XLA cannot run it. Here: pad the
    update to the full shape and select it with a padded mask (`Pad`,
    `SelectV2`), which costs one copy of `inputs`, as the XLA op does
    outside a compiled function.
    """
    tf = _tf()
    inputs = tf.convert_to_tensor(inputs)
    updates = tf.cast(updates, inputs.dtype)
    start = tf.stack([tf.cast(index, tf.int32) for index in start_indices])
    paddings = tf.stack([start, tf.shape(inputs) - tf.shape(updates) - start], axis=1)
    mask = tf.pad(tf.ones(tf.shape(updates), tf.int8), paddings) > 0
    out = tf.where(mask, tf.pad(updates, paddings), inputs)
    out.set_shape(inputs.shape)
    return out


def _require(ok, what, *received):
    """An in-graph check: InvalidArgument "<what> Received: ..." unless `ok`.

    A standard `Assert` op, so it runs wherever the graph does (TF Serving's
    C++ loader included), unlike Python-side shape checks.
    """
    tf = _tf()
    return tf.debugging.Assert(ok, [f"{what} Received:", *received], summarize=64)


def _runtime_shape(value):
    """The fed tensor's shape, int32 `[rank]`.

    Always the op: `tf.shape` returns a constant when the static shape is
    fully known, i.e. the declared shape, not the fed tensor's.
    """
    tf = _tf()
    return tf.raw_ops.Shape(input=value, out_type=tf.int32)


def _range_check(name, values, ok, what):
    """`_require(ok, what)`, reporting the [min, max] of `name`'s values."""
    tf = _tf()
    return _require(
        ok,
        what,
        f"{name} values in [min, max] =",
        tf.reduce_min(values),
        tf.reduce_max(values),
    )


def _levels_check(name, values, count, what):
    """Checks that all `values` lie in [0, count - 1]."""
    tf = _tf()
    ok = tf.logical_and(tf.reduce_all(values >= 0), tf.reduce_all(values < count))
    return _range_check(name, values, ok, what)


class _Signatures:
    """The exported signatures of one model and their in-graph checks.

    `build_signatures` makes one per model: the image size, the specs and the
    shape each input must have are fixed here, and the methods below build
    the graphs (the signature bodies and the checks they run first).
    """

    def __init__(self, model):
        tf = _tf()
        self.model = model
        self.image_shape = tuple(int(d) for d in model.image_shape)  # H, W, C
        self.num_steps = math.prod(self.image_shape)
        self.num_levels = int(model.num_levels)
        self.num_classes = getattr(model, "num_classes", None)
        self.image_dtype = tf.uint8 if self.num_levels <= 256 else tf.int32
        self.condition_specs = _condition_specs(model, tf)
        # The shape every input must have; "N" is the batch size, taken from
        # the signature's first input (`images`, or `seed` for `sample`).
        self.expected_dims = {
            "images": ("N", *self.image_shape),
            "known": ("N", *self.image_shape),
            "seed": ("N",),
            "temperature": (),
            "position": (),
            **{
                name: ("N", *(int(d) for d in spec.shape[1:]))
                for name, spec in self.condition_specs.items()
            },
        }

    # ---- checks ----------------------------------------------------------

    def check_shape(self, name, value, batch, batch_name, batch_shape):
        """Checks every dimension (and the rank) of input `name`."""
        tf = _tf()
        dims = self.expected_dims[name]
        shape = _runtime_shape(value)
        if dims:
            expected = tf.stack(
                [batch if d == "N" else tf.constant(d, tf.int32) for d in dims]
            )
        else:
            expected = tf.zeros((0,), tf.int32)
        # The shape padded with -1 (never a dimension): its first len(dims)
        # entries must be `expected` and the next one -1 (the rank is right).
        # (No Size/Rank op: grappler folds those wherever a rank is declared.)
        padded = tf.concat([shape, -tf.ones((len(dims) + 1,), tf.int32)], 0)
        ok = tf.logical_and(
            tf.reduce_all(tf.equal(padded[: len(dims)], expected)),
            tf.equal(padded[len(dims)], -1),
        )
        if not dims:
            what = f"`{name}` must be a scalar (shape [])."
            return _require(ok, what, f"{name}.shape=", shape)
        what = f"`{name}` must have shape [{', '.join(str(d) for d in dims)}]"
        received = [f"{name}.shape=", shape]
        if name != batch_name:
            what += f", one entry per image (N = the batch size of `{batch_name}`)"
            received += [f"{batch_name}.shape=", batch_shape]
        return _require(ok, what + ".", *received)

    def value_checks(self, inputs, batch, batch_name, batch_shape):
        """The value checks (N >= 1, then each input's range), in order."""
        unit = "image" if batch_name == "images" else "seed"
        checks = [
            _require(
                batch >= 1,
                f"`{batch_name}` must hold at least one {unit} (N >= 1).",
                f"{batch_name}.shape=",
                batch_shape,
            )
        ]
        for name, check in (
            ("images", self._images_check),
            ("known", self._known_check),
            ("temperature", self._temperature_check),
            ("position", self._position_check),
            ("class_label", self._class_label_check),
        ):
            value = inputs.get(name)
            if value is None:
                continue
            op = check(value)
            if op is not None:
                checks.append(op)
        return checks

    def _images_check(self, images):
        tf = _tf()
        num_levels = self.num_levels
        if num_levels >= 256 and images.dtype == tf.uint8:
            return None  # every uint8 is a level
        return _levels_check(
            "images",
            tf.cast(images, tf.int32),
            num_levels,
            f"`images` values must lie in [0, {num_levels - 1}] "
            f"(num_levels={num_levels}).",
        )

    def _known_check(self, known):
        tf = _tf()
        return _range_check(
            "known",
            known,
            tf.reduce_all(known <= 1),
            "`known` must hold only 0 (draw) and 1 (keep).",
        )

    def _temperature_check(self, temperature):
        tf = _tf()
        from pixel_keras import sampling

        ok = tf.logical_and(
            tf.reduce_all(tf.math.is_finite(temperature)),
            tf.reduce_all(temperature >= sampling.MIN_TEMPERATURE),
        )
        return _require(ok, sampling.TEMPERATURE_RULE, "temperature=", temperature)

    def _position_check(self, position):
        tf = _tf()
        num_steps = self.num_steps
        ok = tf.logical_and(
            tf.reduce_all(position >= 0), tf.reduce_all(position < num_steps)
        )
        what = (
            f"`position` must lie in [0, {num_steps - 1}]: the flat sub-pixel "
            "index (raster order, channel fastest) of an image with H*W*C = "
            f"{num_steps} sub-pixels."
        )
        return _require(ok, what, "position=", position)

    def _class_label_check(self, label):
        num_classes = self.num_classes
        if not num_classes:
            return None
        return _levels_check(
            "class_label",
            label,
            num_classes,
            f"`class_label` values must lie in [0, {num_classes - 1}] "
            f"(num_classes={num_classes}).",
        )

    def run_checks(self, batch_name, inputs):
        """The checks of `checked`, on tensors of unknown static shape."""
        tf = _tf()
        batch_shape = _runtime_shape(inputs[batch_name])
        batch = tf.concat([batch_shape, [-1]], 0)[0]  # -1 for a scalar
        shapes = [
            self.check_shape(name, value, batch, batch_name, batch_shape)
            for name, value in inputs.items()
        ]
        with tf.control_dependencies(shapes):
            values = self.value_checks(inputs, batch, batch_name, batch_shape)
        with tf.control_dependencies(shapes + values):
            return {name: tf.identity(value) for name, value in inputs.items()}

    def checked(self, batch_name, inputs):
        """Checks every input, then returns them behind the checks.

        First the full shape of each input (every dimension, the batch size
        of all of them equal to `batch_name`'s), then, once the shapes hold,
        the values (ranges, N >= 1, a finite temperature > 0). The returned
        tensors depend on all checks, so nothing is computed from an input
        that fails them.

        The checks run in a separate, never inlined function whose inputs
        have no static shape. Inlined into the signature, grappler would
        fold them with the signature's shapes (which the runtime does not
        enforce on fed tensors): e.g. "`temperature` is a scalar" to true
        when tf.saved_model.load runs the signature.
        """
        tf = _tf()

        def check_inputs(values):
            return self.run_checks(batch_name, values)

        checker = tf.function(
            check_inputs,
            input_signature=[
                {n: tf.TensorSpec(None, v.dtype, name=n) for n, v in inputs.items()}
            ],
            experimental_attributes={"_noinline": True},
        )
        out = checker(inputs)
        for name, value in out.items():
            value.set_shape([None if d == "N" else d for d in self.expected_dims[name]])
        return out

    # ---- signature bodies (inputs as in the module docstring) -------------

    def to_images(self, canvas):
        return _tf().cast(canvas, self.image_dtype)

    def log_prob(self, images, **conditions):
        tf = _tf()
        from pixel_keras import distributions, losses

        inputs = self.checked("images", {"images": images, **conditions})
        values = tf.cast(inputs.pop("images"), tf.int32)
        nats = distributions.log_prob(self.model.logits(values, inputs), values)
        bits = losses.nats_to_bits_per_dim(-nats, self.image_shape)
        return {
            "log_prob": tf.identity(nats, name="log_prob"),
            "bits_per_dim": tf.identity(bits, name="bits_per_dim"),
        }

    def run_sampler(self, canvas, given, known, seed, temperature, conditions):
        """Runs the cached sampler over all sub-pixels (inputs checked)."""
        tf = _tf()
        from pixel_keras import sampling

        # The cached sampler (O(1) work per sub-pixel), writing its caches
        # with standard ops so that the graph has no XLA-only ops.
        # Every op of the loop, its constant initial caches included, waits
        # for the checks (`seed` passed them): a loop already running when a
        # check fails would be cancelled, and the request could then report
        # that cancellation instead of the check's message.
        with tf.control_dependencies([seed]), tf.name_scope("cached_sampler"):
            state = sampling.run_steps(
                self.model,
                sampling.initial_state(self.model, canvas, conditions),
                tf.constant(0, tf.int32),
                tf.constant(self.num_steps, tf.int32),
                _to_seeds(seed),
                temperature,
                given,
                known,
                slice_update=_slice_update,
            )
            canvas = sampling.state_canvas(self.model, state)
        return {"images": tf.identity(self.to_images(canvas), name="images")}

    def sample(self, seed, temperature, **conditions):
        tf = _tf()
        inputs = self.checked(
            "seed", {"seed": seed, "temperature": temperature, **conditions}
        )
        seed, temperature = inputs.pop("seed"), inputs.pop("temperature")
        batch = tf.shape(seed)[0]
        canvas = tf.zeros((batch, *self.image_shape), tf.int32)
        given = tf.zeros((batch, self.num_steps), tf.int32)
        known = tf.zeros((batch, self.num_steps), tf.bool)
        return self.run_sampler(canvas, given, known, seed, temperature, inputs)

    def complete(self, images, known, seed, temperature, **conditions):
        tf = _tf()
        inputs = self.checked(
            "images",
            {
                "images": images,
                "known": known,
                "seed": seed,
                "temperature": temperature,
                **conditions,
            },
        )
        images, known = inputs.pop("images"), inputs.pop("known")
        seed, temperature = inputs.pop("seed"), inputs.pop("temperature")
        batch = tf.shape(images)[0]
        given = tf.reshape(tf.cast(images, tf.int32), (batch, self.num_steps))
        mask = tf.reshape(tf.equal(known, 1), (batch, self.num_steps))
        canvas = tf.reshape(
            tf.where(mask, given, tf.zeros_like(given)), (batch, *self.image_shape)
        )
        return self.run_sampler(canvas, given, mask, seed, temperature, inputs)

    def sample_step(self, images, position, seed, temperature, **conditions):
        tf = _tf()
        from pixel_keras import sampling

        inputs = self.checked(
            "images",
            {
                "images": images,
                "position": position,
                "seed": seed,
                "temperature": temperature,
                **conditions,
            },
        )
        canvas = tf.cast(inputs.pop("images"), tf.int32)
        position, temperature = inputs.pop("position"), inputs.pop("temperature")
        seeds = _to_seeds(inputs.pop("seed"))
        canvas, step_logits = sampling.naive_step(
            lambda x: self.model.logits(x, inputs), canvas, position, seeds, temperature
        )
        probs = tf.nn.softmax(tf.cast(step_logits, tf.float32) / temperature, axis=-1)
        return {
            "images": tf.identity(self.to_images(canvas), name="images"),
            "probs": tf.identity(probs, name="probs"),
        }

    def functions(self):
        """{signature name: tf.function with its input signature}."""
        tf = _tf()
        images = tf.TensorSpec((None, *self.image_shape), self.image_dtype, "images")
        known = tf.TensorSpec((None, *self.image_shape), tf.uint8, "known")
        seed = tf.TensorSpec((None,), tf.int64, "seed")
        temperature = tf.TensorSpec((), tf.float32, "temperature")
        position = tf.TensorSpec((), tf.int32, "position")
        condition_names = tuple(self.condition_specs)
        conditions = [self.condition_specs[n] for n in condition_names]

        def make(fn, specs):
            names = tuple(spec.name for spec in specs)
            return tf.function(
                _named(fn, (*names, *condition_names)),
                input_signature=[*specs, *conditions],
            )

        return {
            "serving_default": make(self.log_prob, [images]),
            "sample": make(self.sample, [seed, temperature]),
            "sample_step": make(
                self.sample_step, [images, position, seed, temperature]
            ),
            "complete": make(self.complete, [images, known, seed, temperature]),
        }


def _to_seeds(seed):
    """Same as `sampling.per_sample_seeds` for explicit seeds: value mod 2**32."""
    tf = _tf()
    return tf.cast(tf.math.floormod(seed, tf.constant(2**32, tf.int64)), tf.uint32)


def build_signatures(model) -> dict:
    """Returns {signature name: tf.function with an input signature}.

    Args:
        model: an `AutoregressiveImageModel` (built, TensorFlow backend).
    """
    return _Signatures(model).functions()


def _serving_module(model):
    """A tf.Module holding the model's variables and the signature functions.

    The Keras model itself is not tracked: the SavedModel holds variables and
    graphs only, no Python objects.
    """
    tf = _tf()
    module = tf.Module()
    signatures = build_signatures(model)
    concrete = {name: fn.get_concrete_function() for name, fn in signatures.items()}
    # Track the tf.Variables the graphs capture, not Keras' wrappers around
    # them: a wrapper would be saved as a second variable of the same name,
    # which TF1-style loaders (TF Serving) leave uninitialized.
    variables, seen = [], set()
    for fn in concrete.values():
        for v in fn.variables:
            if id(v) not in seen:
                seen.add(id(v))
                variables.append(v)
    module.model_variables = variables
    for name, fn in signatures.items():
        setattr(module, name, fn)
    return module, concrete


def export_saved_model(
    model: keras.Model,
    base_dir: str | os.PathLike,
    version: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Exports `model` as `base_dir/<version>/`, a SavedModel for TF Serving.

    Args:
        model: an `AutoregressiveImageModel` (TensorFlow backend).
        base_dir: the model's base path in TF Serving's model config; created
            if missing.
        version: int >= 1, or None for the next free version (1 + the highest
            existing one).
        overwrite: replace an existing `version`. Without it an existing
            version raises `FileExistsError`.

    Returns:
        The version directory.

    The SavedModel is written to a temporary directory inside `base_dir` and
    renamed into place, so a failed export leaves no partial version (and TF
    Serving, which ignores non-integer names, never sees one).

    Example:
    ```python
    model = zoo.load("test_pixelcnn", weights=False)
    path = export_saved_model(model, "/tmp/models/pixelcnn")  # .../1
    ```
    """
    tf = _tf()
    _check_export_args(model, version)
    base = Path(base_dir)
    base.mkdir(parents=True, exist_ok=True)
    if version is None:
        version = _next_version(base)
    target = base / str(version)
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"Version {version} already exists in {base}; pass overwrite=True "
            "(CLI: --overwrite) to replace it, or leave the version out to "
            f"write the next free one ({_next_version(base)})."
        )

    def save(path):
        module, concrete = _serving_module(model)
        tf.saved_model.save(module, str(path), signatures=concrete)

    _write_version(save, base, version, target)
    return target


def _check_export_args(model, version):
    """Raises ValueError for a bad `version` or a `model` without images."""
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 1
    ):
        raise ValueError(
            f"`version` must be an int >= 1 or None. Received: version={version!r}"
        )
    for attr in ("image_shape", "num_levels"):
        if not hasattr(model, attr):
            raise ValueError(
                "`model` must be a pixel-keras AutoregressiveImageModel "
                f"(with `{attr}`). Received: {type(model).__name__}"
            )


def _next_version(base):
    """1 + the highest version under `base` (1 for none)."""
    return (versions(base) or [0])[-1] + 1


def _write_version(save, base, version, target):
    """Runs `save(path)` into a temporary directory, then moves it to `target`.

    An existing `target` is replaced, and put back if anything fails; the
    temporary directory is always removed.
    """
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-export-{version}-", dir=base))
    trash = tmp / "replaced"
    try:
        save(tmp / "model")
        if target.exists():
            os.replace(target, trash)
        os.replace(tmp / "model", target)
    except BaseException:
        if trash.exists() and not target.exists():
            os.replace(trash, target)  # put the old version back
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(tmp, ignore_errors=True)
