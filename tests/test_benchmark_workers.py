"""`benchmarks/_common.py`: a `--compare` worker runs its own checkout's code.

Until 2026-12-05 the worker for an old commit imported any module its
checkout lacked (`pixel_keras.precision`) from the editable install of the
current checkout, through setuptools' finder on `sys.meta_path`, so the old
side silently trained in bfloat16. These tests pin the guard against that.
"""

import importlib.util
import os
import sys
import types

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def common(monkeypatch):
    spec = importlib.util.spec_from_file_location(
        "_bench_common", os.path.join(ROOT, "benchmarks", "_common.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
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
