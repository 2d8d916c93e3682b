"""Protocol tests for `pixel_keras.serving` (the TF Serving clients).

There is no TF Serving binary here, so both clients talk to in-process
stand-ins on 127.0.0.1 (ephemeral ports; no other address is contacted) that
execute the exported SavedModel:

- gRPC: a `grpcio` server with a `PredictionServiceServicer` from
  `tensorflow_serving.apis` (Predict, GetModelMetadata), i.e. TF Serving's
  own protos and service definition.
- REST: an `http.server` speaking TF Serving's REST JSON:
  `POST /v1/models/NAME:predict` with `{"signature_name", "inputs"}` ->
  `{"outputs": {...}}` (the bare value for one output), `{"error": ...}` with
  HTTP 400 on bad input; `GET /v1/models/NAME/metadata`.

They check the wire format and the client logic, not TF Serving itself.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.tf_only

PRESET = "test_gated_pixelcnn_conditional"
MODEL = "pixel"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(keras model, version dir, loaded SavedModel, SignatureDefs)."""
    import keras
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    from pixel_keras import export, zoo

    keras.utils.set_random_seed(7)
    model = zoo.load(PRESET, weights=False)
    path = export.export_saved_model(model, tmp_path_factory.mktemp("serve") / MODEL)
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((Path(path) / "saved_model.pb").read_bytes())
    defs = proto.meta_graphs[0].signature_def
    return model, path, tf.saved_model.load(str(path)), defs


def _run(loaded, signature_name, arrays):
    """Runs a signature on NumPy inputs, casting to the signature's dtypes."""
    import tensorflow as tf

    fn = loaded.signatures[signature_name]
    specs = fn.structured_input_signature[1]
    unknown = set(arrays) - set(specs)
    if unknown:
        raise ValueError(f"unknown input(s) {sorted(unknown)} for {signature_name}")
    args = {
        k: tf.constant(np.asarray(v).astype(specs[k].dtype.as_numpy_dtype))
        for k, v in arrays.items()
    }
    return {k: v.numpy() for k, v in fn(**args).items()}


def _errors():
    import tensorflow as tf

    return (tf.errors.InvalidArgumentError, ValueError, TypeError, KeyError)


# ---- REST stand-in -----------------------------------------------------------
@pytest.fixture(scope="module")
def rest_url(served):
    from google.protobuf import json_format
    from tensorflow_serving.apis import get_model_metadata_pb2

    _, path, loaded, defs = served
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    for name, sig in defs.items():
        sig_map.signature_def[name].CopyFrom(sig)
    metadata = {
        "model_spec": {"name": MODEL, "version": path.name, "signature_name": ""},
        "metadata": {
            "signature_def": json_format.MessageToDict(
                sig_map, preserving_proto_field_name=True
            )
        },
    }

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == f"/v1/models/{MODEL}/metadata":
                return self._reply(200, metadata)
            return self._reply(404, {"error": f"no route {self.path}"})

        def do_POST(self):
            if self.path != f"/v1/models/{MODEL}:predict":
                return self._reply(404, {"error": f"no route {self.path}"})
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            try:
                out = _run(
                    loaded,
                    body.get("signature_name", "serving_default"),
                    body["inputs"],
                )
            except _errors() as e:
                return self._reply(400, {"error": getattr(e, "message", str(e))})
            outputs = {k: v.tolist() for k, v in out.items()}
            if len(outputs) == 1:  # TF Serving drops the name of a single output
                outputs = next(iter(outputs.values()))
            return self._reply(200, {"outputs": outputs})

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# ---- gRPC stand-in -------------------------------------------------------------
@pytest.fixture(scope="module")
def grpc_target(served):
    grpc = pytest.importorskip("grpc")
    apis = pytest.importorskip(
        "tensorflow_serving.apis.prediction_service_pb2_grpc",
        reason="tensorflow-serving-api is not installed "
        '(pip install --no-deps "tensorflow-serving-api==2.21.*")',
    )
    from concurrent import futures

    import tensorflow as tf
    from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2

    _, path, loaded, defs = served

    class Servicer(apis.PredictionServiceServicer):
        def Predict(self, request, context):
            if request.model_spec.name != MODEL:
                context.abort(
                    grpc.StatusCode.NOT_FOUND, f"no model {request.model_spec.name}"
                )
            arrays = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            try:
                out = _run(
                    loaded,
                    request.model_spec.signature_name or "serving_default",
                    arrays,
                )
            except _errors() as e:
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, getattr(e, "message", str(e))
                )
            reply = predict_pb2.PredictResponse()
            reply.model_spec.name = MODEL
            reply.model_spec.version.value = int(path.name)
            for k, v in out.items():
                reply.outputs[k].CopyFrom(tf.make_tensor_proto(v))
            return reply

        def GetModelMetadata(self, request, context):
            sig_map = get_model_metadata_pb2.SignatureDefMap()
            for name, sig in defs.items():
                sig_map.signature_def[name].CopyFrom(sig)
            reply = get_model_metadata_pb2.GetModelMetadataResponse()
            reply.model_spec.name = MODEL
            reply.model_spec.version.value = int(path.name)
            reply.metadata["signature_def"].Pack(sig_map)
            return reply

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    apis.add_PredictionServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


