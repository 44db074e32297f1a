"""The model manager: model config, version policy, file-system watching, labels and status."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import tensorflow as tf
from google.protobuf.message import DecodeError
from grpc import StatusCode
from tensorflow_serving.apis import get_model_status_pb2, model_pb2
from tensorflow_serving.config import model_server_config_pb2

from . import monitoring
from .batching import BatchingParameters
from .servable import Servable
from .status import ServingError, from_op_error, invalid
from .warmup import run_warmup

log = logging.getLogger("scalelab.serving")

State = get_model_status_pb2.ModelVersionStatus.State
STARTUP_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class ManagerOptions:
    """Server flags the manager needs."""

    file_system_poll_wait_seconds: int = 1
    allow_version_labels_for_unavailable_models: bool = False
    batching: BatchingParameters | None = None
    max_num_load_retries: int = 5
    load_retry_interval_micros: int = 60_000_000
    enable_model_warmup: bool = True
    warmup_iterations: int = 1  # --num_request_iterations_for_warmup when > 0


@dataclass
class _Model:
    config: model_server_config_pb2.ModelConfig
    servables: dict[int, Servable] = field(default_factory=dict)  # AVAILABLE; replaced, not edited
    states: dict[int, tuple[int, ServingError | None]] = field(default_factory=dict)
    failed: set[int] = field(default_factory=set)  # not loaded again until they leave and return
    problem: str = ""


def servable_id(name: str, version: int) -> str:
    """A servable id written like TF Serving's logs: {name: m version: 1}."""
    return f"{{name: {name} version: {version}}}"


def _aspired(ready: dict[int, Path], config: model_server_config_pb2.ModelConfig) -> set[int]:
    """The versions the model's version policy wants served, among those on disk."""
    policy = config.model_version_policy
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return set(ready)
    if choice == "specific":
        return set(policy.specific.versions) & set(ready)
    return set(sorted(ready)[-max(policy.latest.num_versions, 1) :])


def _load_error(error: Exception) -> ServingError:
    if isinstance(error, ServingError):
        return error
    if isinstance(error, tf.errors.OpError):
        return from_op_error(error)
    if isinstance(error, DecodeError):
        return ServingError(StatusCode.DATA_LOSS, f"Can't parse saved_model.pb: {error}")
    return ServingError(StatusCode.UNKNOWN, f"{type(error).__name__}: {error}")


def validate_config_list(configs: list[model_server_config_pb2.ModelConfig]) -> None:
    """ServerCore's checks on a model_config_list: unique names, absolute paths, platform."""
    names: set[str] = set()
    for config in configs:
        if config.name in names:
            raise invalid(f"Illegal to list model {config.name} multiple times in config list")
        names.add(config.name)
        if not os.path.isabs(config.base_path):
            raise invalid(
                f"Expected model {config.name} to have an absolute path or URI; "
                f"got base_path()={config.base_path}"
            )
        platform = config.model_platform
        if config.model_type:
            if platform:
                raise invalid(
                    "Illegal setting both ModelServerConfig::model_type (deprecated) and "
                    f"ModelServerConfig::model_platform, model name is {config.name}"
                )
            platform = "tensorflow" if config.model_type == 1 else ""
        if not platform:
            raise invalid(
                "Illegal setting neither ModelServerConfig::model_type (deprecated) nor "
                f"ModelServerConfig::model_platform, model name is {config.name}"
            )
        if platform != "tensorflow":
            raise ServingError(
                StatusCode.FAILED_PRECONDITION,
                f"PlatformConfigMap has no entry for platform {platform}",
            )


