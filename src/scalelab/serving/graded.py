"""The servers and checks Chapter 2's graded tests use, so that its test cells stay a few lines:
the tests' own copies of the exports, their own servers, a watcher that looks into a base path
as a server's poll would, and a learner's `docker run` command run for real."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import requests

from scalelab import savedmodel
from scalelab.processes.children import free_ports

from . import argv as docker_argv
from . import docker, shared, start
from .replicas import predict_request
from .server import Server

POLL = ["--file_system_poll_wait_seconds=1"]


def available_versions(rest_url: str, model_name: str = "digits") -> set[int]:
    """The versions a server reports AVAILABLE."""
    answer = requests.get(f"{rest_url}/v1/models/{model_name}", timeout=10)
    answer.raise_for_status()
    states = answer.json()["model_version_status"]
    return {int(v["version"]) for v in states if v["state"] == "AVAILABLE"}


class TestServers:
    """The graded tests' own copies of the exports, and the servers they start on them: nothing
    a learner does to the notebook's own server or exports changes a grade."""

    def __init__(self, root: str | os.PathLike[str], exports: Mapping[str, Path]) -> None:
        self.root = Path(root).resolve()
        shutil.rmtree(self.root, ignore_errors=True)
        for name, export in exports.items():
            shutil.copytree(export, self.root / "exports" / name)
        self._lifecycle: Server | None = None
        self._kept: dict[str, tuple[Server, Path]] = {}  # servers reused from test to test
        self._started: list[Server] = []
        atexit.register(self.stop)

    def export(self, name: str) -> Path:
        """The tests' own copy of an export (e.g. "digits_v1")."""
        return self.root / "exports" / name

    @contextlib.contextmanager
    def copy_of(self, name: str, padding_bytes: int = 0) -> Iterator[Path]:
        """A throwaway copy of an export, removed after the block (a learner's code may move or
        change it), with `padding_bytes` zeros in assets.extra so that copying it takes a while."""
        with tempfile.TemporaryDirectory(dir=self.root) as scratch:
            copy = Path(scratch) / name
            shutil.copytree(self.export(name), copy)
            if padding_bytes:
                (copy / "assets.extra").mkdir(exist_ok=True)
                (copy / "assets.extra" / "padding.bin").write_bytes(bytes(padding_bytes))
            yield copy

    def base_with(self, folder: str, versions: Mapping[int, str], model: str = "digits") -> Path:
        """A fresh base path under the tests' folder holding these versions (number -> export)."""
        base = self.root / folder / model
        shutil.rmtree(base.parent, ignore_errors=True)
        for version, name in versions.items():
            shutil.copytree(self.export(name), savedmodel.version_path(base, version))
        return base

    def shared(self) -> Server:
        """The tests' server of version 1, started on first use and reused after."""
        base = self.root / "shared" / "digits"
        if not base.exists():
            self.base_with("shared", {1: "digits_v1"})
        return shared(base, "digits")

    def start(self, *args: Any, **kwargs: Any) -> Server:
        """serving.start(...), stopped when the tests' servers stop (at exit at the latest)."""
        server = start(*args, **kwargs)
        self._started.append(server)
        return server

    def lifecycle(self) -> tuple[Server, Path]:
        """The deploy and rollback tests' server and base path, back to version 1 alone.

        It serves versions 1 and 2 (a `specific` version policy), never 3, so a wait on
        version 3 can only end by timing out."""
        base = self.root / "lifecycle" / "digits"
        server = self._lifecycle
        if server is None or server.exit_code() is not None:
            self.base_with("lifecycle", {1: "digits_v1"})
            config = self.root / "lifecycle.config"
            config.write_text(
                "model_config_list { config {\n"
                f'  name: "digits" base_path: "{base}" model_platform: "tensorflow"\n'
                "  model_version_policy { specific { versions: 1 versions: 2 } }\n} }\n"
            )
            flags = [*POLL, "--max_num_load_retries=0"]  # a failed load ends at once
            server = self._lifecycle = self.start(model_config_file=config, extra_flags=flags)
        for folder, keep in ((base.parent, base.name), (base, "0001")):  # what earlier tests left
            for entry in folder.iterdir():
                if entry.name != keep and entry.is_dir():
                    shutil.rmtree(entry)
                elif entry.name != keep:
                    entry.unlink()
        deadline = time.monotonic() + 60
        while available_versions(server.rest_url) != {1}:
            if time.monotonic() > deadline:
                raise RuntimeError("the tests' server did not go back to version 1 alone")
            time.sleep(0.1)
        return server, base

    def labels_base(self) -> Path:
        """The base path (versions 1 and 2) the model config tests serve, made once."""
        base = self.root / "labels" / "digits"
        if not base.exists():
            self.base_with("labels", {1: "digits_v1", 2: "digits_v2"})
        return base

    def kept(self, kind: str) -> tuple[Server, Path]:
        """A server reused from test to test: "labels" polls a model config file (returned)
        serving labels_base(); "loader" serves a base path (returned) where versions are added."""
        server, path = self._kept.get(kind, (None, Path()))
        if server is not None and server.exit_code() is None:
            return server, path
        if kind == "labels":
            path = self.root / "labels.config"
            _replace(path, _config_without_labels(self.labels_base()))
            flags = [*POLL, "--model_config_file_poll_wait_seconds=1", *_LABEL_FLAGS]
            server = self.start(model_config_file=path, extra_flags=flags)
        else:
            path = self.base_with("loader", {1: "digits_v1"})
            server = self.start(path, "digits", extra_flags=[*POLL, "--max_num_load_retries=0"])
        self._kept[kind] = (server, path)
        return server, path

    def stop(self) -> None:
        """Stop every server these tests started."""
        for server in self._started:
            server.stop()
        self._started.clear()
        self._lifecycle = None
        self._kept.clear()


