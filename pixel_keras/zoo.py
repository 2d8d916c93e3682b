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

zoo.list("*fashion_mnist")
model = zoo.load("pixelcnn_digits")         # trained weights where they exist
model = zoo.load("gated_pixelcnn_cifar", weights=False)
zoo.save_preset(model, "my_presets/gated_cifar", {"dataset": "cifar10"})
```
"""

from __future__ import annotations

import fnmatch
import hashlib
import http.client
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from pixel_keras.models.registry import get_model_class, model_name

CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
WEIGHTS_FILE = "model.weights.h5"
CARD_FILE = "README.md"

_builtin_list = list


def presets_root() -> Path:
    """The directory holding the built-in presets."""
    checkout = Path(__file__).resolve().parent.parent / "zoo"
    if checkout.is_dir():
        return checkout
    return Path(__file__).resolve().parent / "_zoo"


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


def list(pattern: str | None = None) -> _builtin_list[str]:  # noqa: A001
    """Names of the built-in presets, sorted, optionally filtered by a glob."""
    root = presets_root()
    names = (
        sorted(p.name for p in root.iterdir() if (p / CONFIG_FILE).is_file())
        if root.is_dir()
        else []
    )
    if pattern is not None:
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    return names


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
            "`name_or_path` must be a preset name (str; see `zoo.list()`) or a "
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
            f"{', '.join(list())}. A preset is one of these names or a directory "
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


def build(preset: Preset, **overrides) -> keras.Model:
    """The preset's architecture (random weights), config overridden."""
    try:
        cls = get_model_class(preset.model)
    except ValueError as e:
        raise ValueError(
            f'{preset.path / CONFIG_FILE}: "model" must name a registered '
            f"architecture. {e}. Received: model={preset.model!r}"
        ) from e
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


def count_params(preset: Preset) -> int:
    """Parameter count at the preset's real size, without allocating weights."""
    with keras.StatelessScope(initialize_variables=False):
        return build(preset).count_params()


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
            except (
                urllib.error.URLError,
                http.client.HTTPException,
                ConnectionError,
                TimeoutError,
            ) as e:
                reason = (
                    e
                    if isinstance(e, urllib.error.HTTPError)
                    else getattr(e, "reason", e)
                )
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
    bundled = preset.bundled_weights
    if bundled is not None:
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
    url = preset.metadata.get("weights_url")
    if url:
        scheme = urllib.parse.urlparse(url).scheme
        if scheme not in ("https", "http", "file"):
            raise ValueError(
                f"The weights_url in {preset.path / METADATA_FILE} must be an "
                f"https, http or file URL. Received: weights_url={url!r}"
            )
        return _download(url, preset.metadata.get("sha256"), preset)
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


def load(
    name_or_path: str | os.PathLike,
    weights: Any = "auto",
    *,
    verify_sha256: bool = True,
    **overrides,
) -> keras.Model:
    """Builds a preset's model and loads its weights.

    Args:
        name_or_path: a built-in preset name (`zoo.list()`) or a preset
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
        config["image_shape"] = _builtin_list(config["image_shape"])
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}-"))
    try:
        meta = dict(metadata or {})
        meta.update(
            {
                "model": name,
                "image_shape": _builtin_list(model.image_shape),
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
            "Training command",
            f"`{metadata['training_command']}`"
            if metadata.get("training_command")
            else None,
        ),
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
    if metadata.get("samples"):
        lines += ["", "## Samples", "", f"![samples]({metadata['samples'].split()[0]})"]
    return "\n".join(lines) + "\n"


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
