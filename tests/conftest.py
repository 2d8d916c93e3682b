"""Shared pytest configuration.

`--run-large` runs tests marked `large`; tests marked `tf_only` skip under
`KERAS_BACKEND=jax` (the tox `py311-jax` env).
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# `precision="auto"` would train in bfloat16 on CPUs with native bfloat16 and
# in float32 elsewhere: pin float32 so that no test depends on the CPU model
# (subprocesses inherit it; tests of bfloat16 ask for it explicitly).
os.environ["PIXEL_KERAS_PRECISION"] = "float32"

import keras  # noqa: E402
import pytest  # noqa: E402


def pytest_addoption(parser):
    parser.addoption(
        "--run-large", action="store_true", default=False, help="run large tests"
    )


def pytest_collection_modifyitems(config, items):
    skip_large = pytest.mark.skip(reason="large test: pass --run-large to run it")
    skip_tf = pytest.mark.skip(
        reason=f"needs the TensorFlow backend (running {keras.backend.backend()})"
    )
    for item in items:
        if "large" in item.keywords and not config.getoption("--run-large"):
            item.add_marker(skip_large)
        if "tf_only" in item.keywords and keras.backend.backend() != "tensorflow":
            item.add_marker(skip_tf)


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
    yield
