"""Fixtures for the serving conformance suite: test SavedModels, one server per backend, clients.

The same tests run against every backend: `local`, and `remote` (models added to a server that
runs already); `docker` and `binary` skip unless a Docker engine answers or
tensorflow_model_server is on PATH.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from scalelab import serving

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
POLL_SECONDS = 1
WAIT_SECONDS = 20  # upper bound for any file-system change to show in a model's status


@dataclass
class Models:
    """Where the test SavedModels live; `staging` holds complete versions to move in later."""

    root: Path
    staging: Path
    config_file: Path
    config_text: str

    def base(self, name: str) -> Path:
        """The base path of a served model."""
        return self.root / name

    def move_in(self, staged: str, model: str, version: int) -> Path:
        """Copy a staged version next to the model, then rename it into place (atomic)."""
        target = self.base(model) / str(version)
        temporary = self.base(model).parent / f".incoming-{model}-{version}"
        shutil.copytree(self.staging / staged, temporary)
        temporary.rename(target)
        return target


def _quiet_tensorflow() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import tensorflow as tf
    return tf


def _build_models(root: Path, staging: Path) -> None:
    tf = _quiet_tensorflow()

    class HalfPlus(tf.Module):
        """y = 0.5 x + add, plus small signatures for each JSON type."""

        def __init__(self, add: float) -> None:
            super().__init__()
            self.add = tf.Variable(add)

        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32)])
        def predict(self, x: Any) -> dict:
            return {"y": x * 0.5 + self.add}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)] * 2)
        def multi(self, a: Any, b: Any) -> dict:
            return {"sum": a + b, "product": a * b}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int64)])
        def counts(self, n: Any) -> dict:
            return {"doubled": n * 2}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def text(self, text: Any) -> dict:
            return {"length": tf.strings.length(text), "echo_bytes": text}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.bool)])
        def negate(self, flag: Any) -> dict:
            return {"negated": tf.logical_not(flag)}

    def save(path: Path, add: float) -> None:
        module = HalfPlus(add)
        signatures = {
            "serving_default": module.predict,
            "multi": module.multi,
            "counts": module.counts,
            "text": module.text,
            "negate": module.negate,
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tf.saved_model.save(module, str(path), signatures=signatures)

    for model in ("half_plus_two", "swap", "halfcopy", "corrupt"):
        save(root / model / "1", 2.0)
    for version in (1, 2, 3):
        save(root / "versioned" / str(version), 1.0 + version)
    save(staging / "v2", 3.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import keras

        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
        model.export(str(root / "keras" / "1"), verbose=False)
    _save_keras_in_module(tf, keras, staging / "keras_in_module")
    _save_tf1_style(tf, staging / "tf1")
    corrupt = staging / "corrupt"
    (corrupt / "variables").mkdir(parents=True)
    (corrupt / "saved_model.pb").write_bytes(b"this is not a SavedModel")
    (corrupt / "variables" / "variables.index").write_bytes(b"garbage")


def _save_keras_in_module(tf: Any, keras: Any, path: Path) -> None:
    """Chapter 1's trap: a Keras 3 model inside a tf.Module, saved with tf.saved_model.save.
    tf.saved_model.load serves it; TF Serving's loader cannot find its variables."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])

    class Wrapper(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
        def serve(self, x: Any) -> dict:
            return {"scores": self.model(x)}

    wrapper = Wrapper()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tf.saved_model.save(wrapper, str(path / "1"), signatures={"serving_default": wrapper.serve})


def _save_tf1_style(tf: Any, path: Path) -> None:
    """A TF1 SavedModel (graph, Session, SavedModelBuilder): y = 0.5 x + 2."""
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        x = tf.compat.v1.placeholder(tf.float32, [None, 1], name="x")
        weight = tf.compat.v1.get_variable("weight", initializer=0.5)
        y = tf.identity(x * weight + 2.0, name="y")
        session.run(tf.compat.v1.global_variables_initializer())
        builder = tf.compat.v1.saved_model.Builder(str(path / "1"))
        signature = tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"y": y})
        builder.add_meta_graph_and_variables(
            session, ["serve"], signature_def_map={"serving_default": signature}
        )
        builder.save()


def _config_text(root: Path) -> str:
    entries = []
    for name in ("half_plus_two", "swap", "halfcopy", "corrupt", "keras"):
        entries.append(
            f'config {{ name: "{name}" base_path: "{root / name}" model_platform: "tensorflow" }}'
        )
    entries.append(
        f'config {{ name: "versioned" base_path: "{root / "versioned"}" '
        'model_platform: "tensorflow" '
        "model_version_policy { specific { versions: 1 versions: 2 } } "
        'version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 2 } }'
    )
    return "model_config_list {\n  " + "\n  ".join(entries) + "\n}\n"