_LABEL_FLAGS = ["--allow_version_labels_for_unavailable_models", "--max_num_load_retries=0"]
_UNKNOWN_LABEL = "Unrecognized servable version label"


def _replace(path: Path, text: str) -> None:
    """Write a file atomically (a temporary name, then rename), as a polling server needs."""
    staging = path.with_name(f".{path.name}.new")
    staging.write_text(text)
    staging.rename(path)


def _config_without_labels(base: Path) -> str:
    return (
        "model_config_list { config {\n"
        f'  name: "digits" base_path: "{base}" model_platform: "tensorflow"\n'
        "  model_version_policy { specific { versions: 1 versions: 2 } }\n} }\n"
    )


@contextlib.contextmanager
def partial_versions_seen(base: Path, complete: Sequence[tuple[str, int]]) -> Iterator[list[str]]:
    """While the block runs, look into `base` every millisecond as a server's poll would, and
    list each new numbered folder found holding less than `complete` (savedmodel.list_files)."""
    seen: list[str] = []
    before = set(os.listdir(base))
    finished = threading.Event()

    def look() -> None:
        while not finished.is_set() and not seen:
            for name in os.listdir(base):
                if name.isdigit() and name not in before:
                    found: list[tuple[str, int]]
                    try:
                        found = savedmodel.list_files(base / name)
                    except OSError:  # no saved_model.pb yet, or a file went away
                        found = []
                    if found != list(complete):
                        done = len(set(found) & set(complete))
                        seen.append(f"{name}/ with {done} of {len(complete)} files complete")
            finished.wait(0.001)

    watcher = threading.Thread(target=look, daemon=True)
    watcher.start()
    try:
        yield seen
    finally:
        finished.set()
        watcher.join()


def run_docker_answer(
    make_argv: Callable[..., Sequence[str]],
    base_path: Path,
    check: Callable[[Server], object],
    model_name: str = "digits",
) -> list[str] | None:
    """Run a learner's `docker run` argv for real (free host ports, the docker backend's image)
    and call `check(server)`; None when no Docker engine answers here, else what went wrong
    ([] if nothing)."""
    if not docker.engine_available():
        return None
    rest_port, grpc_port = free_ports(2)
    argv = make_argv(base_path, model_name, rest_port=rest_port, grpc_port=grpc_port)
    with docker_argv.start(argv, model_name, rest_port, grpc_port) as server:
        mounts = server.container.attrs["Mounts"]  # type: ignore[attr-defined]
        writable = [m["Source"] for m in mounts if m.get("RW")]
        check(server)
    return [f"mounted read-write: {writable}"] if writable else []