@pytest.fixture(params=["rest", "grpc"])
def client(request, served):
    from pixel_keras import serving

    if request.param == "rest":
        yield serving.RestClient(request.getfixturevalue("rest_url"), MODEL)
    else:
        with serving.GrpcClient(request.getfixturevalue("grpc_target"), MODEL) as c:
            yield c


def test_client_signatures_match_keras_model(client, served):
    model = served[0]
    sigs = client.signatures()
    assert set(sigs) == {"serving_default", "sample", "sample_step", "complete"}
    assert sigs["sample"]["inputs"]["seed"] == ("DT_INT64", (-1,))
    assert client.image_shape() == tuple(model.image_shape)

    labels = np.array([1, 4, 9], "int32")
    images = np.random.default_rng(0).integers(0, 256, (3, *model.image_shape), "uint8")
    out = client.log_prob(images, class_label=labels)
    np.testing.assert_allclose(
        out["log_prob"], model.log_prob(images, class_label=labels), rtol=1e-5
    )
    np.testing.assert_allclose(
        out["bits_per_dim"], model.bits_per_dim(images, class_label=labels), rtol=1e-5
    )

    seeds = [3, 2**40 + 1, -5]
    got = client.sample(seeds, 0.8, class_label=labels)
    assert got.dtype == np.uint8 and got.shape == (3, *model.image_shape)
    ref = model.sample(3, seed=seeds, temperature=0.8, class_label=labels, verbose=0)
    np.testing.assert_array_equal(got, ref)

    known = np.zeros_like(images)
    known[:, :3] = 1
    done = client.complete(images, known, seeds, class_label=labels)
    np.testing.assert_array_equal(done[known == 1], images[known == 1])
    np.testing.assert_array_equal(
        done,
        model.sample(
            3, seed=seeds, conditioned_on=(images, known), class_label=labels, verbose=0
        ),
    )


def test_stepwise_sampling_equals_sample(client, served):
    model = served[0]
    seeds, labels = [21, 22], np.array([0, 5], "int32")
    seen = []
    out = client.sample_stepwise(
        seeds,
        0.9,
        class_label=labels,
        verbose=0,
        on_step=lambda t, images, probs: seen.append((t, probs.shape)),
    )
    assert seen[0] == (0, (2, model.num_levels)) and len(seen) == 64
    np.testing.assert_array_equal(out, client.sample(seeds, 0.9, class_label=labels))


def test_seeds_is_the_deprecated_name_of_seed(client, served):
    """The clients' methods took `seeds=` before they took `seed=`."""
    model = served[0]
    labels = np.array([2, 7], "int32")
    expected = client.sample(seed=[4, 5], class_label=labels)
    with pytest.warns(DeprecationWarning, match="`seeds` is deprecated.*`seed`"):
        got = client.sample(seeds=[4, 5], class_label=labels)
    np.testing.assert_array_equal(got, expected)
    canvas = np.zeros((2, *model.image_shape), "uint8")
    with pytest.warns(DeprecationWarning, match="`seeds`"):
        got, _ = client.sample_step(canvas, 0, seeds=[4, 5], class_label=labels)
    np.testing.assert_array_equal(
        got, client.sample_step(canvas, 0, seed=[4, 5], class_label=labels)[0]
    )
    with pytest.raises(TypeError, match="pass only `seed`"):
        client.complete(canvas, canvas, seed=[1, 2], seeds=[1, 2])


def test_bad_requests_raise_serving_errors(client, served):
    from pixel_keras import serving

    model = served[0]
    canvas = np.zeros((2, *model.image_shape), "uint8")
    with pytest.raises(serving.ServingError, match="position"):
        client.sample_step(canvas, 64, [1, 2], class_label=[0, 0])
    with pytest.raises(serving.ServingError, match="class_label"):
        client.sample([1, 2], class_label=[0, 10])
    with pytest.raises(ValueError, match="rank 4"):
        client.log_prob(canvas[0], class_label=[0])


def test_serve_sample_cli_writes_png(rest_url, tmp_path, capsys):
    import argparse

    from pixel_keras.cli import serve

    parser = argparse.ArgumentParser()
    serve.add_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "grid.png"
    args = parser.parse_args(
        [
            "serve-sample",
            str(out),
            "--url",
            rest_url,
            "--model-name",
            MODEL,
            "--num-samples",
            "2",
            "--class-label",
            "3",
        ]
    )
    assert args.handler(args) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- errors that name the server (issue 11) ----------------------------------
