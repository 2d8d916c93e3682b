"""Preset files and weights, and `from_preset` for model classes (KerasHub style).

A preset is a directory of data (`zoo/<name>/config.json`, `metadata.json`,
optional `model.weights.h5`; see `pixel_keras.zoo`). This module reads it
(`get_preset`), resolves and checks its weights (`resolve_weights`,
`load_weights_checked`) and builds its model (`instantiate`); `pixel_keras.zoo`
is the public face of the same functions, and `PresetMixin.from_preset` the
class-level entry point:

```python
model = pk.GatedPixelCNN.from_preset("gated_pixelcnn_cifar", load_weights=False)
model = pk.PixelCNN.from_preset("pixelcnn_digits")   # with its trained weights
```
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from pixel_keras._preset_dirs import CONFIG_FILE, list_presets, presets_root
from pixel_keras._urls import URL_ERRORS, url_error_reason
from pixel_keras.models.registry import get_model_class

METADATA_FILE = "metadata.json"
WEIGHTS_FILE = "model.weights.h5"
CARD_FILE = "README.md"


def cache_dir() -> Path:
    """Where downloaded weights are kept (`$PIXEL_KERAS_CACHE`)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return Path(os.environ.get("PIXEL_KERAS_CACHE", default / "pixel_keras"))


@dataclass(frozen=True)
class Preset:
    """A preset directory, read."""

    name: str
    path: Path
    model: str
    config: dict
    metadata: dict

    @property
    def bundled_weights(self) -> Path | None:
        path = self.path / WEIGHTS_FILE
        return path if path.is_file() else None


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _read_json(path: Path) -> dict:
    raw = path.read_bytes()
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        start = _shorten(raw.decode("utf-8", errors="replace"))
        raise ValueError(
            f"Preset file {path} must hold valid JSON (UTF-8), but it cannot be "
            f"parsed: {e}. Received: {start!r}"
        ) from e
    if not isinstance(value, dict):
        raise ValueError(
            f"Preset file {path} must hold a JSON object {{...}}. "
            f"Received: {_shorten(json.dumps(value))}"
        )
    return value


