#!/usr/bin/env bash
# The test suite on a fresh machine: installs what it needs, then runs pytest.
# Extra arguments go to pytest (e.g. `tools/test.sh --run-large`).
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/bootstrap.sh
python -m pytest -q "$@"
