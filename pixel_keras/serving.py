"""Clients for a pixel-keras model served by TensorFlow Serving.

`RestClient` speaks TF Serving's REST API (port 8501) with `urllib` only;
`GrpcClient` its gRPC PredictionService (port 8500) and needs
`tensorflow-serving-api`, imported lazily (install it without dependencies so
it does not pull the full `tensorflow` wheel:
`pip install --no-deps "tensorflow-serving-api==2.21.*"`, matching your TF).

Both expose the signatures written by `pixel_keras.export`:

```python
client = RestClient("http://localhost:8501", model_name="pixelcnn")
client.log_prob(images)                 # nats per image (serving_default)
client.sample(seed=[1, 2, 3])           # whole images, one request
client.complete(images, known, seed)    # inpainting
client.sample_stepwise(seed=[1, 2])     # H*W*C `sample_step` requests
```

`sample_stepwise` sends one request per sub-pixel (position 0 ... H*W*C-1,
raster order, channel fastest) and shows a progress bar; because the noise is
a function of (seed, position), it returns exactly what `sample` returns for
the same seeds. `on_step(position, images, probs)` sees each partial canvas
and the distribution the sub-pixel was drawn from.

The methods' arguments are the signatures' inputs, under the same names
(`images`, `known`, `position`, `seed`, `temperature`, `class_label`,
`condition_map`). `seed` is one int per sample, as a sequence (the
signatures' int64 `seed` [N]); unlike `model.sample(seed=...)` it is never
None or a single int. Until version 0.2 the methods also take it as
`seeds=` (the old name), with a `DeprecationWarning`.
"""

from __future__ import annotations

import json
import math
import numbers
import urllib.error
import urllib.request

import numpy as np

from pixel_keras._deprecation import renamed_argument
from pixel_keras._urls import URL_ERRORS, url_error_reason

__all__ = ["GrpcClient", "RestClient", "ServingConnectionError", "ServingError"]


class ServingError(RuntimeError):
    """A request the server rejected (bad input) or could not answer."""


class ServingConnectionError(ServingError, ConnectionError):
    """The server could not be reached, or did not answer in time.

    Both a `ServingError` and a `ConnectionError` (an `OSError`), so code
    that caught the underlying `urllib.error.URLError` as an `OSError` still
    catches it. The message names the URL or target and the request.
    """


def _check_client_args(model_name, version, timeout):
    if not isinstance(model_name, str) or not model_name:
        raise ValueError(
            "`model_name` must be the non-empty name of the model in TF "
            f"Serving's model config. Received: model_name={model_name!r}"
        )
    if version is not None and (
        isinstance(version, bool)
        or not isinstance(version, numbers.Integral)
        or version < 0
    ):
        raise ValueError(
            "`version` must be None (the latest) or an int >= 0. "
            f"Received: version={version!r}"
        )
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, numbers.Real)
        or not 0 < timeout < math.inf
    ):
        raise ValueError(
            "`timeout` must be a finite number of seconds > 0. "
            f"Received: timeout={timeout!r}"
        )


def _request_name(signature_name):
    return (
        "the model metadata"
        if signature_name is None
        else (f"signature {signature_name!r}")
    )


def _as_array(value, dtype, name, ndim=None):
    array = np.asarray(value)
    if ndim is not None and array.ndim != ndim:
        raise ValueError(
            f"`{name}` must have rank {ndim}. Received: {name}.shape={array.shape}"
        )
    if np.dtype(dtype).kind in "iu" and array.size and array.dtype.kind not in "iub":
        raise ValueError(
            f"`{name}` must be integers. Received: {name}.dtype={array.dtype}"
        )
    return array.astype(dtype)