class ModelManager:
    """Serves the versions each model's policy asks for, watching the base paths for changes."""

    def __init__(self, options: ManagerOptions) -> None:
        self.options = options
        self._models: dict[str, _Model] = {}
        self._active: frozenset[str] = frozenset()
        self._labels: dict[str, dict[str, int]] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    # --- configuration ---------------------------------------------------------------------

    def reload(self, config: model_server_config_pb2.ModelServerConfig) -> None:
        """Apply a whole new model_config_list, then wait until the newly added models load."""
        if config.WhichOneof("config") != "model_config_list":
            raise invalid(
                "ServerModelConfig type not supported by HandleReloadConfigRequest. Only "
                "ModelConfigList is currently supported"
            )
        configs = list(config.model_config_list.config)
        validate_config_list(configs)
        with self._lock:
            labels = self._checked_labels(configs)
            added = [c.name for c in configs if c.name not in self._active]
            log.info("Adding/updating models.")
            for name in self._active - {c.name for c in configs}:
                for version in sorted(self._models[name].servables):
                    self._unload(self._models[name], version)
            for model_config in configs:
                if model_config.name in added:
                    log.info(f" (Re-)adding model: {model_config.name}")
                    self._models[model_config.name] = _Model(model_config)
                else:
                    self._models[model_config.name].config = model_config
                    self._poll_model(self._models[model_config.name])
            self._active = frozenset(c.name for c in configs)
            self._labels = labels
        self._await_models(added)
        log.info("Finished adding/updating models")

    def _checked_labels(
        self, configs: list[model_server_config_pb2.ModelConfig]
    ) -> dict[str, dict[str, int]]:
        labels: dict[str, dict[str, int]] = {}
        for config in configs:
            model = self._models.get(config.name)
            for label, version in config.version_labels.items():
                allowed = False
                if self.options.allow_version_labels_for_unavailable_models:
                    current = self._labels.get(config.name, {}).get(label)
                    allowed = current is None or current == version
                available = model is not None and version in model.servables
                if not (allowed or available):
                    raise ServingError(
                        StatusCode.FAILED_PRECONDITION,
                        f"Request to assign label to version {version} of model {config.name}, "
                        "which is not currently available for inference",
                    )
                labels.setdefault(config.name, {})[label] = version
        return labels

    def _await_models(self, names: list[str]) -> None:
        while names and not self._stop.is_set():
            with self._lock:
                for name in names:
                    self._poll_model(self._models[name])
                pending = [n for n in names if not self._models[n].servables]
                errors = [
                    (n, v, error)
                    for n in pending
                    for v, (_, error) in sorted(self._models[n].states.items())
                    if error is not None
                ]
            if errors:
                details = "".join(
                    f"{{{servable_id(n, v)} due to error: {e}}}, " for n, v, e in errors
                )
                raise ServingError(
                    StatusCode.UNKNOWN,
                    f"{len(pending)} model(s) did not become available: {{{details}}}",
                )
            if not pending:
                return
            time.sleep(STARTUP_POLL_SECONDS)

    # --- watching the file system ----------------------------------------------------------

    def watch(self) -> None:
        """Poll the base paths every --file_system_poll_wait_seconds (0: never again)."""
        if self.options.file_system_poll_wait_seconds <= 0:
            return
        self._watcher = threading.Thread(target=self._watch_loop, daemon=True, name="fs-poll")
        self._watcher.start()

    def _watch_loop(self) -> None:
        while not self._stop.wait(self.options.file_system_poll_wait_seconds):
            self.poll()

    def poll(self) -> None:
        """Load new versions, unload dropped ones, for every configured model."""
        with self._lock:
            for name in sorted(self._active):
                self._poll_model(self._models[name])

    def stop(self) -> None:
        """Stop watching and release every loaded version."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join()
        with self._lock:
            for model in self._models.values():
                for servable in model.servables.values():
                    servable.close()

    def _report(self, model: _Model, problem: str) -> None:
        if problem and problem != model.problem:
            log.warning(problem)
        model.problem = problem

    def _versions_on_disk(self, model: _Model) -> dict[int, Path] | None:
        """Every numbered entry of the base path, whatever it holds (as TF Serving's source
        proposes them); None when the base path cannot be read, which changes nothing."""
        name, base = model.config.name, Path(model.config.base_path)
        try:
            children = list(os.scandir(base))
        except OSError as error:
            self._report(
                model,
                "FileSystemStoragePathSource encountered a filesystem access error: Could not "
                f"find base path {base} for servable {name} with error NOT_FOUND: "
                f"{error.strerror}",
            )
            return None
        on_disk = {int(e.name): Path(e.path) for e in children if e.name.isdigit()}
        self._report(
            model,
            ""
            if on_disk
            else f"No versions of servable {name} found under base path {base}. Did you forget "
            "to name your leaf directory as a number (eg. '/1/')?",
        )
        return on_disk

    def _poll_model(self, model: _Model) -> None:
        """Load and unload until the model matches its aspired versions, one action at a time,
        in the order of TF Serving's availability-preserving policy."""
        on_disk = self._versions_on_disk(model)
        if on_disk is None:
            return
        aspired = _aspired(on_disk, model.config)
        model.failed &= aspired  # a failed version that left may be loaded when it returns
        while not self._stop.is_set():
            unaspired = sorted(v for v in model.servables if v not in aspired)
            aspired_serving = any(v in model.servables for v in aspired)
            if unaspired and (not aspired or aspired_serving or len(unaspired) > 1):
                self._unload(model, unaspired[0])  # the lowest first
                continue
            new = sorted(aspired - set(model.servables) - model.failed)
            if not new:
                return
            if not self._load(model, new[-1], on_disk[new[-1]]):  # the highest first
                model.failed.add(new[-1])

    def _load(self, model: _Model, version: int, path: Path) -> bool:
        """Load one version, retrying like TF Serving (inline: other loads wait meanwhile);
        False when it failed (state END with the error)."""
        name = model.config.name
        log.info(f"Approving load for servable version {servable_id(name, version)}")
        model.states[version] = (State.LOADING, None)
        retries = max(self.options.max_num_load_retries, 0)
        for attempt in range(retries + 1):
            if attempt:
                log.info(f"Retrying load on servable version {servable_id(name, version)}")
            log.info(f"Loading servable version {servable_id(name, version)}")
            log.info(f"Reading SavedModel from: {path}")
            try:
                started = time.perf_counter()
                try:
                    servable = Servable(name, version, path, self.options.batching)
                except Exception:
                    monitoring.load_attempt_count.increment(str(path), "fail")
                    raise
                monitoring.load_attempt_count.increment(str(path), "success")
                micros = int((time.perf_counter() - started) * 1e6)
                monitoring.load_latency.increment(str(path), by=micros)
                if self.options.enable_model_warmup:  # before AVAILABLE, as in TF Serving
                    try:
                        run_warmup(servable, self.options.warmup_iterations)
                    except BaseException:
                        servable.close()
                        raise
                break
            except Exception as error:  # any load failure is reported in the model's status
                status = _load_error(error)
                log.error(f"Loading servable: {servable_id(name, version)} failed: {status}")
                if attempt == retries or self._stop.wait(
                    self.options.load_retry_interval_micros / 1e6
                ):
                    model.states[version] = (State.END, status)
                    return False
        model.servables = {**model.servables, version: servable}
        model.states[version] = (State.AVAILABLE, None)
        log.info(f"Successfully loaded servable version {servable_id(name, version)}")
        return True

    def _unload(self, model: _Model, version: int) -> None:
        name = model.config.name
        model.states[version] = (State.UNLOADING, None)
        log.info(f"Unloading servable version {servable_id(name, version)}")
        servables = dict(model.servables)
        servables.pop(version).close()
        model.servables = servables
        model.states[version] = (State.END, None)
        log.info(f"Done unloading servable version {servable_id(name, version)}")

    # --- requests --------------------------------------------------------------------------

    def servable(self, spec: model_pb2.ModelSpec) -> Servable:
        """The servable a ModelSpec asks for: latest, a specific version, or a labelled one."""
        name = spec.name
        if not name:
            raise invalid("ModelSpec has no name specified.")
        model = self._models.get(name) if name in self._active else None
        servables = model.servables if model else {}
        choice = spec.WhichOneof("version_choice")
        if choice is None:
            if servables:
                return servables[max(servables)]
            raise ServingError(
                StatusCode.NOT_FOUND, f"Servable not found for request: Latest({name})"
            )
        if choice == "version":
            version = spec.version.value
        else:
            version = self._labels.get(name, {}).get(spec.version_label, -1)
            if version < 0:
                raise invalid(f"Unrecognized servable version label: {spec.version_label}")
        if version in servables:
            return servables[version]
        raise ServingError(
            StatusCode.NOT_FOUND, f"Servable not found for request: Specific({name}, {version})"
        )

    def status(self, spec: model_pb2.ModelSpec) -> get_model_status_pb2.GetModelStatusResponse:
        """GetModelStatus: every version this model ever had (newest first), or just one."""
        model = self._models.get(spec.name)
        states = dict(model.states) if model else {}
        if spec.HasField("version"):
            version = spec.version.value
            if version not in states:
                raise ServingError(
                    StatusCode.NOT_FOUND, f"Could not find version {version} of model {spec.name}"
                )
            states = {version: states[version]}
        elif not states:
            raise ServingError(
                StatusCode.NOT_FOUND, f"Could not find any versions of model {spec.name}"
            )
        response = get_model_status_pb2.GetModelStatusResponse()
        for version in sorted(states, reverse=True):
            state, error = states[version]
            entry = response.model_version_status.add(version=version, state=state)
            entry.status.SetInParent()  # error_code OK unless set below
            if error is not None:
                entry.status.error_code = error.code.value[0]
                entry.status.error_message = error.message
        return response
