"""Named presets: `pixel_keras.zoo.load("gated_pixelcnn_cifar")`.

A preset is a directory of data, not code:

```
zoo/<name>/
  config.json        {"model": "<registry name>", "config": {<model kwargs>}}
  metadata.json      paper, data set, image shape, num_levels, num_params,
                     and where weights exist: bits/dim, training command,
                     sha256, weights_url
  model.weights.h5   optional trained weights
  README.md          the model card
```

The presets ship inside the package (`pixel_keras/_zoo`, built from the
repository's `zoo/` directory); a checkout uses `zoo/` directly.

Weight resolution for `load(name, weights=...)`:

- `"auto"`: the bundled `model.weights.h5`, else a `weights_url` from the
  metadata (downloaded once into the cache and checked against `sha256`),
  else the untrained architecture with a warning saying how to train it.
- `True`: the same, but no weights is an error.
- `False`: the architecture only.
- a path: that weights file.

Bundled weights are checked against the `sha256` recorded in
`metadata.json` (when it records one) before they are loaded; a mismatch is
a `ValueError` naming the file and both hashes. While editing a preset (new
weights not yet recorded), pass `verify_sha256=False` to `load` or
`resolve_weights`; `save_preset` records the hash of the weights it writes.
Downloaded weights are always checked.

Example:

```python
from pixel_keras import zoo

zoo.list_presets("*fashion_mnist")
model = zoo.load("pixelcnn_digits")         # trained weights where they exist
model = zoo.load("gated_pixelcnn_cifar", weights=False)
zoo.save_preset(model, "my_presets/gated_cifar", {"dataset": "cifar10"})
```
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import keras

# The preset files and weight resolution live with the models
# (`PresetMixin.from_preset` shares them); this module is their public face.
from pixel_keras.models.presets import (  # noqa: F401  (re-exported)
    CARD_FILE,
    CONFIG_FILE,
    METADATA_FILE,
    WEIGHTS_FILE,
    Preset,
    cache_dir,
    get_preset,
    instantiate,
    list_presets,
    load_weights_checked,
    preset_class,
    presets_root,
    resolve_weights,
    sha256,
)
from pixel_keras.models.registry import model_name


def __getattr__(name: str):
    # `zoo.list` shadowed the builtin inside this module; it stays available,
    # deprecated, for one release.
    if name == "list":
        warnings.warn(
            "`pixel_keras.zoo.list` is deprecated; use `zoo.list_presets`.",
            DeprecationWarning,
            stacklevel=2,
        )
        return list_presets
    raise AttributeError(f"module 'pixel_keras.zoo' has no attribute {name!r}")


def build(preset: Preset, **overrides) -> keras.Model:
    """The preset's architecture (random weights), config overridden."""
    return instantiate(preset, preset_class(preset), overrides)


def preset_config(model: keras.Model) -> dict[str, Any]:
    """`{"model": registry name, "config": arguments}` of a model, as in a
    preset's `config.json`: the architecture alone (no layer name, no
    `trainable`, no argument left at None)."""
    config = {
        k: v
        for k, v in model.get_config().items()
        if k not in ("name", "trainable", "dtype") and v is not None
    }
    if "image_shape" in config:
        config["image_shape"] = list(config["image_shape"])
    return {"model": model_name(model), "config": config}


def count_params(preset: Preset) -> int:
    """Parameter count at the preset's real size, without allocating weights."""
    with keras.StatelessScope(initialize_variables=False):
        return build(preset).count_params()


def load(
    name_or_path: str | os.PathLike,
    weights: Any = "auto",
    *,
    verify_sha256: bool = True,
    **overrides,
) -> keras.Model:
    """Builds a preset's model and loads its weights.

    Args:
        name_or_path: a built-in preset name (`zoo.list_presets()`) or a preset
            directory (as written by `save_preset`).
        weights: "auto", True, False or a weights path (module docstring).
        verify_sha256: check the preset's bundled `model.weights.h5` against
            the `sha256` recorded in its `metadata.json` before loading it
            (default). Pass False only for a preset being edited, whose new
            weights are not recorded yet; downloads are always checked.
        **overrides: model arguments replacing the preset's (e.g. a smaller
            `image_shape` for a test); not allowed together with weights.

    Returns:
        The model, uncompiled (call `model.compile(optimizer)` to train).

    Raises:
        ValueError: unknown preset (listing the available ones), no weights
            with `weights=True`, weights that do not fit, or bundled weights
            whose sha256 disagrees with `metadata.json`.
    """
    preset = get_preset(name_or_path)
    if overrides and weights not in (False, None, "auto"):
        raise ValueError(
            "Config overrides change the architecture; they cannot be combined "
            f"with weights={weights!r} (use weights=False or 'auto'). "
            f"Received: overrides={sorted(overrides)}"
        )
    model = build(preset, **overrides)
    path = (
        None
        if overrides
        else resolve_weights(preset, weights, verify_sha256=verify_sha256)
    )
    if path is not None:
        load_weights_checked(model, path)
    return model


