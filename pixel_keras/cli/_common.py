"""What the `pixel-keras` commands share: argument types, the model source.

Imports neither Keras nor TensorFlow (the commands' modules import the
library inside their handlers).
"""

import argparse
import os
import sys

from pixel_keras import checks
from pixel_keras._preset_dirs import list_presets

PROG = "pixel-keras"


class UsageError(Exception):
    """A command line problem found after parsing (exit status 2)."""


# ---------------------------------------------------------------------------
# Argument types
# ---------------------------------------------------------------------------


def _int(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _float(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def positive_int(text):
    """An int >= 1."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_int(text):
    """An int >= 0."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def unit_interval(text):
    """A float in (0, 1)."""
    value = _float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {text}")
    return value


def positive_float(text):
    """A finite float > 0."""
    value = _float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def temperature(text):
    """A sampling temperature: `checks.check_temperature`'s rule."""
    value = _float(text)
    try:
        return checks.check_temperature(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be {checks.TEMPERATURE_REQUIREMENT}, got {text}"
        ) from None


def verbosity(text):
    """A verbosity: `checks.resolve_verbose`'s rule ("auto" is kept as it is)."""
    if text == "auto":
        return text
    value = _int(text)
    try:
        return checks.resolve_verbose(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be {checks.VERBOSE_REQUIREMENT}, got {text}"
        ) from None


# ---------------------------------------------------------------------------
# A model from a checkpoint or a preset (evaluate, sample)
# ---------------------------------------------------------------------------


def add_model_source(p, preset_help):
    """Adds CHECKPOINT and --preset (give one; `check_model_source`)."""
    p.add_argument(
        "checkpoint",
        nargs="?",
        help="run directory (latest checkpoint) or .keras file; or use --preset",
    )
    p.add_argument("--preset", metavar="NAME", help=preset_help)


def check_model_source(args):
    """Exactly one of CHECKPOINT and --preset; the checkpoint must exist."""
    if (args.checkpoint is None) == (args.preset is None):
        given = (
            "neither"
            if args.checkpoint is None
            else f"both ({args.checkpoint} and --preset {args.preset})"
        )
        raise UsageError(
            "give exactly one of CHECKPOINT (a run directory or .keras file) "
            f"and --preset NAME, got {given}"
        )
    if args.checkpoint is not None and not os.path.exists(args.checkpoint):
        message = f"no such checkpoint file or run directory: {args.checkpoint}"
        if args.checkpoint in list_presets():
            message += f" (for the zoo preset, use --preset {args.checkpoint})"
        raise UsageError(message)


def load_preset(name, weights):
    """`zoo.load(name, weights)`; its warnings become `pixel-keras: warning:` lines."""
    import warnings

    from pixel_keras import zoo

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = zoo.load(name, weights=weights)
    for warning in caught:
        print(f"{PROG}: warning: {warning.message}", file=sys.stderr)
    return model
