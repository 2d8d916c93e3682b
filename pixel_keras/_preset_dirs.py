"""Where the built-in presets live and their names, without Keras.

`pixel_keras.models.presets` (and through it `pixel_keras.zoo`) re-exports
these; the command line imports this module alone so that a usage error
needs no TensorFlow start-up.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

CONFIG_FILE = "config.json"


def presets_root() -> Path:
    """The directory holding the built-in presets."""
    package = Path(__file__).resolve().parent  # pixel_keras/
    checkout = package.parent / "zoo"
    if checkout.is_dir():
        return checkout
    return package / "_zoo"


def list_presets(pattern: str | None = None) -> list[str]:
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