def get_preset(name_or_path: str | os.PathLike) -> Preset:
    """Reads a built-in preset by name, or a preset directory by path.

    Raises:
        TypeError: `name_or_path` is neither a string nor a path.
        ValueError: an unknown preset (listing the available ones), a
            directory without `config.json`, or a `config.json` /
            `metadata.json` that is not valid JSON of the expected form.
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(
            "`name_or_path` must be a preset name (str; see `zoo.list_presets()`) or a "
            f"preset directory path. Received: name_or_path={name_or_path!r}"
        )
    candidate = Path(name_or_path)
    builtin = None
    if isinstance(name_or_path, str) and name_or_path.strip(" ./"):
        builtin = presets_root() / name_or_path
    if (candidate / CONFIG_FILE).is_file():
        path = candidate
    elif builtin is not None and (builtin / CONFIG_FILE).is_file():
        path = builtin
    else:
        for directory in (candidate, builtin):
            if directory is not None and directory.is_dir() and os.fspath(name_or_path):
                raise ValueError(
                    f"A preset directory must hold {CONFIG_FILE} (and optionally "
                    f"{METADATA_FILE}, {WEIGHTS_FILE}); {directory} has no "
                    f"{CONFIG_FILE}. Received: name_or_path={os.fspath(name_or_path)!r}"
                )
        raise ValueError(
            f"Unknown preset {os.fspath(name_or_path)!r}. Available: "
            f"{', '.join(list_presets())}. A preset is one of these names or a directory "
            f"holding {CONFIG_FILE}. Received: name_or_path="
            f"{os.fspath(name_or_path)!r}"
        )
    config = _read_json(path / CONFIG_FILE)
    if not isinstance(config.get("model"), str) or not isinstance(
        config.get("config"), dict
    ):
        raise ValueError(
            f'{path / CONFIG_FILE} must hold {{"model": <registry name>, '
            f'"config": {{<model arguments>}}}}. '
            f"Received: {_shorten(json.dumps(config, sort_keys=True))}"
        )
    metadata_path = path / METADATA_FILE
    metadata = _read_json(metadata_path) if metadata_path.is_file() else {}
    return Preset(path.name, path, config["model"], config["config"], metadata)


def preset_class(preset: Preset) -> type:
    """The registered model class that the preset's `config.json` names.

    Raises:
        ValueError: an unknown name (naming the preset's `config.json`).
    """
    try:
        return get_model_class(preset.model)
    except ValueError as e:
        raise ValueError(
            f'{preset.path / CONFIG_FILE}: "model" must name a registered '
            f"architecture. {e}. Received: model={preset.model!r}"
        ) from e


def instantiate(
    preset: Preset, cls: type, overrides: dict | None = None
) -> keras.Model:
    """`cls` built from the preset's config (random weights), config overridden.

    Raises:
        ValueError, TypeError: the config does not build (naming the preset's
            `config.json` and the overrides).
    """
    overrides = overrides or {}
    config = {**preset.config, **overrides}
    if "image_shape" in config:
        config["image_shape"] = tuple(config["image_shape"])
    try:
        return cls(**config)
    except (TypeError, ValueError) as e:
        source = f'"config" in {preset.path / CONFIG_FILE}'
        if overrides:
            source += f" with overrides {sorted(overrides)}"
        error = ValueError if isinstance(e, ValueError) else TypeError
        raise error(f"Preset {preset.name!r} ({source}) does not build: {e}") from e


def sha256(path: str | os.PathLike) -> str:
    """The hex sha256 of a file (the one hash function of the zoo)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_sha256(
    path: str | os.PathLike, expected: str, what: str, remedy: str
) -> None:
    """Raises `ValueError` unless the file at `path` has sha256 `expected`.

    Args:
        path: the file to hash.
        expected: the hex sha256 it must have.
        what: the file, as the message names it (e.g. "Weights file X").
        remedy: what to do about a mismatch (a sentence).
    """
    actual = sha256(path)
    if actual != expected:
        raise ValueError(
            f"{what} must have the sha256 recorded in {METADATA_FILE}: it has "
            f"sha256 {actual}, expected {expected}. {remedy} "
            f"Received: sha256={actual}"
        )


def _download(url: str, expected_sha256: str | None, preset: Preset) -> Path:
    """Downloads `url` into the cache once; checks its sha256."""
    name = preset.name
    metadata_path = preset.path / METADATA_FILE
    if not expected_sha256:
        raise ValueError(
            f"Preset {name!r} has a weights_url but no sha256 in its metadata; "
            f"refusing to load unverified weights. {metadata_path} must record "
            f"the sha256 of the file at weights_url. Received: weights_url={url!r}, "
            f"sha256={expected_sha256!r}"
        )
    target = cache_dir() / name / f"{expected_sha256[:16]}-{WEIGHTS_FILE}"
    if target.is_file() and sha256(target) == expected_sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url) as response:  # noqa: S310
                    shutil.copyfileobj(response, out)
            except URL_ERRORS as e:
                reason = url_error_reason(e)
                raise ConnectionError(
                    f"Could not download the weights of preset {name!r} from "
                    f"{url}: {reason}. The weights_url in {metadata_path} must "
                    "be reachable from this machine; without network access, "
                    "download the file elsewhere and pass its path as "
                    f"`weights=`. Received: weights_url={url!r}"
                ) from e
        _check_sha256(
            tmp,
            expected_sha256,
            f"Weights downloaded for preset {name!r} from {url}",
            "The download was discarded (nothing was cached); downloads are "
            f"always checked, so fix weights_url or sha256 in {metadata_path}.",
        )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


def resolve_weights(
    preset: Preset, weights: Any = "auto", *, verify_sha256: bool = True
) -> Path | None:
    """The weights file `load` would use, or None for an untrained model.

    Args:
        preset: the preset.
        weights: "auto", True, False or a weights path (module docstring).
        verify_sha256: check bundled weights against the `sha256` in
            `metadata.json` (when it records one). Pass False only while
            editing a preset whose new weights are not recorded yet.
            Downloaded weights are always checked; an explicit weights path
            is the caller's file and is not checked.

    Raises:
        ValueError: bundled weights whose sha256 disagrees with the metadata
            (naming the file, both hashes and `verify_sha256=False`), an
            invalid `weights`, or no weights with `weights=True`.
        FileNotFoundError: a weights path that is not a file.
        ConnectionError: a `weights_url` that cannot be downloaded.
    """
    if not isinstance(verify_sha256, bool):
        raise TypeError(
            "`verify_sha256` must be True or False. "
            f"Received: verify_sha256={verify_sha256!r}"
        )
    if weights is False or weights is None:
        return None
    if isinstance(weights, (str, os.PathLike)) and weights != "auto":
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(
                "`weights` must be 'auto', True, False or the path of an "
                f"existing weights file; {path} is not a file. "
                f"Received: weights={os.fspath(weights)!r}"
            )
        return path
    if weights is not True and weights != "auto":
        raise ValueError(
            "`weights` must be 'auto', True, False or a path. "
            f"Received: weights={weights!r}"
        )
    if preset.bundled_weights is not None:
        return _checked_bundled_weights(preset, verify_sha256)
    url = preset.metadata.get("weights_url")
    if url:
        return _downloaded_weights(preset, url)
    if weights is True:
        raise ValueError(
            f"Preset {preset.name!r} has no trained weights (no {WEIGHTS_FILE} "
            "and no weights_url). Use weights=False for the architecture, or "
            f"train it: {_train_hint(preset)}"
        )
    warnings.warn(
        f"Preset {preset.name!r} has no trained weights; returning the untrained "
        f"architecture. Train it with: {_train_hint(preset)}",
        stacklevel=3,
    )
    return None


