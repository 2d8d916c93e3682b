#!/usr/bin/env bash
# Prepares a fresh machine for pixel-keras: Fashion-MNIST from Debian (when
# apt is available), a virtual environment in .venv, and the package with its
# test dependencies (tools/install.sh). Source it: `. tools/bootstrap.sh`.
# Idempotent: a second run only checks what is there.

_pk_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1; then
    echo "[pixel-keras] installing Fashion-MNIST from Debian (dataset-fashion-mnist)"
    _pk_sudo=""
    [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && _pk_sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $_pk_sudo apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
        || { $_pk_sudo apt-get update -q >/dev/null 2>&1 \
             && $_pk_sudo apt-get install -y -q dataset-fashion-mnist >/dev/null; } \
        || echo "[pixel-keras] warning: could not install dataset-fashion-mnist;" \
                "Fashion-MNIST tests and the demo need it (or PIXEL_KERAS_DATA_DIR)"
fi

if [ -z "${VIRTUAL_ENV:-}" ]; then
    if [ ! -x "$_pk_root/.venv/bin/python" ]; then
        echo "[pixel-keras] creating virtual environment .venv"
        python3 -m venv "$_pk_root/.venv"
    fi
    # shellcheck disable=SC1091
    . "$_pk_root/.venv/bin/activate"
fi

bash "$_pk_root/tools/install.sh"
