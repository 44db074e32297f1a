"""The local stand-in for tensorflow_model_server, same flags (`scalelab serve`)."""

from __future__ import annotations

import logging
import os
import select
import signal
import sys
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from google.protobuf import text_format
from grpc import StatusCode
from tensorflow_serving.config import model_server_config_pb2

from scalelab.processes import pids
from scalelab.processes.children import native_stderr_silenced

from . import PARENT_PID_ENV
from .batching import BatchingParameters, parse_batching_parameters
from .monitoring import prometheus_path
from .status import ServingError, invalid

log = logging.getLogger("scalelab.serving")

FLAGS: dict[str, tuple[type, Any]] = {
    "port": (int, 8500),
    "rest_api_port": (int, 0),
    "rest_api_timeout_in_ms": (int, 30000),
    "model_name": (str, "default"),
    "model_base_path": (str, ""),
    "model_config_file": (str, ""),
    "model_config_file_poll_wait_seconds": (int, 0),
    "file_system_poll_wait_seconds": (int, 1),
    "enable_batching": (bool, False),
    "batching_parameters_file": (str, ""),
    "monitoring_config_file": (str, ""),
    "allow_version_labels_for_unavailable_models": (bool, False),
    "max_num_load_retries": (int, 5),
    "load_retry_interval_micros": (int, 60_000_000),
    "enable_model_warmup": (bool, True),
    "num_request_iterations_for_warmup": (int, 0),
    "version": (bool, False),
    "scalelab_host": (str, "127.0.0.1"),  # ours: the address to bind (TF Serving binds all)
}
UNSUPPORTED = frozenset(
    [
        "grpc_socket_path",
        "rest_api_num_threads",
        "rest_api_enable_cors_support",
        "enable_per_model_batching_parameters",
        "num_load_threads",
        "num_unload_threads",
        "flush_filesystem_caches",
        "tensorflow_session_parallelism",
        "tensorflow_intra_op_parallelism",
        "tensorflow_inter_op_parallelism",
        "use_alts_credentials",
        "ssl_config_file",
        "platform_config_file",
        "saved_model_tags",
        "grpc_channel_arguments",
        "grpc_max_threads",
        "prefer_tflite_model",
        "num_tflite_pools",
        "num_tflite_interpreters_per_pool",
        "enable_profiler",
        "thread_pool_factory_config_file",
        "mixed_precision",
        "skip_initialize_tpu",
        "enable_grpc_healthcheck_service",
        "per_process_gpu_memory_fraction",
        "tensorflow_session_config_file",
        "xla_cpu_compilation_enabled",
        "xla_gpu_compilation_enabled",
        "enable_signature_method_name_check",
        "enable_serialization_as_tensor_content",
        "remove_unused_fields_from_bundle_metagraph",
    ]
)


class FlagError(ValueError):
    """A command line the server refuses to run."""


def usage() -> str:
    """The flags the local server understands."""
    lines = [f"  --{name}={str(default).lower()}" for name, (_, default) in FLAGS.items()]
    return "usage: scalelab serve [flags]\nFlags:\n" + "\n".join(lines)


def parse_flags(argv: list[str]) -> dict[str, Any]:
    """Parse `--name=value` flags like tensorflow_model_server (`--name` alone for booleans)."""
    values = {name: default for name, (_, default) in FLAGS.items()}
    for arg in argv:
        name, has_value, raw = arg.removeprefix("--").partition("=")
        if name in UNSUPPORTED:
            raise FlagError(
                f"--{name} is a tensorflow_model_server flag the scalelab local server does not "
                "support: drop it, or use the docker or binary backend"
            )
        if not arg.startswith("--") or name not in FLAGS:
            raise FlagError(f"unknown argument: {arg}")
        kind = FLAGS[name][0]
        if kind is bool and raw.lower() in ("", "true", "1", "false", "0"):
            values[name] = not has_value or raw.lower() in ("true", "1")
        elif kind is not bool and has_value and (kind is str or raw.lstrip("-").isdigit()):
            values[name] = kind(raw)
        else:
            raise FlagError(f"Couldn't interpret value {raw} for flag {name}.")
    return values