def _closed_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_rest_connection_refused_names_url_and_signature():
    from pixel_keras import serving

    url = f"http://127.0.0.1:{_closed_port()}"
    client = serving.RestClient(url, MODEL, timeout=5)
    with pytest.raises(serving.ServingConnectionError) as info:
        client.sample([1, 2])
    message = str(info.value)
    assert f"{url}/v1/models/{MODEL}:predict" in message
    assert "signature 'sample'" in message and f"model '{MODEL}'" in message
    assert message.endswith(f"Received: url={url!r}")
    # Still an OSError (what urllib's URLError was) and a ServingError.
    assert isinstance(info.value, ConnectionError)
    assert isinstance(info.value, serving.ServingError)
    with pytest.raises(serving.ServingConnectionError, match="for the model metadata"):
        client.signatures()


def test_rest_timeout_names_url_and_signature():
    import socket

    from pixel_keras import serving

    with socket.socket() as listener:  # Accepts connections, never answers.
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        client = serving.RestClient(url, MODEL, timeout=0.3)
        with pytest.raises(
            serving.ServingConnectionError,
            match=rf"{url}/v1/models/{MODEL}:predict for signature 'serving_default'"
            r".*no answer within timeout=0\.3 s",
        ):
            client.log_prob(np.zeros((1, 8, 8, 1), "uint8"))


def test_rest_server_errors_name_url_and_signature(rest_url, served):
    from pixel_keras import serving

    client = serving.RestClient(rest_url, MODEL)
    with pytest.raises(
        serving.ServingError,
        match=rf"(?s){rest_url}/v1/models/{MODEL}:predict "
        r"\(signature 'sample'\): HTTP 400: .*class_label",
    ):
        client.sample([1, 2], class_label=[0, 10])
    missing = serving.RestClient(rest_url, "no_such_model")
    with pytest.raises(serving.ServingError, match=r"\(the model metadata\): HTTP 404"):
        missing.signatures()


def test_grpc_connection_refused_names_target_and_signature():
    pytest.importorskip("grpc")
    pytest.importorskip("tensorflow_serving.apis.prediction_service_pb2_grpc")
    from pixel_keras import serving

    target = f"127.0.0.1:{_closed_port()}"
    with serving.GrpcClient(target, MODEL, timeout=5) as client:
        with pytest.raises(serving.ServingConnectionError) as info:
            client.sample([1, 2])
        message = str(info.value)
        assert (
            f"TF Serving at {target} (signature 'sample' of model '{MODEL}')" in message
        )
        assert "UNAVAILABLE" in message
        assert message.endswith(f"Received: target={target!r}")
        with pytest.raises(serving.ServingConnectionError, match="the model metadata"):
            client.signatures()


def test_grpc_server_errors_name_target_and_signature(grpc_target, served):
    from pixel_keras import serving

    with serving.GrpcClient(grpc_target, "no_such_model") as client:
        with pytest.raises(
            serving.ServingError,
            match=rf"TF Serving at {grpc_target} \(signature 'sample' of model "
            r"'no_such_model'\): NOT_FOUND",
        ):
            client.sample([1])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"url": "localhost:8501"},
            r"`url` must be the http:// or https:// root.*"
            r"Received: url='localhost:8501'",
        ),
        ({"url": None}, r"Received: url=None"),
        ({"model_name": ""}, r"`model_name` must be .*Received: model_name=''"),
        ({"version": "2"}, r"`version` must be None .*Received: version='2'"),
        ({"version": -1}, r"Received: version=-1"),
        ({"timeout": 0}, r"`timeout` must be a finite number .*Received: timeout=0"),
        ({"timeout": float("inf")}, r"Received: timeout=inf"),
    ],
)
def test_rest_client_arguments(kwargs, match):
    from pixel_keras import serving

    with pytest.raises(ValueError, match=match):
        serving.RestClient(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"target": "http://localhost:8500"},
            r"`target` must be the host:port.*"
            r"Received: target='http://localhost:8500'",
        ),
        ({"target": ""}, r"Received: target=''"),
        ({"timeout": -1}, r"Received: timeout=-1"),
    ],
)
def test_grpc_client_arguments(kwargs, match):
    pytest.importorskip("grpc")
    from pixel_keras import serving

    with pytest.raises(ValueError, match=match):
        serving.GrpcClient(**kwargs)


def test_url_error_reasons():
    """One rule for urllib failures (serving's requests, the zoo's downloads)."""
    import urllib.error

    from pixel_keras._urls import URL_ERRORS, url_error_reason

    refused = urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
    assert isinstance(refused, URL_ERRORS)
    assert str(url_error_reason(refused)) == "[Errno 111] Connection refused"
    timed_out = urllib.error.URLError(TimeoutError("timed out"))
    assert url_error_reason(timed_out, timeout=3) == (
        "no answer within timeout=3 s (timed out)"
    )
    assert str(url_error_reason(timed_out)) == "timed out"
    missing = urllib.error.HTTPError("http://x/w", 404, "Not Found", {}, None)
    assert str(url_error_reason(missing)) == "HTTP Error 404: Not Found"
