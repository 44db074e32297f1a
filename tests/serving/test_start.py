"""The start() API: backend choice, start-up errors that say what to fix, clean stops."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scalelab import serving
from scalelab.serving import docker as docker_module
from scalelab.serving.docker import _container_spec, docker_run_command

from .conftest import Models, backend_available

needs_proc = pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to list processes")


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains `text` (the base path is on every server's)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text.encode() in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:  # exited meanwhile
            continue
    return pids


def test_environment_variable_picks_the_backend_and_says_so(monkeypatch):
    monkeypatch.setenv("SCALELAB_SERVING_BACKEND", "local")
    assert serving.choose_backend() == ("local", "set by SCALELAB_SERVING_BACKEND")
    assert serving.choose_backend("local") == ("local", "set by backend=")


def test_unknown_backend_is_refused(monkeypatch):
    monkeypatch.setenv("SCALELAB_SERVING_BACKEND", "kubernetes")
    with pytest.raises(ValueError, match="Unknown serving backend 'kubernetes'"):
        serving.choose_backend()


def test_automatic_choice_falls_back_to_local_without_docker_or_binary(monkeypatch):
    monkeypatch.delenv("SCALELAB_SERVING_BACKEND", raising=False)
    monkeypatch.delenv("SCALELAB_SERVING_REMOTE_REST", raising=False)
    if not (backend_available("docker") and backend_available("binary")):
        pytest.skip("docker or binary is available here")
    backend, reason = serving.choose_backend()
    assert backend == "local" and "no Docker engine answers" in reason


def test_docker_backend_without_engine_is_a_clear_error(models: Models):
    if docker_module.engine_available():
        pytest.skip("a Docker engine answers here")
    with pytest.raises(serving.ServerStartError, match="no Docker engine answers"):
        serving.start(models.base("half_plus_two"), backend="docker")


def test_missing_base_path_fails_before_any_server_starts(tmp_path):
    with pytest.raises(serving.ServerStartError, match="Could not find base path"):
        serving.start(tmp_path / "missing", backend="local")


def test_base_path_without_numbered_version_says_to_add_one(tmp_path, models: Models):
    shutil.copytree(models.base("half_plus_two") / "1", tmp_path / "m" / "saved_model")
    with pytest.raises(serving.ServerStartError, match=r"name your leaf directory as a number"):
        serving.start(tmp_path / "m", backend="local")


def test_flags_that_start_owns_are_refused(models: Models):
    with pytest.raises(ValueError, match="--rest_api_port=1"):
        serving.start(models.base("half_plus_two"), extra_flags=["--rest_api_port=1"])


@needs_proc
def test_unsupported_flag_is_refused_by_name_with_log_tail_and_no_process_left(
    models: Models, capsys
):
    base = models.base("half_plus_two")
    with pytest.raises(serving.ServerStartError) as failure:
        serving.start(base, backend="local", extra_flags=["--tensorflow_intra_op_parallelism=1"])
    assert (
        capsys.readouterr().out == "scalelab.serving: using the local backend (set by backend=).\n"
    )
    message = str(failure.value)
    assert "exited (code 255)" in message and "Last log lines:" in message
    assert "--tensorflow_intra_op_parallelism is a tensorflow_model_server flag" in message
    assert processes_mentioning(f"--model_base_path={base}") == []


@needs_proc
def test_version_that_fails_to_load_at_start_up_is_reported_and_the_server_stopped(
    tmp_path, models: Models
):
    base = tmp_path / "broken"
    shutil.copytree(models.staging / "corrupt", base / "1")
    with pytest.raises(serving.ServerStartError) as failure:
        serving.start(base, backend="local", extra_flags=["--max_num_load_retries=0"])
    message = str(failure.value)
    assert (
        "1 model(s) did not become available: {{{name: broken version: 1} due to error" in message
    )
    assert "A model version failed to load" in message
    assert processes_mentioning(f"--model_base_path={base}") == []


def test_docker_run_command_mounts_the_model_like_the_image_expects(models: Models, monkeypatch):
    monkeypatch.delenv("SCALELAB_SERVING_IMAGE", raising=False)
    command = docker_run_command(models.base("half_plus_two"), rest_port=8501, grpc_port=8500)
    assert command.startswith(
        "docker run --rm --init --entrypoint tensorflow_model_server "
        "-p 127.0.0.1:8500:8500 -p 127.0.0.1:8501:8501"
    )
    assert f"-v {models.base('half_plus_two')}:/models/half_plus_two:ro" in command
    assert command.endswith(
        "tensorflow/serving:2.20.0 --port=8500 --rest_api_port=8501 "
        "--model_name=half_plus_two --model_base_path=/models/half_plus_two"
    )


def test_docker_image_can_be_overridden(models: Models, monkeypatch):
    monkeypatch.setenv("SCALELAB_SERVING_IMAGE", "scalelab/serving-standin:test")
    assert " scalelab/serving-standin:test --port=8500 " in docker_run_command(
        models.base("half_plus_two")
    )


def test_docker_mounts_every_file_a_flag_names_by_its_folder_at_the_same_path(tmp_path: Path):
    (tmp_path / "cfg").mkdir()
    batching = tmp_path / "cfg" / "batching.config"
    batching.write_text("max_batch_size { value: 8 }\n")
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text("prometheus_config { enable: true }\n")
    models = [("m", tmp_path / "models" / "m")]
    flags = [f"--batching_parameters_file={batching}", f"--monitoring_config_file={monitoring}"]
    mounts, args = _container_spec(models, None, ["--enable_batching", *flags])
    assert mounts == {str(tmp_path / "models" / "m"): "/models/m", str(tmp_path): str(tmp_path)}
    assert args[-3:] == ["--enable_batching", *flags]


def test_docker_mounts_the_config_files_folder_so_an_atomic_replace_is_seen(tmp_path: Path):
    config = tmp_path / "configs" / "models.config"
    models = [("a", tmp_path / "a"), ("b", tmp_path / "configs" / "b")]
    mounts, args = _container_spec(models, config, [])
    assert mounts == {str(p): str(p) for p in (tmp_path / "a", tmp_path / "configs")}
    assert f"--model_config_file={config}" in args


def test_docker_refuses_a_flag_naming_a_missing_file(tmp_path: Path):
    with pytest.raises(serving.ServerStartError, match="no such file on this machine"):
        _container_spec([("m", tmp_path)], None, [f"--ssl_config_file={tmp_path / 'nope'}"])


def test_arm64_prefers_another_backend_unless_an_image_is_named(monkeypatch):
    monkeypatch.setattr("platform.machine", lambda: "arm64")
    monkeypatch.delenv("SCALELAB_SERVING_IMAGE", raising=False)
    assert "no arm64 build" in docker_module.passed_over([], [])
    monkeypatch.setenv("SCALELAB_SERVING_IMAGE", "my/serving:arm64")
    assert docker_module.passed_over([], []) is None


def test_server_reports_where_it_listens(server: serving.Server):
    assert server.rest_url.startswith("http://127.0.0.1:")
    assert server.grpc_target.startswith("127.0.0.1:")
    if server.backend == "remote":  # the server's logs are where it runs
        assert "Added ['corrupt', 'half_plus_two', 'halfcopy'," in server.logs()
        return
    assert "Successfully loaded servable version {name: half_plus_two version: 1}" in server.logs()
    if server.backend == "local":
        assert "Running gRPC ModelServer at 127.0.0.1:" in server.logs()
        assert "Exporting HTTP/REST API at:localhost:" in server.logs()


def test_every_backend_defines_the_same_five_functions():
    names = ("unavailable", "passed_over", "chosen", "launch", "describe")
    for name, backend in serving.BACKENDS.items():
        assert all(callable(getattr(backend, f, None)) for f in names), name
    assert list(serving.BACKENDS) == ["remote", "docker", "binary", "local"]  # the order tried


def test_ports_taken_before_the_server_binds_them_are_chosen_again(models: Models, monkeypatch):
    from scalelab.serving import local

    launch, tried = local.launch, []

    def taken_the_first_time(request):
        tried.append((request.rest_port, request.grpc_port))
        if len(tried) == 1:  # as Docker says it when another process took the port meanwhile
            raise serving.ServerStartError(f"bind :{request.rest_port}: address already in use")
        return launch(request)

    monkeypatch.setattr(local, "launch", taken_the_first_time)
    server = serving.start(models.base("half_plus_two"), backend="local")
    try:
        assert len(tried) == 2 and tried[0] != tried[1]
        rest, grpc = tried[1]
        assert (server.rest_url, server.grpc_target) == (
            f"http://127.0.0.1:{rest}",
            f"127.0.0.1:{grpc}",
        )
    finally:
        server.stop()
    tried.clear()  # a port the caller chose is never traded for another
    with pytest.raises(serving.ServerStartError, match="address already in use"):
        serving.start(models.base("half_plus_two"), backend="local", rest_port=serving.free_port())
