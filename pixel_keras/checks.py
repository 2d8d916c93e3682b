"""Argument rules in plain Python, shared by the library and the command line.

Imports neither Keras, TensorFlow nor NumPy, so that `pixel-keras` can check
its arguments before it loads them (NumPy values are still recognized when
the caller has NumPy loaded).
"""

import sys

# The compute precisions `train --precision` takes (`pixel_keras.precision`).
PRECISION_POLICIES = ("auto", "float32", "mixed_bfloat16")

# How `train --output-bias` initializes the bias of a new model's last layer:
# zeros (Keras' default), or the log marginal of the training data's levels
# (`AutoregressiveImageModel.init_output_bias` on `OUTPUT_BIAS_IMAGES`
# images: the first ones of the training split, in its stored order).
OUTPUT_BIAS_INITS = ("zeros", "marginal")
OUTPUT_BIAS_IMAGES = 1024

# Temperatures float32 can divide logits by (sampling runs in float32): the
# smallest normal float32 and the largest finite one (NumPy's
# `finfo(float32).tiny` and `.max`). The exported signatures check the same
# range in the graph.
MIN_TEMPERATURE = 2.0**-126
MAX_TEMPERATURE = (2.0 - 2.0**-23) * 2.0**127
# What a temperature must be (the command line's messages end with it).
TEMPERATURE_REQUIREMENT = (
    f"a finite number > 0 (at least {MIN_TEMPERATURE:.4g} and at most "
    f"{MAX_TEMPERATURE:.4g}, the float32 range the logits are divided in)"
)
TEMPERATURE_RULE = f"`temperature` must be {TEMPERATURE_REQUIREMENT}."


# `train --verbose` (`pixel_keras.training.train`'s `verbose`): 0 silent, 1
# Keras' progress bar, 2 one line per epoch, "auto" the bar on a terminal
# and lines otherwise (a log file gets no bar redrawn at every step).
VERBOSE_REQUIREMENT = '"auto", 0, 1 or 2'


def resolve_verbose(verbose):
    """`fit`'s verbosity (0, 1 or 2) for `verbose`; "auto" looks at stdout.

    Raises:
        ValueError: `verbose` is not one of "auto", 0, 1, 2.
    """
    if isinstance(verbose, str) and verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    if (
        isinstance(verbose, bool)
        or not isinstance(verbose, int)
        or not 0 <= verbose <= 2
    ):
        raise ValueError(
            f"`verbose` must be {VERBOSE_REQUIREMENT}. Received: verbose={verbose!r}"
        )
    return verbose


def is_real_number(value):
    """True for Python and NumPy ints and floats; bools are not numbers here."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    np = sys.modules.get("numpy")  # Not loaded: `value` is no NumPy scalar.
    return np is not None and isinstance(value, (np.integer, np.floating))


def check_temperature(temperature):
    """Returns `temperature` as a float after checking it.

    Raises:
        ValueError: unless it is a finite number > 0 (a real number, not a
            bool, in `[MIN_TEMPERATURE, MAX_TEMPERATURE]`).
    """
    valid = is_real_number(temperature)
    try:
        valid = valid and MIN_TEMPERATURE <= float(temperature) <= MAX_TEMPERATURE
    except OverflowError:  # an int beyond float's range
        valid = False
    if not valid:
        raise ValueError(f"{TEMPERATURE_RULE} Received: temperature={temperature!r}")
    return float(temperature)