def _checked_bundled_weights(preset: Preset, verify_sha256: bool) -> Path:
    """The preset's `model.weights.h5`, checked against its recorded sha256."""
    bundled = preset.bundled_weights
    expected = preset.metadata.get("sha256")
    if verify_sha256 and expected:
        _check_sha256(
            bundled,
            expected,
            f"Weights file {bundled} of preset {preset.name!r}",
            f"The file is corrupt or was changed after {METADATA_FILE} was "
            "written. If you are editing this preset, load it with "
            "`zoo.load(..., verify_sha256=False)` (or `resolve_weights(..., "
            "verify_sha256=False)`), then record the new hash with "
            "`zoo.save_preset`.",
        )
    return bundled


def _downloaded_weights(preset: Preset, url: str) -> Path:
    """The file at the preset's `weights_url`, downloaded once and checked."""
    scheme = urllib.parse.urlparse(url).scheme
    if scheme not in ("https", "http", "file"):
        raise ValueError(
            f"The weights_url in {preset.path / METADATA_FILE} must be an "
            f"https, http or file URL. Received: weights_url={url!r}"
        )
    return _download(url, preset.metadata.get("sha256"), preset)


def _train_hint(preset: Preset) -> str:
    command = preset.metadata.get("training_command")
    dataset = preset.metadata.get("dataset", "<dataset>")
    return command or f"pixel-keras train --preset {preset.name} --dataset {dataset}"


def load_weights_checked(model: keras.Model, path: str | os.PathLike) -> None:
    """`model.load_weights(path)`, with a clear error when they do not fit."""
    problem = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(str(path))
        except Exception as e:  # Keras raises ValueError/KeyError/TypeError.
            problem = e
    # Keras only warns when parts of the file or the model have no match
    # ("Skipping ...", "retain their freshly-initialized weights"): a partial
    # load is as wrong as a failed one.
    partial = [
        str(w.message)
        for w in caught
        if "Skipping" in str(w.message)
        or "freshly-initialized" in str(w.message)
        or "mismatch" in str(w.message).lower()
    ]
    for w in caught:
        if str(w.message) not in partial:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if isinstance(problem, OSError):  # h5py: not an HDF5 file, truncated, ...
        raise ValueError(
            f"The weights file {path} must be a Keras weights file "
            f"(HDF5, *.weights.h5), but it cannot be read: {problem}. "
            f"Received: path={os.fspath(path)!r}"
        ) from problem
    if problem is not None or partial:
        detail = problem if problem is not None else partial[0]
        raise ValueError(
            f"The weights file {path} does not match the architecture "
            f"{type(model).__name__} ({model.count_params()} parameters): {detail}"
        ) from problem


class PresetMixin:
    """Adds `from_preset` to a model class: `PixelCNN.from_preset("pixelcnn_digits")`.

    The preset's `config.json` names its architecture; `cls.from_preset`
    accepts a preset of `cls` or of a subclass (so a base class builds any
    preset), and refuses one of another architecture, pointing to the right
    class or to `pixel_keras.zoo.load`. Weights are resolved as
    `zoo.load(..., weights="auto")` does.
    """

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        """Builds the model of a preset and loads its weights.

        Args:
            preset: a built-in preset name (`zoo.list_presets()`), a preset
                directory, or a `Preset`.
            load_weights: load the preset's weights (its bundled
                `model.weights.h5`, else its `weights_url`; checked against
                the `sha256` of its metadata), warning when it has none, as
                `zoo.load` does; False for the architecture only.
            **kwargs: model arguments replacing the preset's (e.g. a smaller
                `image_shape`); the weights are then not loaded.

        Returns:
            The model, uncompiled.

        Raises:
            ValueError: an unknown preset, a preset of another architecture,
                or weights that do not fit or fail their sha256 check.
            TypeError: `load_weights` is not a bool.
        """
        if not isinstance(load_weights, bool):
            raise TypeError(
                "`load_weights` must be True or False. "
                f"Received: load_weights={load_weights!r}"
            )
        if not isinstance(preset, Preset):
            preset = get_preset(preset)
        preset_cls = preset_class(preset)
        if issubclass(cls, preset_cls):
            target = cls
        elif issubclass(preset_cls, cls):
            target = preset_cls
        else:
            raise ValueError(
                f"{cls.__name__}.from_preset needs a preset of its architecture; "
                f"preset {preset.name!r} is a {preset.model!r} model; use "
                f"{preset_cls.__name__}.from_preset or pixel_keras.zoo.load. "
                f"Received: preset={preset.name!r}"
            )
        model = instantiate(preset, target, kwargs)
        if load_weights and not kwargs:
            path = resolve_weights(preset, "auto")
            if path is not None:
                load_weights_checked(model, path)
        return model
