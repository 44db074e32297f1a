"""k8s/serving.yaml's probes and scrape path, asked of a server started with the Deployment's
own arguments: ready only while a version answers, alive while the server answers at all."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import requests

from scalelab import serving

from .conftest import NO_RETRIES, Models, backend_available, version_states, wait_for

yaml = pytest.importorskip("yaml")
MANIFEST = Path(__file__).resolve().parents[2] / "k8s" / "serving.yaml"


def documents() -> dict[str, Any]:
    """kind -> the (first) document of that kind in the manifest."""
    found: dict[str, Any] = {}
    for document in yaml.safe_load_all(MANIFEST.read_text()):
        found.setdefault(document["kind"], document)
    return found


def probe(server: serving.Server, check: dict[str, Any]) -> int:
    """The HTTP status a kubelet's httpGet probe gets (the REST port is the `http` port)."""
    assert check["httpGet"]["port"] == "http"
    return requests.get(server.rest_url + check["httpGet"]["path"], timeout=10).status_code


def test_ready_while_a_version_answers_alive_while_the_server_answers_scraped_at_its_path(
    models: Models, tmp_path: Path
):
    if reason := backend_available("local"):
        pytest.skip(reason)
    manifest = documents()
    pod = manifest["Deployment"]["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    flags = dict(arg.removeprefix("--").split("=", 1) for arg in container["args"])
    assert {port["name"]: port["containerPort"] for port in container["ports"]} == {
        "grpc": int(flags["port"]),
        "http": int(flags["rest_api_port"]),
    }
    config = tmp_path / "monitoring.config"
    config.write_text(manifest["ConfigMap"]["data"]["monitoring.config"])
    model = flags["model_name"]
    shutil.copytree(models.base("half_plus_two") / "1", tmp_path / model / "1")
    extra = [
        f"--file_system_poll_wait_seconds={flags['file_system_poll_wait_seconds']}",
        f"--monitoring_config_file={config}",
        *NO_RETRIES,
    ]
    with serving.start(tmp_path / model, model, backend="local", extra_flags=extra) as server:
        checks = container["readinessProbe"], container["livenessProbe"], container["startupProbe"]
        assert [probe(server, check) for check in checks] == [200, 200, 200]
        scraped = requests.get(
            server.rest_url + pod["metadata"]["annotations"]["prometheus.io/path"], timeout=10
        )
        assert scraped.status_code == 200 and "# TYPE" in scraped.text
        shutil.rmtree(tmp_path / model / "1")  # every version gone: nothing to answer with
        with requests.Session() as http:
            wait_for(lambda: version_states(http, server, model) == {1: "END"}, "version 1 END")
        assert probe(server, container["readinessProbe"]) == 404  # out of the Services
        assert probe(server, container["livenessProbe"]) == 200  # but not restarted