class _Formatter(logging.Formatter):
    """TF Serving's log line shape: `2024-01-31 12:00:00.000000: I file.py:12] message`."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created).strftime("%Y-%m-%d %H:%M:%S.%f")
        where = f"{record.module}.py:{record.lineno}"
        return f"{stamp}: {record.levelname[0]} {where}] {record.getMessage()}"


def read_model_config(path: str) -> model_server_config_pb2.ModelServerConfig:
    """Parse a text-format ModelServerConfig file, failing like tensorflow_model_server."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ServingError(StatusCode.NOT_FOUND, f"{path}; {error.strerror}") from None
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        log.error(f"Error parsing text-format tensorflow.serving.ModelServerConfig: {error}")
        raise invalid(f"Invalid protobuf file: '{path}'") from None
    return config


def _model_config(flags: dict[str, Any]) -> model_server_config_pb2.ModelServerConfig:
    if flags["model_config_file"]:
        return read_model_config(flags["model_config_file"])
    log.info(
        "Building single TensorFlow model file config:  model_name: "
        f"{flags['model_name']} model_base_path: {flags['model_base_path']}"
    )
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.add(
        name=flags["model_name"], base_path=flags["model_base_path"], model_platform="tensorflow"
    )
    return config


def _batching(flags: dict[str, Any]) -> BatchingParameters | None:
    path = flags["batching_parameters_file"]
    if not flags["enable_batching"]:
        if path:
            raise invalid(
                "server_options.batching_parameters_file is set without setting "
                "server_options.enable_batching to true."
            )
        return None
    if not path:
        return BatchingParameters()
    try:
        return parse_batching_parameters(Path(path).read_text())
    except OSError as error:
        raise ServingError(StatusCode.NOT_FOUND, f"{path}; {error.strerror}") from None


def _metrics_path(flags: dict[str, Any]) -> str | None:
    """Where the REST port exports Prometheus metrics, if --monitoring_config_file enables it
    (TF Serving reads the file only when it serves REST, on a port other than gRPC's)."""
    path = flags["monitoring_config_file"]
    if not path or not flags["rest_api_port"] or flags["rest_api_port"] == flags["port"]:
        return None
    try:
        return prometheus_path(Path(path).read_text())
    except OSError as error:
        raise ServingError(StatusCode.NOT_FOUND, f"{path}; {error.strerror}") from None


