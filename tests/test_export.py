"""SavedModel export: signatures agree with the Keras model, TF Serving's
loader path (TF1 session + tensor names), version/overwrite semantics.

Each test preset is exported once per module (graphs with while loops are
slow to trace and save).
"""

import os
import re
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.tf_only

PRESETS = (
    "test_pixelcnn",
    "test_row_lstm",
    "test_diagonal_bilstm",
    "test_gated_pixelcnn",
    "test_gated_pixelcnn_conditional",
)
PREDICT = "tensorflow/serving/predict"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """{preset: (keras model, version directory, loaded SavedModel)}."""
    import keras
    import tensorflow as tf

    from pixel_keras import export, zoo

    out = {}
    base = tmp_path_factory.mktemp("export")
    for i, name in enumerate(PRESETS):
        keras.utils.set_random_seed(100 + i)
        model = zoo.load(name, weights=False)
        path = export.export_saved_model(model, base / name)
        out[name] = (model, path, tf.saved_model.load(str(path)))
    return out


def _conditions(model, n, tf=False):
    if "class_label" not in model.condition_names:
        return {}
    labels = (np.arange(n) * 3 % model.num_classes).astype("int32")
    if tf:
        import tensorflow

        return {"class_label": tensorflow.constant(labels)}
    return {"class_label": labels}


def _images(model, n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, model.num_levels, (n, *model.image_shape)).astype("uint8")