def parse_model_config(text: str) -> Any:
    """A text-format ModelServerConfig read with TF Serving's message (AssertionError saying
    where the text is wrong)."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    assert isinstance(text, str), f"return the file's text, not {type(text).__name__}"
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        raise AssertionError(f"TF Serving cannot read this ModelServerConfig: {error}") from None
    return config


def _label_versions(target: str, labels: Sequence[str], images: Any) -> dict[str, object]:
    """The version answering each label over gRPC (or the error's code name)."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    answered: dict[str, object] = {}
    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_request("digits", images)
        for label in labels:
            request.model_spec.version_label = label
            try:
                answered[label] = stub.Predict(request, timeout=10).model_spec.version.value
            except grpc.RpcError as error:
                answered[label] = f"{error.code().name}: {error.details()}"
    return answered


def serve_config_and_ask(
    tests: TestServers, text: str, labels: Sequence[str], images: Any, seconds: float = 15
) -> dict[str, object]:
    """Have a server that polls its model config file (versions 1 and 2 of labels_base() loaded)
    apply this config, and ask each label which version answers (or the error's words). The
    file goes back to no labels first, so answers never come from an earlier config."""
    server, config = tests.kept("labels")
    steps: list[tuple[str, Callable[[list[bool]], bool]]] = [
        (_config_without_labels(tests.labels_base()), all),  # every label unknown
        (text, lambda unknown: not any(unknown)),  # every label known
    ]
    answers: dict[str, object] = {}
    for new_text, applied in steps:
        _replace(config, new_text)
        deadline = time.monotonic() + seconds
        while True:
            answers = _label_versions(server.grpc_target, labels, images)
            if applied([_UNKNOWN_LABEL in str(a) for a in answers.values()]):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
    return answers


def parse_batching_parameters(text: str) -> dict[str, int]:
    """The fields set in a text-format BatchingParameters file, read with TF Serving's message
    (AssertionError saying where the text is wrong)."""
    from google.protobuf import text_format

    from .local.batching import batching_parameters_class

    assert isinstance(text, str), f"return the file's text, not {type(text).__name__}"
    message = batching_parameters_class()()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as error:
        raise AssertionError(f"TF Serving cannot read these BatchingParameters: {error}") from None
    return {field.name: getattr(value, "value", value) for field, value in message.ListFields()}


def _predict(server: Server, images: Any) -> list[int]:
    answer = requests.post(
        f"{server.rest_url}/v1/models/digits:predict",
        json={"instances": images.tolist()},
        timeout=30,
    )
    answer.raise_for_status()
    return [p["class_id"] for p in answer.json()["predictions"]]


def serve_with_batching(tests: TestServers, text: str, images: Any) -> list[str]:
    """Serve version 1 with this batching file; what is wrong with the answers to concurrent
    single-image requests ([] if nothing)."""
    from concurrent.futures import ThreadPoolExecutor

    path = tests.root / "graded_batching.config"
    path.write_text(text)
    base = tests.base_with("batching", {1: "digits_v1"})
    flags = [*POLL, "--enable_batching", f"--batching_parameters_file={path}"]
    expected = _predict(tests.shared(), images)
    with (
        tests.start(base, "digits", extra_flags=flags) as server,
        ThreadPoolExecutor(len(images)) as pool,
    ):
        singles = [images[i : i + 1] for i in range(len(images))]
        found = [answer[0] for answer in pool.map(lambda one: _predict(server, one), singles)]
    return [] if found == expected else [f"batched answers {found}, expected {expected}"]


def warmup_records(path: str | os.PathLike[str]) -> list[Any]:
    """The PredictionLog records of a warm-up file, read as TF Serving reads it (uncompressed
    TFRecord; AssertionError with the reader's words if it cannot)."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError
    from tensorflow_serving.apis import prediction_log_pb2

    assert Path(path).is_file(), f"no file at {path}"
    try:
        raw = list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())
    except tf.errors.OpError as error:
        raise AssertionError(
            f"TF Serving cannot read {path} as a TFRecord file: {error.message}"
        ) from None
    records = []
    for record in raw:
        entry = prediction_log_pb2.PredictionLog()
        try:
            entry.ParseFromString(record)
        except DecodeError:
            raise AssertionError(f"a record is not a PredictionLog: {record[:40]!r}") from None
        records.append(entry)
    return records


def serve_with_warmup(tests: TestServers, export: Path, seconds: float = 60) -> list[str]:
    """Deploy a SavedModel holding warm-up requests as the next version of a running server (a
    failed load is not retried); what went wrong ([] if it loaded and answers)."""
    server, base = tests.kept("loader")
    version = max(int(p.name) for p in base.iterdir() if p.name.isdigit()) + 1
    staging = base / f".incoming-{version}"
    shutil.copytree(export, staging)
    staging.rename(savedmodel.version_path(base, version))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answer = requests.get(f"{server.rest_url}/v1/models/digits/versions/{version}", timeout=10)
        states = answer.json().get("model_version_status", []) if answer.ok else []
        if states and states[0]["state"] == "AVAILABLE":
            _predict(server, np.zeros((1, 8, 8), np.uint8))
            return []
        if states and states[0]["state"] == "END":
            error = states[0].get("status", {}).get("error_message", "")
            return [f"the version did not load with your warm-up file: {error}"]
        time.sleep(0.2)
    return [f"the version did not load within {seconds} s"]
