"""The `pixel-keras` command line (also `python -m pixel_keras`).

```
pixel-keras train    --dataset digits --epochs 5 --out runs/digits   # a run directory
pixel-keras train    --model row_lstm --num-layers 2 --dataset digits
pixel-keras train    --model gated_pixelcnn --num-classes 10 --dataset digits
pixel-keras train    --preset pixelcnn_digits                        # a zoo preset
pixel-keras evaluate runs/digits --split test                        # exact bits/dim
pixel-keras sample   runs/digits --out samples.png --seed 0          # PNG grid
pixel-keras sample   --preset test_pixelcnn --out samples.png        # preset weights
pixel-keras zoo list '*digits'                                       # presets
pixel-keras zoo show pixelcnn_digits [--json]
```

`train` writes the run directory described in `pixel_keras.training`
(config, crash-safe checkpoints, per-epoch sample grids, TensorBoard logs)
and continues it with `--resume`. The architecture is `--model` with its own
options (each option applies to the models that take the argument; giving it
to another model is an error), or a zoo preset (`--preset NAME` or a preset
directory), whose single arguments the same options override; `--dataset`
then defaults to the preset's. `evaluate` and `sample` take a run directory
(its latest checkpoint), a `.keras` file, or `--preset` (the preset's trained
weights; `sample` warns and draws from the untrained architecture when it
has none).

Errors in the arguments, and errors the library reports about them
(`ValueError`, missing or existing files, unavailable data, unknown
presets), print one line `pixel-keras: error: ...` on stderr and exit with
status 2, without a traceback; a training run whose loss became NaN or
infinite (`training.TrainingDivergedError`) prints one such line and exits
with status 1.

`--help`, parse errors and the argument checks that need no library
(`precheck`) import neither Keras nor TensorFlow. The other commands import
them once, through `import_tensorflow_quietly`, which keeps TensorFlow's C++
start-up lines (written to stderr before its logging is configured, so
TF_CPP_MIN_LOG_LEVEL cannot silence them) out of the output.

The package: `_common` (argument types, the model source, `UsageError`),
one module per command (`train`, `evaluate`, `sample`, `export`, `serve`,
`zoo`: its parser as `add_parser(commands)` and its handler), and here the
top-level parser, `main` and the TensorFlow import.
"""

import argparse
import contextlib
import os
import re
import sys
import tempfile

from pixel_keras.cli import evaluate, export, sample, serve, train, zoo
from pixel_keras.cli._common import PROG, UsageError
from pixel_keras.cli.train import (
    MODEL_NAMES,
    MODEL_OPTION_ARGUMENTS,
    MODEL_OPTIONS,
    OPTION_FLAGS,
    STRATEGIES,
)

__all__ = [
    "MODEL_NAMES",
    "MODEL_OPTIONS",
    "MODEL_OPTION_ARGUMENTS",
    "OPTION_FLAGS",
    "PROG",
    "STRATEGIES",
    "UsageError",
    "build_parser",
    "import_tensorflow_quietly",
    "main",
]

# What TensorFlow's native libraries write to stderr while `import tensorflow`
# loads them, before its logging is set up, so that TF_CPP_MIN_LOG_LEVEL
# cannot silence it (on CPUs with AVX-512/oneDNN: the absl line and the
# oneDNN note, once per library, i.e. twice): filtered from the commands'
# output unless TF_CPP_MIN_LOG_LEVEL is 0.
_TF_STARTUP_LINE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are "
    r"written to STDERR$"
    r"|[IW]\d{4} [\d:.]+ +\d+ (port|cpu_feature_guard)\.cc:\d+\] "
    r"|To enable the following instructions: .*rebuild TensorFlow with the "
    r"appropriate compiler flags\.$"
)
# Commands that run without Keras and TensorFlow.
_COMMANDS_WITHOUT_TENSORFLOW = ("serve-sample",)


# ---------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """Reports a parse error in one line (and where to find the usage)."""

    def error(self, message):
        self.exit(2, f"{PROG}: error: {message} (see '{self.prog} --help')\n")


def build_parser():
    """The `argparse` parser of `pixel-keras` and its subcommands."""
    parser = _Parser(
        prog=PROG,
        description="Train, evaluate and sample autoregressive image models "
        "(PixelCNN family) with exact bits/dim.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for command in (train, evaluate, sample, zoo, export, serve):
        command.add_parser(commands)
    return parser


def _version():
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pixel-keras")
    except PackageNotFoundError:  # Not installed (running from a source tree).
        return "unknown"


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------


def import_tensorflow_quietly():
    """Imports Keras and TensorFlow without TensorFlow's C++ start-up lines.

    TensorFlow writes a few INFO lines to file descriptor 2 while its native
    libraries load, whatever TF_CPP_MIN_LOG_LEVEL says. This sends descriptor
    2 to a temporary file during the import, restores it, and writes back to
    `sys.stderr` every captured line except those start-up lines (warnings and
    errors stay visible). With TF_CPP_MIN_LOG_LEVEL=0 nothing is filtered.
    Does nothing once TensorFlow is imported.
    """
    if "tensorflow" in sys.modules and "keras" in sys.modules:
        return
    try:
        keep_all = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")) < 1
    except ValueError:
        keep_all = False
    with tempfile.TemporaryFile() as captured:
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:  # No descriptor 2: nothing to keep quiet.
            saved = None
        if saved is not None:
            os.dup2(captured.fileno(), 2)
        try:
            import keras  # noqa: F401  (imports TensorFlow on its backend)

            try:
                import tensorflow  # noqa: F401
            except ImportError:  # JAX backend without TensorFlow.
                pass
        finally:
            if saved is not None:
                with contextlib.suppress(Exception):
                    sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                captured.seek(0)
                text = captured.read().decode("utf-8", errors="replace")
                for line in text.splitlines(keepends=True):
                    if keep_all or not _TF_STARTUP_LINE.match(line):
                        sys.stderr.write(line)
                sys.stderr.flush()


def _user_errors():
    """Exceptions that mean "bad input", reported in one line."""
    errors = [UsageError, ValueError, OSError]
    data = sys.modules.get("pixel_keras.data")
    if data is not None:
        errors.append(data.DataUnavailableError)
    return tuple(errors)


def _run_failures():
    """Exceptions that mean "the run failed" (exit status 1), in one line."""
    training = sys.modules.get("pixel_keras.training")
    return (training.TrainingDivergedError,) if training is not None else ()


def _error_line(error):
    """`pixel-keras: error: MESSAGE` on one line."""
    message = str(error) or type(error).__name__
    if isinstance(error, OSError) and error.filename:
        if str(error.filename) not in message:
            message = f"{message}: {error.filename}"
    return f"{PROG}: error: {' '.join(message.split())}"


def main(argv=None):
    """Runs `pixel-keras` with `argv` (default: `sys.argv[1:]`).

    Returns:
        The exit status: 0 on success, 2 for bad arguments or inputs,
        1 when training diverged (NaN or infinite loss), 130 when
        interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a parse error (2, already printed).
        return e.code
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        # Argument checks first: an argument error imports no TensorFlow.
        if getattr(args, "precheck", None) is not None:
            args.precheck(args)
        if args.command not in _COMMANDS_WITHOUT_TENSORFLOW:
            import_tensorflow_quietly()
        return args.handler(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except _user_errors() as e:
        print(_error_line(e), file=sys.stderr)
        return 2
    except _run_failures() as e:
        if sys.stdout.isatty():  # End the progress bar's line.
            print(flush=True)
        print(_error_line(e), file=sys.stderr)
        return 1