def _start(
    flags: dict[str, Any], stop: threading.Event, cleanup: list[Callable[[], object]]
) -> None:
    """Load the models, then open the ports, adding each clean-up step to `cleanup`."""
    if flags["port"] == 0:
        raise invalid(
            "At least one of server_options.grpc_port or server_options.grpc_socket_path must "
            "be set."
        )
    if not flags["model_base_path"] and not flags["model_config_file"]:
        raise invalid(
            "Both server_options.model_base_path and server_options.model_config_file are empty!"
        )
    config = _model_config(flags)
    batching = _batching(flags)
    metrics_path = _metrics_path(flags)
    with native_stderr_silenced():
        from .grpc import serve_grpc
        from .manager import ManagerOptions, ModelManager
        from .rest import serve_rest

    manager = ModelManager(
        ManagerOptions(
            file_system_poll_wait_seconds=flags["file_system_poll_wait_seconds"],
            allow_version_labels_for_unavailable_models=flags[
                "allow_version_labels_for_unavailable_models"
            ],
            batching=batching,
            max_num_load_retries=flags["max_num_load_retries"],
            load_retry_interval_micros=flags["load_retry_interval_micros"],
            enable_model_warmup=flags["enable_model_warmup"],
            warmup_iterations=max(flags["num_request_iterations_for_warmup"], 0) or 1,
        )
    )
    cleanup.append(manager.stop)
    manager.reload(config)
    manager.watch()
    host, port, rest_port = flags["scalelab_host"], flags["port"], flags["rest_api_port"]
    try:
        grpc_server = serve_grpc(manager, host, port)
    except RuntimeError as error:
        raise invalid(f"Failed to BuildAndStart gRPC server: {error}") from None
    cleanup.append(lambda: grpc_server.stop(grace=1).wait())
    log.info(f"Running gRPC ModelServer at {host}:{port} ...")
    if rest_port == port:
        log.error(
            "server_options.http_port cannot be same as grpc_port. Please use a different port "
            "for HTTP/REST API. Skipped exporting HTTP/REST API."
        )
    elif rest_port:
        try:
            http_server = serve_rest(
                manager, host, rest_port, flags["rest_api_timeout_in_ms"], metrics_path
            )
        except OSError as error:
            raise ServingError(
                StatusCode.UNAVAILABLE,
                f"Failed to start HTTP Server at localhost:{rest_port}: {error}",
            ) from None
        threading.Thread(target=http_server.serve_forever, daemon=True, name="rest").start()
        cleanup += [http_server.api.close, http_server.server_close, http_server.shutdown]
        log.info(f"Exporting HTTP/REST API at:localhost:{rest_port} ...")
    config_poll = flags["model_config_file_poll_wait_seconds"]
    if flags["model_config_file"] and config_poll > 0:
        threading.Thread(
            target=_poll_config,
            args=(manager, flags["model_config_file"], config_poll, stop),
            daemon=True,
        ).start()


def _poll_config(manager: Any, path: str, seconds: int, stop: threading.Event) -> None:
    applied = read_model_config(path)
    while not stop.wait(seconds):
        try:
            config = read_model_config(path)
            if config != applied:
                manager.reload(config)
                applied = config
        except ServingError as error:
            log.error(f"PollFilesystemAndReloadConfig failed to ReloadConfig: {error.message}")


def _watch_parent(stop: threading.Event) -> None:
    """Stop when the process that started this server ends (its parent, or the caller of a
    fork server when it started warm)."""
    parent = os.environ.get(PARENT_PID_ENV, "")
    if not parent.isdigit():
        return
    try:
        ended = os.pidfd_open(int(parent))  # readable once that process has ended
    except ProcessLookupError:
        ended = None
        stop.set()
    except (AttributeError, OSError):  # no pidfd here: look for the pid instead
        ended = None

    def gone() -> bool:
        if ended is not None:
            return bool(select.select([ended], [], [], 0)[0])
        return not pids.alive(int(parent))

    def watch() -> None:
        while not stop.wait(1.0):
            if gone():
                log.warning("The process that started this server is gone; shutting down.")
                stop.set()

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def serve(argv: list[str]) -> int:
    """Run the server until SIGTERM/SIGINT; 255 when it cannot start (like TF Serving's -1)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    if "--help" in argv:
        print(usage())
        return 0
    try:
        flags = parse_flags(argv)
    except FlagError as error:
        print(f"ERROR: {error}\n{usage()}", file=sys.stderr)
        return 255
    if flags["version"]:
        print("TensorFlow ModelServer: scalelab local stand-in")
        return 0
    stop = threading.Event()
    started = False

    def on_signal(signum: int, frame: object) -> None:
        if not started:
            raise SystemExit(128 + signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    _watch_parent(stop)
    cleanup: list[Callable[[], object]] = []
    try:
        _start(flags, stop, cleanup)
        started = True
        while not stop.wait(1.0):
            pass
        log.info("Shutting down the model server.")
        return 0
    except ServingError as error:
        print(f"Failed to start server. Error: {error}", flush=True)
        return 255
    finally:
        for step in reversed(cleanup):
            step()