def _models_in(top: Path) -> Models:
    root, staging = top / "models", top / "staging"
    config_text = _config_text(root)
    config_file = top / "models.config"
    config_file.write_text(config_text)
    return Models(root, staging, config_file, config_text)


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    """SavedModels built once per session (tf.Module and Keras), plus a model config file.

    Tests must not change them: a test that adds or breaks versions uses `served_models`.
    """
    top = tmp_path_factory.mktemp("serving")
    _build_models(top / "models", top / "staging")
    return _models_in(top)


@pytest.fixture(scope="session")
def served_models(backend: str, models: Models, tmp_path_factory: pytest.TempPathFactory) -> Models:
    """A copy of `models` for one backend's server: what one backend's tests do to its
    versions never reaches another backend's server."""
    top = tmp_path_factory.mktemp(f"serving-{backend}")
    shutil.copytree(models.root, top / "models", symlinks=True)
    shutil.copytree(models.staging, top / "staging", symlinks=True)
    return _models_in(top)


def backend_available(backend: str) -> str | None:
    """None when `backend` can run here, else why not (checked once per session). The remote
    backend always can: the suite starts the running server it attaches to (remote_host)."""
    if backend not in _AVAILABILITY:
        check = serving.BACKENDS[backend].unavailable
        _AVAILABILITY[backend] = None if backend == "remote" else check()
    return _AVAILABILITY[backend]


_AVAILABILITY: dict[str, str | None] = {}


# Report a failed load at once: TF Serving (and the stand-in) retry 5 times, a minute apart.
NO_RETRIES = ["--max_num_load_retries=0"]


# The flags docker-compose.yml's TF Serving runs with (plus no retries, as above).
REMOTE_FLAGS = [
    "--file_system_poll_wait_seconds=1",
    "--allow_version_labels_for_unavailable_models",
    *NO_RETRIES,
]


@contextlib.contextmanager
def remote_env(host: serving.Server, root: Path) -> Iterator[None]:
    """Point the remote backend at `host` (sharing `root`) while the block runs."""
    from scalelab.serving import remote

    values = {
        remote.REST_ENV: host.rest_url,
        remote.GRPC_ENV: host.grpc_target,
        remote.ROOT_ENV: str(root),
        remote.FLAGS_ENV: " ".join(REMOTE_FLAGS),
    }
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def remote_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[serving.Server, Path]]:
    """A running server with no models, as docker compose starts TF Serving, and the folder it
    shares with us: a container where a Docker engine answers, else the local stand-in."""
    root = tmp_path_factory.getbasetemp()
    config = root / "remote-host.config"
    config.write_text("model_config_list {}\n")
    backend = "docker" if backend_available("docker") is None else "local"
    with serving.start(model_config_file=config, backend=backend, extra_flags=REMOTE_FLAGS) as host:
        yield host, root


@pytest.fixture(
    scope="session",
    params=[
        pytest.param(name, marks=[pytest.mark.docker] if name == "docker" else [])
        for name in serving.BACKENDS
    ],
)
def backend(request: pytest.FixtureRequest) -> str:
    """Each backend that can run here (the others skip, saying why)."""
    reason = backend_available(request.param)
    if reason:
        pytest.skip(f"{request.param} backend: {reason}")
    return request.param


@pytest.fixture(scope="session")
def server(
    backend: str, served_models: Models, request: pytest.FixtureRequest
) -> Iterator[serving.Server]:
    """One server per backend for the whole session, serving every test model (the remote
    backend adds them to a server that runs already)."""
    flags = [
        f"--file_system_poll_wait_seconds={POLL_SECONDS}",
        "--allow_version_labels_for_unavailable_models",
        *NO_RETRIES,
    ]
    start = functools.partial(
        serving.start,
        model_config_file=served_models.config_file,
        backend=backend,
        extra_flags=flags,
        timeout=120,
    )
    if backend == "remote":
        host, root = request.getfixturevalue("remote_host")
        with remote_env(host, root):
            running = start()
    else:
        running = start()
    with running:
        yield running


@pytest.fixture(scope="session")
def http() -> Iterator[requests.Session]:
    """A keep-alive HTTP session."""
    with requests.Session() as session:
        yield session


@pytest.fixture(scope="session")
def grpc_stubs(server: serving.Server) -> Iterator[tuple[Any, Any]]:
    """(PredictionService stub, ModelService stub) on the server's gRPC port."""
    import grpc

    _quiet_tensorflow()
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    with grpc.insecure_channel(server.grpc_target) as channel:
        yield (
            prediction_service_pb2_grpc.PredictionServiceStub(channel),
            model_service_pb2_grpc.ModelServiceStub(channel),
        )


def version_states(http: requests.Session, server: serving.Server, model: str) -> dict[int, str]:
    """version -> state from the REST model status."""
    answer = http.get(f"{server.rest_url}/v1/models/{model}").json()
    return {int(v["version"]): v["state"] for v in answer.get("model_version_status", [])}


def wait_for(condition: Callable[[], Any], what: str, seconds: float = WAIT_SECONDS) -> Any:
    """Poll `condition` until it is truthy; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.1)
    pytest.fail(f"timed out after {seconds} s waiting for {what}")