def save_preset(
    model: keras.Model,
    directory: str | os.PathLike,
    metadata: dict | None = None,
    *,
    weights: bool = True,
    overwrite: bool = False,
) -> Path:
    """Writes `model` as a preset directory that `load` reads back.

    Args:
        model: a registered pixel-keras model.
        directory: the preset directory to create.
        metadata: extra metadata (paper, dataset, bits/dim, ...); image
            shape, num_levels, parameter count and the weights' sha256 are
            filled in.
        weights: also write `model.weights.h5`.
        overwrite: replace an existing preset directory (never silently).

    Returns:
        The directory.
    """
    directory = Path(directory)
    if directory.exists() and not overwrite:
        raise FileExistsError(
            f"Preset directory already exists: {directory}. Pass overwrite=True "
            "to replace it."
        )
    name = model_name(model)
    config = {k: v for k, v in model.get_config().items() if k not in ("trainable",)}
    if "image_shape" in config:
        config["image_shape"] = list(config["image_shape"])
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}-"))
    try:
        meta = dict(metadata or {})
        meta.update(
            {
                "model": name,
                "image_shape": list(model.image_shape),
                "num_levels": model.num_levels,
                "num_params": int(model.count_params()),
                "keras_version": keras.__version__,
            }
        )
        if weights:
            model.save_weights(str(staging / WEIGHTS_FILE))
            meta["sha256"] = sha256(staging / WEIGHTS_FILE)
        with open(staging / CONFIG_FILE, "w", encoding="utf-8") as f:
            json.dump({"model": name, "config": config}, f, indent=2, sort_keys=True)
            f.write("\n")
        with open(staging / METADATA_FILE, "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2, sort_keys=True)
            f.write("\n")
        if not (staging / CARD_FILE).exists():
            (staging / CARD_FILE).write_text(
                model_card(directory.name, meta), encoding="utf-8"
            )
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(staging, directory)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return directory


def model_card(name: str, metadata: dict) -> str:
    """A short Markdown model card from metadata."""
    lines = [f"# {name}", ""]
    if metadata.get("description"):
        lines += [metadata["description"], ""]
    shape = metadata.get("image_shape")
    rows = [
        ("Architecture", metadata.get("model")),
        ("Paper", metadata.get("paper")),
        ("Data set", metadata.get("dataset")),
        ("Image shape", "×".join(map(str, shape)) if shape else None),
        ("Levels per sub-pixel", metadata.get("num_levels")),
        (
            "Parameters",
            f"{metadata['num_params']:,}" if "num_params" in metadata else None,
        ),
        ("Test bits/dim", metadata.get("test_bits_per_dim")),
        ("Test nats/image", metadata.get("test_nats_per_image")),
        (
            "Training command"
            + (" (leg 1; all legs below)" if metadata.get("training_legs") else ""),
            f"`{metadata['training_command']}`"
            if metadata.get("training_command")
            else None,
        ),
        ("Weights averaging", metadata.get("weights_average")),
        ("Receptive field (measured)", _receptive_field_text(metadata)),
        (
            "Weights",
            f"included (sha256 `{metadata['sha256']}`)"
            if metadata.get("sha256")
            else "none (architecture only)",
        ),
    ]
    lines += ["| | |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in rows if v is not None]
    if metadata.get("notes"):
        lines += ["", metadata["notes"]]
    training = metadata.get("training")
    if training:
        lines += ["", "## Training", "", "| | |", "| --- | --- |"]
        lines += [f"| {k} | {v} |" for k, v in training.items() if v is not None]
    legs = metadata.get("training_legs")
    if legs:
        lines += [
            "",
            "Trained in legs, each resuming the previous one's committed "
            "checkpoint (`--resume`); every leg's exact command:",
            "",
        ]
        lines += [f"{i}. `{command}`" for i, command in enumerate(legs, 1)]
    if metadata.get("samples"):
        lines += ["", "## Samples", "", f"![samples]({metadata['samples'].split()[0]})"]
    return "\n".join(lines) + "\n"


def _receptive_field_text(metadata: dict) -> str | None:
    """The card's line for `metadata["receptive_field"]` (see `testing.receptive_field`)."""
    field = metadata.get("receptive_field")
    if not field:
        return None
    n = field["positions"]
    if field["full_context"] == n:
        text = f"every output sub-pixel depends on its whole causal context ({n}/{n})"
    else:
        text = (
            f"all rows above the current one: {field['rows_above']}/{n} outputs; "
            f"the whole causal context: {field['full_context']}/{n}; least share "
            f"of the causal context seen: {field['min_context_fraction']:.0%}; "
            f"the last row reaches {field['max_rows_up']} rows up"
        )
    return text + " (exact input gradients, `pixel_keras.testing.receptive_field`)"


def describe(name_or_path: str | os.PathLike) -> dict:
    """Config and metadata of a preset as one dict (for `pixel-keras zoo show`)."""
    preset = get_preset(name_or_path)
    return {
        "name": preset.name,
        "model": preset.model,
        "config": preset.config,
        "metadata": preset.metadata,
        "weights": str(preset.bundled_weights) if preset.bundled_weights else None,
    }