class _Client:
    """The signature-level methods, on top of `predict` and `metadata`."""

    model_name: str

    def predict(self, signature_name: str, inputs: dict) -> dict:  # pragma: no cover
        raise NotImplementedError

    def metadata(self) -> dict:  # pragma: no cover
        raise NotImplementedError

    # ---- signature metadata ------------------------------------------------
    def signatures(self) -> dict:
        """{signature: {"inputs": {name: (dtype, shape)}, "outputs": {...}}}."""
        meta = self.metadata()
        defs = meta["metadata"]["signature_def"]["signature_def"]
        out = {}
        for sig_name, sig in defs.items():
            if sig_name.startswith("__"):  # __saved_model_init_op
                continue
            out[sig_name] = {
                side: {
                    name: (
                        info.get("dtype"),
                        tuple(
                            int(d.get("size", -1))
                            for d in info.get("tensor_shape", {}).get("dim", [])
                        ),
                    )
                    for name, info in sig.get(side, {}).items()
                }
                for side in ("inputs", "outputs")
            }
        return out

    def image_shape(self) -> tuple:
        """(H, W, C) of the served model, from the `sample_step` signature."""
        if getattr(self, "_image_shape", None) is None:
            _, shape = self.signatures()["sample_step"]["inputs"]["images"]
            self._image_shape = tuple(shape[1:])
        return self._image_shape

    # ---- signatures -----------------------------------------------------
    @staticmethod
    def _conditions(class_label, condition_map):
        out = {}
        if class_label is not None:
            out["class_label"] = _as_array(class_label, "int32", "class_label", 1)
        if condition_map is not None:
            out["condition_map"] = np.asarray(condition_map, "float32")
        return out

    def log_prob(self, images, *, class_label=None, condition_map=None) -> dict:
        """`serving_default`: {"log_prob": nats [N], "bits_per_dim": [N]}."""
        inputs = {"images": _as_array(images, "uint8", "images", 4)}
        inputs.update(self._conditions(class_label, condition_map))
        out = self.predict("serving_default", inputs)
        return {k: np.asarray(v, "float32") for k, v in out.items()}

    @renamed_argument("seeds", "seed")
    def sample(
        self, seed, temperature=1.0, *, class_label=None, condition_map=None
    ) -> np.ndarray:
        """`sample`: uint8 images `[len(seed), H, W, C]`, drawn in one request."""
        inputs = {
            "seed": _as_array(seed, "int64", "seed", 1),
            "temperature": np.float32(temperature),
        }
        inputs.update(self._conditions(class_label, condition_map))
        return np.asarray(self.predict("sample", inputs)["images"], "uint8")

    @renamed_argument("seeds", "seed")
    def complete(
        self,
        images,
        known,
        seed,
        temperature=1.0,
        *,
        class_label=None,
        condition_map=None,
    ) -> np.ndarray:
        """`complete`: fills the sub-pixels where `known` is 0, keeps the rest."""
        inputs = {
            "images": _as_array(images, "uint8", "images", 4),
            "known": _as_array(np.asarray(known) != 0, "uint8", "known", 4),
            "seed": _as_array(seed, "int64", "seed", 1),
            "temperature": np.float32(temperature),
        }
        inputs.update(self._conditions(class_label, condition_map))
        return np.asarray(self.predict("complete", inputs)["images"], "uint8")

    @renamed_argument("seeds", "seed")
    def sample_step(
        self,
        images,
        position,
        seed,
        temperature=1.0,
        *,
        class_label=None,
        condition_map=None,
    ):
        """`sample_step`: returns (canvas with `position` drawn, probs [N, K])."""
        inputs = {
            "images": _as_array(images, "uint8", "images", 4),
            "position": np.int32(position),
            "seed": _as_array(seed, "int64", "seed", 1),
            "temperature": np.float32(temperature),
        }
        inputs.update(self._conditions(class_label, condition_map))
        out = self.predict("sample_step", inputs)
        return np.asarray(out["images"], "uint8"), np.asarray(out["probs"], "float32")

    @renamed_argument("seeds", "seed")
    def sample_stepwise(
        self,
        seed,
        temperature=1.0,
        *,
        class_label=None,
        condition_map=None,
        image_shape=None,
        verbose=1,
        on_step=None,
    ) -> np.ndarray:
        """Draws images with one `sample_step` request per sub-pixel.

        Args:
            seed: one int per sample (a sequence).
            temperature: float > 0.
            class_label, condition_map: conditional models only.
            image_shape: (H, W, C); read from the server's metadata if None.
            verbose: 1 shows a progress bar (keras.utils.Progbar), 0 is silent.
            on_step: optional callable `(position, images, probs)`.

        Returns:
            uint8 images, equal to `sample(seed, temperature)`.
        """
        seed = _as_array(seed, "int64", "seed", 1)
        shape = tuple(image_shape or self.image_shape())
        canvas = np.zeros((len(seed), *shape), "uint8")
        steps = math.prod(shape)
        bar = None
        if verbose:
            import keras

            bar = keras.utils.Progbar(steps, unit_name="sub-pixel")
        for position in range(steps):
            canvas, probs = self.sample_step(
                canvas,
                position,
                seed,
                temperature,
                class_label=class_label,
                condition_map=condition_map,
            )
            if on_step is not None:
                on_step(position, canvas, probs)
            if bar is not None:
                bar.update(position + 1)
        return canvas