@pytest.mark.parametrize("name", PRESETS)
def test_signatures_agree_with_keras_model(exported, name):
    import tensorflow as tf

    model, path, loaded = exported[name]
    assert path.name == "1"
    sigs = loaded.signatures
    assert set(sigs) == {"serving_default", "sample", "sample_step", "complete"}
    for n in (1, 3):  # different batch sizes, one graph
        x = _images(model, n, seed=n)
        out = sigs["serving_default"](
            images=tf.constant(x), **_conditions(model, n, True)
        )
        assert set(out) == {"log_prob", "bits_per_dim"}
        ref = model.log_prob(x, **_conditions(model, n))
        np.testing.assert_allclose(out["log_prob"].numpy(), ref, rtol=1e-5)
        np.testing.assert_allclose(
            out["bits_per_dim"].numpy(),
            model.bits_per_dim(x, **_conditions(model, n)),
            rtol=1e-5,
        )

    # Seeds are taken mod 2**32, as `sampling.per_sample_seeds` does.
    seeds = np.array([7, -1, 2**32 + 5], "int64")
    for temperature in (1.0, 0.7):
        got = sigs["sample"](
            seed=tf.constant(seeds),
            temperature=tf.constant(temperature),
            **_conditions(model, 3, True),
        )["images"].numpy()
        ref = model.sample(
            3,
            seed=seeds,
            temperature=temperature,
            verbose=0,
            method="naive",
            **_conditions(model, 3),
        )
        assert got.dtype == np.uint8 and got.shape == (3, *model.image_shape)
        np.testing.assert_array_equal(got, ref)
    # A sample depends only on its own seed, not on the batch.
    one = sigs["sample"](
        seed=tf.constant(seeds[:1]),
        temperature=tf.constant(temperature),
        **_conditions(model, 1, True),
    )["images"].numpy()
    np.testing.assert_array_equal(one, ref[:1])

    # Completion (inpainting): known sub-pixels kept, the rest as model.sample.
    x = _images(model, 2, seed=9)
    known = np.zeros_like(x)
    known[:, : model.image_shape[0] // 2] = 1
    got = sigs["complete"](
        images=tf.constant(x),
        known=tf.constant(known),
        seed=tf.constant(seeds[:2]),
        temperature=tf.constant(1.0),
        **_conditions(model, 2, True),
    )["images"].numpy()
    ref = model.sample(
        2,
        seed=seeds[:2],
        conditioned_on=(x, known),
        verbose=0,
        method="naive",
        **_conditions(model, 2),
    )
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(got[known == 1], x[known == 1])


def _node_names(concrete):
    graph = concrete.graph.as_graph_def()
    names = {node.name for node in graph.node}
    for fn in graph.library.function:
        names.update(node.name for node in fn.node_def)
    return names


@pytest.mark.parametrize("name", PRESETS)
def test_exported_sample_uses_the_cached_sampler(exported, name):
    """The re-loaded `sample`/`complete` graphs run the cached sampler's loop,
    not one full forward pass per sub-pixel (whose convolutions would sit in
    the loop body)."""
    _, _, loaded = exported[name]
    for signature in ("sample", "complete"):
        names = _node_names(loaded.signatures[signature])
        assert any(n.startswith("cached_sampler/") for n in names), signature
    assert not any(
        n.startswith("cached_sampler/")
        for n in _node_names(loaded.signatures["sample_step"])
    )


def test_sample_step_loop_reproduces_sample(exported):
    """A client looping position = 0 ... H*W*C-1 gets `sample` exactly."""
    import tensorflow as tf

    model, _, loaded = exported["test_gated_pixelcnn_conditional"]
    step = loaded.signatures["sample_step"]
    seeds = tf.constant([11, 12], tf.int64)
    temperature = tf.constant(0.9)
    cond = _conditions(model, 2, True)
    canvas = tf.zeros((2, *model.image_shape), tf.uint8)
    for t in range(int(np.prod(model.image_shape))):
        out = step(
            images=canvas,
            position=tf.constant(t, tf.int32),
            seed=seeds,
            temperature=temperature,
            **cond,
        )
        canvas = out["images"]
        probs = out["probs"].numpy()
        assert probs.shape == (2, model.num_levels)
        np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    full = loaded.signatures["sample"](seed=seeds, temperature=temperature, **cond)
    np.testing.assert_array_equal(canvas.numpy(), full["images"].numpy())
    np.testing.assert_array_equal(
        canvas.numpy(),
        model.sample(
            2, seed=[11, 12], temperature=0.9, verbose=0, **_conditions(model, 2)
        ),
    )


def test_bad_requests_fail_with_readable_errors(exported):
    import tensorflow as tf

    model, _, loaded = exported["test_gated_pixelcnn_conditional"]
    sigs = loaded.signatures
    x = tf.constant(_images(model, 2))
    label = tf.constant([1, 2], tf.int32)
    seed = tf.constant([1, 2], tf.int64)
    one = tf.constant(1.0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="position"):
        sigs["sample_step"](
            images=x,
            position=tf.constant(64),
            seed=seed,
            temperature=one,
            class_label=label,
        )
    with pytest.raises(tf.errors.InvalidArgumentError, match="position"):
        sigs["sample_step"](
            images=x,
            position=tf.constant(-1),
            seed=seed,
            temperature=one,
            class_label=label,
        )
    with pytest.raises(tf.errors.InvalidArgumentError, match="class_label"):
        sigs["serving_default"](images=x, class_label=tf.constant([0, 10]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="class_label"):
        sigs["sample"](seed=seed, temperature=one, class_label=tf.constant([-1, 0]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="one entry per image"):
        sigs["serving_default"](images=x, class_label=tf.constant([1, 2, 3]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="temperature"):
        sigs["sample"](seed=seed, temperature=tf.constant(0.0), class_label=label)
    # Wrong dtype / rank: rejected by the signature itself.
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        sigs["serving_default"](images=tf.cast(x, tf.float32), class_label=label)
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        sigs["serving_default"](images=x[0], class_label=label)
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        sigs["serving_default"](images=x)  # missing class_label


def _graph_ops(path):
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((Path(path) / "saved_model.pb").read_bytes())
    ops = set()
    for meta in proto.meta_graphs:
        ops.update(node.op for node in meta.graph_def.node)
        for fn in meta.graph_def.library.function:
            ops.update(node.op for node in fn.node_def)
    return ops


@pytest.mark.parametrize("name", PRESETS)
def test_tf1_session_loader_runs_signatures_by_tensor_name(exported, name):
    """The path TF Serving takes: C++ LoadSavedModel ("serve" tag), tensors by name."""
    import tensorflow as tf
    from tensorflow.python.framework import op_def_registry

    model, path, loaded = exported[name]
    ops = _graph_ops(path)
    unknown = sorted(op for op in ops if op_def_registry.get(op) is None)
    assert not unknown, f"ops not registered in TensorFlow: {unknown}"
    assert not ops & {"PyFunc", "PyFuncStateless", "EagerPyFunc"}
    # XLA-only ops (Keras' TF slice_update) need a TF Serving built with XLA.
    assert not [op for op in ops if op.startswith("Xla")], sorted(ops)

    n = 2
    x = _images(model, n, seed=3)
    seeds = np.array([4, 5], "int64")
    cond = _conditions(model, n)
    feeds = {
        "serving_default": {"images": x, **cond},
        "sample": {"seed": seeds, "temperature": np.float32(1.0), **cond},
        "sample_step": {
            "images": x,
            "position": np.int32(5),
            "seed": seeds,
            "temperature": np.float32(1.0),
            **cond,
        },
        "complete": {
            "images": x,
            "known": (x % 2).astype("uint8"),
            "seed": seeds,
            "temperature": np.float32(1.0),
            **cond,
        },
    }
    outputs = {
        "serving_default": {"log_prob", "bits_per_dim"},
        "sample": {"images"},
        "sample_step": {"images", "probs"},
        "complete": {"images"},
    }
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], str(path))
        results = {}
        for sig_name, feed in feeds.items():
            sig = meta.signature_def[sig_name]
            assert sig.method_name == PREDICT
            assert set(sig.inputs) == set(feed)
            assert set(sig.outputs) == outputs[sig_name]
            assert (
                sig.inputs["seed" if sig_name == "sample" else "images"]
                .tensor_shape.dim[0]
                .size
                == -1
            )
            results[sig_name] = sess.run(
                {k: v.name for k, v in sig.outputs.items()},
                {sig.inputs[k].name: v for k, v in feed.items()},
            )
    np.testing.assert_allclose(
        results["serving_default"]["log_prob"], model.log_prob(x, **cond), rtol=1e-5
    )
    np.testing.assert_array_equal(
        results["sample"]["images"], model.sample(n, seed=seeds, verbose=0, **cond)
    )
    eager = loaded.signatures["sample_step"](
        **{k: tf.constant(v) for k, v in feeds["sample_step"].items()}
    )
    np.testing.assert_array_equal(
        results["sample_step"]["images"], eager["images"].numpy()
    )
    assert results["complete"]["images"].dtype == np.uint8


# ---- version / overwrite semantics ------------------------------------------
@pytest.fixture
def fake_save(monkeypatch):
    """Replaces tf.saved_model.save with a quick writer (semantics only)."""
    import tensorflow as tf

    from pixel_keras import export

    calls = []

    def save(obj, path, signatures=None, **kwargs):
        os.makedirs(path)
        Path(path, "saved_model.pb").write_text(f"export {len(calls)}")
        calls.append(sorted(signatures))

    def module(model):  # skips tracing the graphs
        return tf.Module(), dict.fromkeys(export.SIGNATURE_NAMES)

    monkeypatch.setattr(tf.saved_model, "save", save)
    monkeypatch.setattr(export, "_serving_module", module)
    return calls


@pytest.fixture(scope="module")
def tiny_model():
    from pixel_keras import zoo

    return zoo.load("test_pixelcnn", weights=False)


def test_versions_and_overwrite(tmp_path, tiny_model, fake_save):
    from pixel_keras import export

    base = tmp_path / "pixelcnn"
    assert export.export_saved_model(tiny_model, base) == base / "1"
    assert export.export_saved_model(tiny_model, base) == base / "2"
    assert export.export_saved_model(tiny_model, base, version=7) == base / "7"
    assert export.export_saved_model(tiny_model, base) == base / "8"
    assert export.versions(base) == [1, 2, 7, 8]
    assert fake_save[0] == ["complete", "sample", "sample_step", "serving_default"]

    with pytest.raises(FileExistsError, match="overwrite=True"):
        export.export_saved_model(tiny_model, base, version=2)
    assert (base / "2" / "saved_model.pb").read_text() == "export 1"
    path = export.export_saved_model(tiny_model, base, version=2, overwrite=True)
    assert (path / "saved_model.pb").read_text() == "export 4"
    # Only version directories are left, no temporary ones.
    assert sorted(p.name for p in base.iterdir()) == ["1", "2", "7", "8"]

    with pytest.raises(ValueError, match="version"):
        export.export_saved_model(tiny_model, base, version=0)
    with pytest.raises(ValueError, match="AutoregressiveImageModel"):
        export.export_saved_model(object(), base)


def test_failed_export_leaves_no_version(tmp_path, tiny_model, monkeypatch):
    import tensorflow as tf

    from pixel_keras import export

    base = tmp_path / "m"
    (base / "1").mkdir(parents=True)
    (base / "1" / "saved_model.pb").write_text("old")

    def broken(obj, path, signatures=None, **kwargs):
        os.makedirs(path)
        Path(path, "saved_model.pb").write_text("half")
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        export.export_saved_model(tiny_model, base)
    with pytest.raises(OSError, match="disk full"):
        export.export_saved_model(tiny_model, base, version=1, overwrite=True)
    assert sorted(p.name for p in base.iterdir()) == ["1"]
    assert (base / "1" / "saved_model.pb").read_text() == "old"


def test_export_cli(tmp_path, monkeypatch, fake_save, capsys):
    from pixel_keras.cli import main

    code = main(
        [
            "export",
            "--preset",
            "test_pixelcnn",
            "--out",
            str(tmp_path / "b"),
            "--weights",
            "none",
            "--version",
            "3",
        ]
    )
    assert code == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "b" / "3")


# ---- every signature checks full shapes and values, on both loaders ---------
_INPUTS = {
    "serving_default": ("images",),
    "sample": ("seed", "temperature"),
    "sample_step": ("images", "position", "seed", "temperature"),
    "complete": ("images", "known", "seed", "temperature"),
}


def _good_feed(model, n=1):
    x = np.zeros((n, *model.image_shape), "uint8")
    return {
        "images": x,
        "known": np.ones_like(x),
        "seed": np.arange(1, n + 1, dtype="int64"),
        "temperature": np.float32(1.0),
        "position": np.int32(0),
        **{k: v.astype("int32") for k, v in _conditions(model, n).items()},
    }


# (preset, signature, replaced inputs, the message: what must hold + received)
_BAD_REQUESTS = [
    # The examples: the right element count, the wrong shape.
    (
        "test_pixelcnn",
        "complete",
        {"known": np.ones((1, 24, 8, 1), "uint8")},
        r"`known` must have shape \[N, 8, 8, 3\], one entry per image \(N = the "
        r"batch size of `images`\)\. Received:\] \[known\.shape=\] \[1 24 8 1\] "
        r"\[images\.shape=\] \[1 8 8 3\]",
    ),
    (
        "test_pixelcnn",
        "sample_step",
        {"images": np.zeros((1, 4, 16, 3), "uint8")},
        r"`images` must have shape \[N, 8, 8, 3\]\. Received:\] "
        r"\[images\.shape=\] \[1 4 16 3\]",
    ),
    (
        "test_pixelcnn",
        "complete",
        {"known": np.ones((2, 8, 8, 3), "uint8")},
        r"`known` must have shape .* \[known\.shape=\] \[2 8 8 3\] "
        r"\[images\.shape=\] \[1 8 8 3\]",
    ),
    (
        "test_pixelcnn",
        "complete",
        {"seed": np.array([1, 2], "int64")},
        r"`seed` must have shape \[N\], one entry per image .* \[seed\.shape=\] \[2\]",
    ),
    (
        "test_pixelcnn",
        "sample_step",
        {"seed": np.array([[1]], "int64")},
        r"`seed` must have shape \[N\], .* \[seed\.shape=\] \[1 1\]",
    ),
    (
        "test_pixelcnn",
        "sample",
        {"seed": np.array([[1]], "int64")},
        r"`seed` must have shape \[N\]\. Received:\] \[seed\.shape=\] \[1 1\]",
    ),
    (
        "test_pixelcnn",
        "serving_default",
        {"images": np.zeros((1, 8, 8, 3, 1), "uint8")},
        r"`images` must have shape \[N, 8, 8, 3\]\. .* \[1 8 8 3 1\]",
    ),
    (
        "test_pixelcnn",
        "serving_default",
        {"images": np.zeros((8, 8, 3), "uint8")},
        r"`images` must have shape \[N, 8, 8, 3\]\. .* \[8 8 3\]",
    ),
    (
        "test_pixelcnn",
        "sample_step",
        {"position": np.int32([0])},
        r"`position` must be a scalar \(shape \[\]\)\. Received:\] "
        r"\[position\.shape=\] \[1\]",
    ),
    (
        "test_pixelcnn",
        "sample_step",
        {"temperature": np.float32([1, 1])},
        r"`temperature` must be a scalar \(shape \[\]\)\. .* \[2\]",
    ),
    (
        "test_pixelcnn",
        "complete",
        {"temperature": np.float32([[1]])},
        r"`temperature` must be a scalar \(shape \[\]\)\. .* \[1 1\]",
    ),
    # Empty batches.
    (
        "test_pixelcnn",
        "serving_default",
        {"images": np.zeros((0, 8, 8, 3), "uint8")},
        r"`images` must hold at least one image \(N >= 1\)\. Received:\] "
        r"\[images\.shape=\] \[0 8 8 3\]",
    ),
    (
        "test_pixelcnn",
        "sample",
        {"seed": np.zeros((0,), "int64")},
        r"`seed` must hold at least one seed \(N >= 1\)\. .* \[0\]",
    ),
    # Values.
    *(
        (
            "test_pixelcnn",
            signature,
            {"temperature": np.float32(value)},
            r"`temperature` must be a finite number > 0 .* Received:\] "
            rf"\[temperature=\] \[{shown}\]",
        )
        for signature, value, shown in (
            ("sample", np.inf, "inf"),
            ("sample", 0.0, "0"),
            ("sample", -1.0, "-1"),
            ("complete", np.inf, "inf"),
            ("complete", np.nan, "nan"),
            ("sample_step", np.inf, "inf"),
        )
    ),
    (
        "test_pixelcnn",
        "complete",
        {"known": np.full((1, 8, 8, 3), 2, "uint8")},
        r"`known` must hold only 0 \(draw\) and 1 \(keep\)\. Received:\] "
        r"\[known values in \[min, max\] =\] \[2\] \[2\]",
    ),
    (
        "test_pixelcnn",
        "sample_step",
        {"position": np.int32(192)},
        r"`position` must lie in \[0, 191\].* Received:\] \[position=\] \[192\]",
    ),
    # Conditions.
    (
        "test_gated_pixelcnn_conditional",
        "serving_default",
        {"class_label": np.array([1, 2], "int32")},
        r"`class_label` must have shape \[N\], one entry per image \(N = the batch "
        r"size of `images`\)\. Received:\] \[class_label\.shape=\] \[2\] "
        r"\[images\.shape=\] \[1 8 8 1\]",
    ),
    (
        "test_gated_pixelcnn_conditional",
        "complete",
        {"class_label": np.array(1, "int32")},
        r"`class_label` must have shape \[N\], .* \[class_label\.shape=\] \[\]",
    ),
    (
        "test_gated_pixelcnn_conditional",
        "sample",
        {"class_label": np.array([99], "int32")},
        r"`class_label` values must lie in \[0, 9\] \(num_classes=10\)\. Received:\] "
        r"\[class_label values in \[min, max\] =\] \[99\] \[99\]",
    ),
    (
        "test_gated_pixelcnn_conditional",
        "serving_default",
        {
            "images": np.zeros((0, 8, 8, 1), "uint8"),
            "class_label": np.zeros(0, "int32"),
        },
        r"`images` must hold at least one image \(N >= 1\)",
    ),
]


def _bad_request_feeds(model, signature, replaced):
    names = (*_INPUTS[signature], *model.condition_names)
    good = _good_feed(model)
    return names, [replaced.get(name, good[name]) for name in names]


@pytest.mark.parametrize("preset", ["test_pixelcnn", "test_gated_pixelcnn_conditional"])
def test_bad_requests_fail_in_the_tf1_session_loader(exported, preset):
    """TF Serving's path: the C++ session runs the graph on fed tensors whatever
    their shape (it does not compare them with the signature's shapes; the
    callable below skips the Python client's own check, as a C++ client
    does). Every bad input must fail in the graph, with its message."""
    import tensorflow as tf
    from tensorflow.core.protobuf import config_pb2

    model, path, _ = exported[preset]
    cases = [c for c in _BAD_REQUESTS if c[0] == preset]
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], str(path))

        def run(signature, names, values):
            sig = meta.signature_def[signature]
            options = config_pb2.CallableOptions()
            options.feed.extend(sig.inputs[name].name for name in names)
            options.fetch.extend(v.name for v in sig.outputs.values())
            return sess._make_callable_from_options(options)(*values)

        for _, signature, replaced, match in cases:
            names, values = _bad_request_feeds(model, signature, replaced)
            with pytest.raises(tf.errors.InvalidArgumentError, match=match):
                run(signature, names, values)
        # The good request passes the same checks.
        for signature in _INPUTS:
            run(signature, *_bad_request_feeds(model, signature, {}))


