"""`benchmarks/_common.py`: a `--compare` worker runs its own checkout's code.

Until 2026-12-05 the worker for an old commit imported any module its
checkout lacked (`pixel_keras.precision`) from the editable install of the
current checkout, through setuptools' finder on `sys.meta_path`, so the old
side silently trained in bfloat16. These tests pin the guard against that,
and the options of `train_throughput.py --isolate` (one worker per model).
"""

import importlib.util
import os
import sys
import types

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_benchmark(module_name, file_name):
    """A module of `benchmarks/` loaded from its file under `module_name`."""
    spec = importlib.util.spec_from_file_location(
        module_name, os.path.join(ROOT, "benchmarks", file_name)
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def common(monkeypatch):
    module = _load_benchmark("_bench_common", "_common.py")
    # Whatever a test does to the import system is undone afterwards.
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.setattr(sys, "path_hooks", list(sys.path_hooks))
    monkeypatch.setattr(sys, "path", list(sys.path))
    return module


def _editable_finder():
    finder = type("_EditableFinder", (), {})
    finder.__module__ = "__editable___pixel_keras_0_1_0_finder"
    return finder


def test_worker_drops_editable_install_finders(common, monkeypatch, tmp_path):
    finder, other = _editable_finder(), type("OtherFinder", (), {})
    sys.meta_path.extend([finder, other])
    monkeypatch.setenv(common.ROOT_ENV, str(tmp_path))
    assert common.use_package_root() == str(tmp_path)
    assert sys.path[0] == str(tmp_path)
    assert finder not in sys.meta_path
    assert other in sys.meta_path


def test_parent_keeps_editable_install_finders(common, monkeypatch):
    finder = _editable_finder()
    sys.meta_path.append(finder)
    monkeypatch.delenv(common.ROOT_ENV, raising=False)
    common.use_package_root()
    assert finder in sys.meta_path


def test_check_package_root_names_a_module_from_another_checkout(
    common, monkeypatch, tmp_path
):
    import pixel_keras

    own = os.path.dirname(os.path.dirname(os.path.abspath(pixel_keras.__file__)))
    monkeypatch.setenv(common.ROOT_ENV, own)
    assert common.check_package_root() == os.path.abspath(pixel_keras.__file__)

    stray = types.ModuleType("pixel_keras.precision_elsewhere")
    stray.__file__ = str(tmp_path / "pixel_keras" / "precision.py")
    monkeypatch.setitem(sys.modules, stray.__name__, stray)
    with pytest.raises(common.WorkerError, match="pixel_keras.precision_elsewhere"):
        common.check_package_root()


@pytest.fixture
def train_throughput(common, monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    monkeypatch.setitem(sys.modules, "_common", common)
    return _load_benchmark("_bench_train_throughput", "train_throughput.py")


def test_isolate_runs_one_process_per_model(train_throughput):
    args = train_throughput.parse_args(["--models", "gated,tfp_pixelcnn", "--isolate"])
    assert args.isolate and args.models == ["gated", "tfp_pixelcnn"]
    assert train_throughput.setup(args, {})["processes"] == "one per model"
    default = train_throughput.parse_args(["--models", "gated"])
    assert train_throughput.setup(default, {})["processes"] == "one"


def test_isolate_and_compare_exclude_each_other(train_throughput, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_throughput.parse_args(["--isolate", "--compare", "HEAD"])
    assert exit_info.value.code == 2
    assert "--isolate and --compare exclude each other" in capsys.readouterr().err