class RestClient(_Client):
    """TF Serving REST client (`/v1/models/NAME[:predict|/metadata]`).

    Requests use the columnar `inputs` format; the server answers
    `{"outputs": {name: value}}`, or `{"outputs": value}` when the signature
    has one output (TF Serving drops the name then), or `{"error": message}`.

    Args:
        url: server root, e.g. "http://localhost:8501".
        model_name: the `name` in TF Serving's model config.
        version: int, or None for the latest version.
        timeout: seconds per request.
    """

    def __init__(
        self, url="http://localhost:8501", model_name="pixel", version=None, timeout=60
    ):
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(
                "`url` must be the http:// or https:// root of TF Serving's "
                f"REST API, e.g. 'http://localhost:8501'. Received: url={url!r}"
            )
        _check_client_args(model_name, version, timeout)
        self.url = url.rstrip("/")
        self.model_name = model_name
        self.version = version
        self.timeout = timeout
        self._outputs = {}

    def _model_url(self):
        url = f"{self.url}/v1/models/{self.model_name}"
        if self.version is not None:
            url += f"/versions/{int(self.version)}"
        return url

    def _request(self, url, body=None):
        data = None if body is None else json.dumps(body).encode()
        what = _request_name(None if body is None else body.get("signature_name"))
        request = urllib.request.Request(
            url, data=data, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                text = response.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            text = e.read().decode(errors="replace")
            try:
                text = json.loads(text).get("error", text)
            except (ValueError, AttributeError):
                pass
            raise ServingError(f"{url} ({what}): HTTP {e.code}: {text}") from None
        except URL_ERRORS as e:
            reason = url_error_reason(e, timeout=self.timeout)
            raise ServingConnectionError(
                f"Could not reach TF Serving at {url} for {what} of model "
                f"{self.model_name!r}: {reason}. A TF Serving REST endpoint must "
                "be listening at `url` (its REST root, e.g. "
                f"'http://localhost:8501'). Received: url={self.url!r}"
            ) from e
        try:
            return json.loads(text)
        except ValueError as e:
            raise ServingError(
                f"{url} ({what}) must answer with TF Serving's JSON, but the "
                f"reply is not JSON ({e}). Received: {text[:80]!r}"
            ) from None

    def metadata(self) -> dict:
        return self._request(f"{self._model_url()}/metadata")

    def predict(self, signature_name, inputs):
        body = {
            "signature_name": signature_name,
            "inputs": {k: np.asarray(v).tolist() for k, v in inputs.items()},
        }
        url = f"{self._model_url()}:predict"
        reply = self._request(url, body)
        if "error" in reply:
            raise ServingError(
                f"{url} ({_request_name(signature_name)}): {reply['error']}"
            )
        outputs = reply["outputs"]
        if not isinstance(outputs, dict):  # single-output signature
            outputs = {"images": outputs}
        return {k: np.asarray(v) for k, v in outputs.items()}


class GrpcClient(_Client):
    """TF Serving gRPC client (PredictionService.Predict / GetModelMetadata).

    Args:
        target: "host:port", e.g. "localhost:8500".
        model_name: the `name` in TF Serving's model config.
        version: int, or None for the latest version.
        timeout: seconds per call.
    """

    def __init__(
        self, target="localhost:8500", model_name="pixel", version=None, timeout=60
    ):
        if not isinstance(target, str) or not target or "://" in target:
            raise ValueError(
                "`target` must be the host:port of TF Serving's gRPC API, e.g. "
                f"'localhost:8500'. Received: target={target!r}"
            )
        _check_client_args(model_name, version, timeout)
        try:
            import grpc
            from tensorflow_serving.apis import prediction_service_pb2_grpc
        except ImportError as e:  # pragma: no cover - depends on install
            raise ImportError(
                "GrpcClient needs grpcio and tensorflow-serving-api. Install the "
                "latter without dependencies (it would pull the full `tensorflow` "
                'wheel): pip install --no-deps "tensorflow-serving-api==2.21.*"'
            ) from e
        self.target = target
        self.model_name = model_name
        self.version = version
        self.timeout = timeout
        self._channel = grpc.insecure_channel(target)
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _spec(self, spec):
        spec.name = self.model_name
        if self.version is not None:
            spec.version.value = int(self.version)

    def _call(self, method, request, signature_name=None):
        import grpc

        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as e:
            code = e.code()
            where = (
                f"TF Serving at {self.target} ({_request_name(signature_name)} "
                f"of model {self.model_name!r})"
            )
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise ServingConnectionError(
                    f"{where} did not answer: {code.name}: {e.details()} "
                    f"(timeout={self.timeout} s). A TF Serving gRPC endpoint "
                    "must be listening at `target` (host:port, e.g. "
                    "'localhost:8500') and answer within `timeout`. "
                    f"Received: target={self.target!r}"
                ) from None
            raise ServingError(f"{where}: {code.name}: {e.details()}") from None

    def metadata(self) -> dict:
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest()
        self._spec(request.model_spec)
        request.metadata_field.append("signature_def")
        reply = self._call(self._stub.GetModelMetadata, request)
        defs = get_model_metadata_pb2.SignatureDefMap()
        reply.metadata["signature_def"].Unpack(defs)
        # The same JSON layout as the REST /metadata answer.
        return {
            "model_spec": json_format.MessageToDict(
                reply.model_spec, preserving_proto_field_name=True
            ),
            "metadata": {
                "signature_def": json_format.MessageToDict(
                    defs, preserving_proto_field_name=True
                )
            },
        }

    def predict(self, signature_name, inputs):
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec)
        request.model_spec.signature_name = signature_name
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(np.asarray(value)))
        reply = self._call(self._stub.Predict, request, signature_name)
        return {k: tf.make_ndarray(v) for k, v in reply.outputs.items()}