@pytest.mark.parametrize("preset", ["test_pixelcnn", "test_gated_pixelcnn_conditional"])
def test_bad_requests_fail_through_tf_saved_model_load(exported, preset):
    """The same through tf.saved_model.load, where the signature's declared
    shapes would let grappler fold checks written inline (e.g. "temperature
    is a scalar") away: they run in a function without static shapes."""
    import tensorflow as tf

    model, _, loaded = exported[preset]
    for _, signature, replaced, match in (c for c in _BAD_REQUESTS if c[0] == preset):
        names, values = _bad_request_feeds(model, signature, replaced)
        feeds = {n: tf.constant(v) for n, v in zip(names, values, strict=True)}
        try:
            loaded.signatures[signature](**feeds)
        except tf.errors.InvalidArgumentError as e:
            assert re.search(match, str(e)), (match, str(e))
        except TypeError as e:
            # TensorFlow's Python binding of a loaded signature sometimes
            # compares fed shapes with the declared TensorSpecs itself
            # (observed intermittently in long test sessions, never in the
            # C++ loader) and refuses the call before the graph runs, naming
            # both specs. That is a refusal too; the graph's own check is
            # what the TF1-session test above pins.
            declared = {
                n: loaded.signatures[signature].structured_input_signature[1][n]
                for n in names
            }
            assert "Can not cast TensorSpec" in str(e), str(e)
            assert any(
                not spec.shape.is_compatible_with(feeds[n].shape)
                for n, spec in declared.items()
            ), str(e)
        else:
            raise AssertionError(f"{signature} accepted {replaced}")
