#!/usr/bin/env bash
# Installs pixel-keras into the CURRENT Python environment.
#
#   tools/install.sh [--extras test,jax] [PIP_ARGS...]
#
# 1. pip install -e ".[<extras>]" PIP_ARGS   (extras default: test)
#    PIP_ARGS go to the same pip call, e.g. a TensorFlow pin:
#        tools/install.sh "tensorflow-cpu==2.18.*"
# 2. pip install --no-deps "tf-keras==<TF major.minor>.*"
#    tf-keras declares a dependency on the full `tensorflow` wheel, which
#    would be installed next to `tensorflow-cpu` (two copies of the same
#    `tensorflow` package, one overwriting the other). TFP's PixelCNN and
#    layers need tf-keras, so it is installed without dependencies, matched
#    to the TensorFlow minor version that step 1 installed.
#
# Idempotent and quick (< 1 s) when nothing changed: step 1 is skipped when
# the package is already installed editable from this checkout, setup.py is
# not newer than that install, and its requirements and the PIP_ARGS (all
# requirement specifiers, like the pin above) are met by the installed
# versions; step 2 is skipped when tf-keras already matches.
#
# Environment: PYTHON (default: python), PIP_ARGS_EXTRA (appended to pip).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python}"
extras="test"
if [ "${1:-}" = "--extras" ]; then
    extras="${2:?--extras needs a value, e.g. test,jax}"
    shift 2
fi
# shellcheck disable=SC2206  # intentional word splitting of extra pip args
pip_extra=(${PIP_ARGS_EXTRA:-})

log() { echo "[install.sh] $*" >&2; }

# Exit status 0 when pixel-keras is installed editable from $root, no
# packaging file changed since, every requirement of it (with the chosen
# extras) is satisfied, and so is every PIP_ARG (which must then all be
# requirement specifiers, not options). Direct requirements only.
up_to_date() {
    "$python" - "$root" "$extras" "$@" <<'PY'
import importlib.util
import os
import sys
from importlib import metadata

root, pins = os.path.realpath(sys.argv[1]), sys.argv[3:]
extras = set(sys.argv[2].split(","))
try:
    from packaging.requirements import Requirement
except ImportError:
    sys.exit(1)
try:
    dist = metadata.distribution("pixel-keras")
except metadata.PackageNotFoundError:
    sys.exit(1)
# Editable: the package is imported from this checkout (works for both
# PEP 660 installs and legacy `setup.py develop` egg-links).
spec = importlib.util.find_spec("pixel_keras")
if spec is None or not spec.origin:
    sys.exit(1)
if os.path.dirname(os.path.dirname(os.path.realpath(spec.origin))) != root:
    sys.exit(1)
# Packaging files edited since the install: the requirements may have changed.
meta_dir = getattr(dist, "_path", None)
names = ("METADATA", "PKG-INFO") if meta_dir else ()
meta_files = [os.path.join(meta_dir, f) for f in names]
meta_files = [f for f in meta_files if os.path.exists(f)]
if not meta_files:
    sys.exit(1)
installed_at = os.path.getmtime(meta_files[0])
for name in ("setup.py", "setup.cfg", "pyproject.toml"):
    path = os.path.join(root, name)
    if os.path.exists(path) and os.path.getmtime(path) > installed_at:
        sys.exit(1)
if any(pin.startswith("-") for pin in pins):
    sys.exit(1)
for line in [*(dist.requires or []), *pins]:
    req = Requirement(line)
    envs = [{"extra": e} for e in extras | {""}]
    if req.marker and not any(req.marker.evaluate(env) for env in envs):
        continue
    try:
        installed = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        sys.exit(1)
    if not req.specifier.contains(installed, prereleases=True):
        sys.exit(1)
PY
}

if up_to_date "$@"; then
    log "pixel-keras[$extras] already installed from $root; skipping pip install -e"
else
    log "pip install -e $root[$extras] $*"
    "$python" -m pip install "${pip_extra[@]}" -e "$root[$extras]" "$@"
fi

# TensorFlow's major.minor from package metadata (importing TF takes seconds).
tf_minor="$("$python" - <<'PY'
from importlib import metadata

for name in ("tensorflow-cpu", "tensorflow", "tensorflow-intel", "tensorflow-macos"):
    try:
        print(".".join(metadata.version(name).split(".")[:2]))
        break
    except metadata.PackageNotFoundError:
        pass
PY
)"
if [ -z "$tf_minor" ]; then
    log "TensorFlow is not installed; cannot pick a tf-keras version" && exit 1
fi

tfk_minor="$("$python" - <<'PY'
from importlib import metadata

try:
    print(".".join(metadata.version("tf-keras").split(".")[:2]))
except metadata.PackageNotFoundError:
    pass
PY
)"
if [ "$tfk_minor" = "$tf_minor" ]; then
    log "tf-keras $tf_minor.* already installed (TensorFlow $tf_minor)"
else
    log "pip install --no-deps tf-keras==$tf_minor.* (TensorFlow $tf_minor)"
    "$python" -m pip install "${pip_extra[@]}" --no-deps "tf-keras==$tf_minor.*"
fi

# tensorflow-serving-api (the gRPC PredictionService stubs for
# pixel_keras.serving) also requires the full `tensorflow` wheel: install it
# without dependencies too (grpcio comes with tensorboard). Optional: without
# it only the gRPC client and its protocol test are unavailable.
tfs_minor="$("$python" - <<'PY'
from importlib import metadata

try:
    print(".".join(metadata.version("tensorflow-serving-api").split(".")[:2]))
except metadata.PackageNotFoundError:
    pass
PY
)"
if [ "$tfs_minor" = "$tf_minor" ]; then
    log "tensorflow-serving-api $tf_minor.* already installed"
else
    log "pip install --no-deps tensorflow-serving-api==$tf_minor.*"
    "$python" -m pip install "${pip_extra[@]}" --no-deps "tensorflow-serving-api==$tf_minor.*" \
        || log "warning: tensorflow-serving-api $tf_minor.* not installable; gRPC client tests will skip"
fi

# What ended up installed (for CI and tox logs).
"$python" - <<'PY' >&2
from importlib import metadata

names = (
    "pixel-keras", "tensorflow-cpu", "tensorflow", "tf-keras", "tensorflow-serving-api", "keras",
    "tensorflow-probability", "tensorflow-datasets", "tensorflow-metadata",
    "numpy", "ml-dtypes", "protobuf", "jax", "jaxlib",
)
found = []
for name in names:
    try:
        found.append(f"{name}=={metadata.version(name)}")
    except metadata.PackageNotFoundError:
        pass
print("[install.sh] installed:", " ".join(found))
PY
