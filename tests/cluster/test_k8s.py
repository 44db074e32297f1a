"""The Kubernetes examples: every document is valid for Kubernetes (its own schemas, offline),
and every pod of a training cluster builds the TF_CONFIG make_tf_config gives for its task."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from scalelab.processes.cluster import make_tf_config

yaml = pytest.importorskip("yaml")

MANIFESTS = sorted((Path(__file__).resolve().parents[2] / "k8s").glob("*.yaml"))
KUBERNETES = "1.35.0"  # the release whose API the manifests are written for


def schema_errors(document: dict) -> str | None:
    """Why Kubernetes' schema for the document's kind refuses it (unknown fields too), or None."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(document, KUBERNETES, strict=True)
    except kubernetes_validate.ValidationError as error:
        return f"{document['kind']} {document['metadata']['name']}: {error.message}"
    return None


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda path: path.name)
def test_every_document_is_valid_for_kubernetes_unknown_fields_included(manifest):
    documents = list(yaml.safe_load_all(manifest.read_text()))
    errors = [error for document in documents if (error := schema_errors(document))]
    assert not errors, errors


def test_the_schema_check_refuses_a_misspelled_field_and_a_wrong_type():
    job = next(d for d in yaml.safe_load_all(MANIFESTS[0].read_text()) if d["kind"] == "Job")
    assert schema_errors(job) is None
    misspelled = json.loads(json.dumps(job))
    misspelled["spec"]["template"]["spec"]["restartPolicyy"] = "OnFailure"
    assert "'restartPolicyy' was unexpected" in str(schema_errors(misspelled))
    quoted = json.loads(json.dumps(job))
    quoted["spec"]["completions"] = "2"
    assert "is not of type 'integer'" in str(schema_errors(quoted))


def pods(workload: dict) -> list[tuple[str, dict[str, str]]]:
    """(DNS name, environment Kubernetes adds) of each pod of a Job or StatefulSet."""
    name, spec = workload["metadata"]["name"], workload["spec"]
    if workload["kind"] == "Job":  # Indexed: hostname <job>-<index> in the pod's subdomain
        domain, count = spec["template"]["spec"]["subdomain"], spec["completions"]
        extra = [{"JOB_COMPLETION_INDEX": str(i)} for i in range(count)]
    else:  # StatefulSet: hostname <name>-<ordinal> in its service
        domain, count = spec["serviceName"], spec["replicas"]
        extra = [{} for _ in range(count)]
    return [(f"{name}-{i}.{domain}", {"HOSTNAME": f"{name}-{i}", **extra[i]}) for i in range(count)]


@pytest.mark.parametrize(
    "manifest", [m for m in MANIFESTS if "TF_CLUSTER" in m.read_text()], ids=lambda path: path.name
)
def test_every_pod_builds_the_tf_config_of_its_task_and_is_reachable_by_name(manifest):
    documents = list(yaml.safe_load_all(manifest.read_text()))
    config_maps = {d["metadata"]["name"]: d["data"] for d in documents if d["kind"] == "ConfigMap"}
    services = {d["metadata"]["name"]: d["spec"] for d in documents if d["kind"] == "Service"}
    covered = set()
    for workload in (d for d in documents if d["kind"] in ("Job", "StatefulSet")):
        template = workload["spec"]["template"]
        (container,) = template["spec"]["containers"]
        env = {}
        for source in container.get("envFrom", []):
            env |= config_maps[source["configMapRef"]["name"]]
        env |= {variable["name"]: variable["value"] for variable in container["env"]}
        cluster, task_type = json.loads(env["TF_CLUSTER"]), env["TASK_TYPE"]
        port = container["ports"][0]["containerPort"]
        names = pods(workload)
        assert cluster[task_type] == [f"{host}:{port}" for host, _ in names]
        service = services[names[0][0].split(".")[1]]
        assert service["clusterIP"] == "None"  # headless: one DNS name per pod
        labels = {**template.get("metadata", {}).get("labels", {})}
        if workload["kind"] == "Job":
            labels["job-name"] = workload["metadata"]["name"]  # added by the Job controller
        assert service["selector"].items() <= labels.items()
        assert container["args"][:4] == ["python", "-m", "scalelab", "cluster"]
        for index, (_, pod_env) in enumerate(names):
            built = subprocess.run(
                [*container["command"], "printenv", "TF_CONFIG"],
                env={"PATH": "/usr/bin:/bin", **env, **pod_env},
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            assert json.loads(built) == make_tf_config(cluster, task_type, index)
        covered.add(task_type)
    assert covered == set(cluster)  # every task type of the cluster has pods
