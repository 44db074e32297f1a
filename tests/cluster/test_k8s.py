"""The Kubernetes examples: every document is valid for Kubernetes (its own schemas, offline;
KServe's InferenceService against KServe's schema), and every pod of a training cluster builds
the TF_CONFIG make_tf_config gives for its task."""

from __future__ import annotations

import functools
import gzip
import json
import subprocess
from pathlib import Path

import pytest

from scalelab.processes.cluster import make_tf_config

yaml = pytest.importorskip("yaml")

K8S = Path(__file__).resolve().parents[2] / "k8s"
MANIFESTS = sorted(K8S.glob("*.yaml"))
KUBERNETES = "1.35.0"  # the release whose API the manifests are written for
# The openAPIV3Schema of KServe's InferenceService CRD (serving.kserve.io/v1beta1), from
# config/crd/full/serving.kserve.io_inferenceservices.yaml of github.com/kserve/kserve at v0.20.0
# (Apache-2.0), as compact JSON, gzipped: Kubernetes validates custom resources with it.
KSERVE = Path(__file__).parent / "schemas" / "kserve-inferenceservice-v1beta1.json.gz"


def closed(schema: dict) -> dict:
    """The schema with unknown fields refused wherever it lists the fields (as kubectl's strict
    field validation does; the API server would drop them silently)."""
    if isinstance(schema, dict):
        schema = {key: closed(value) for key, value in schema.items()}
        if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema.setdefault("additionalProperties", False)
    elif isinstance(schema, list):
        schema = [closed(value) for value in schema]
    return schema


@functools.cache
def inference_service_validator():
    import jsonschema

    return jsonschema.Draft7Validator(closed(json.loads(gzip.decompress(KSERVE.read_bytes()))))


def schema_errors(document: dict) -> str | None:
    """Why the schema for the document's kind refuses it (unknown fields too), or None."""
    import kubernetes_validate

    where = f"{document['kind']} {document['metadata']['name']}"
    if document["apiVersion"] == "serving.kserve.io/v1beta1":
        error = next(inference_service_validator().iter_errors(document), None)
        return f"{where}: {error.message} at {error.json_path}" if error else None
    try:
        kubernetes_validate.validate(document, KUBERNETES, strict=True)
    except kubernetes_validate.ValidationError as error:
        return f"{where}: {error.message}"
    return None


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda path: path.name)
def test_every_document_is_valid_for_kubernetes_unknown_fields_included(manifest):
    documents = list(yaml.safe_load_all(manifest.read_text()))
    errors = [error for document in documents if (error := schema_errors(document))]
    assert not errors, errors


def test_the_schema_check_refuses_a_misspelled_field_and_a_wrong_type():
    job = next(d for d in yaml.safe_load_all((K8S / "mwms.yaml").read_text()) if d["kind"] == "Job")
    assert schema_errors(job) is None
    misspelled = json.loads(json.dumps(job))
    misspelled["spec"]["template"]["spec"]["restartPolicyy"] = "OnFailure"
    assert "'restartPolicyy' was unexpected" in str(schema_errors(misspelled))
    quoted = json.loads(json.dumps(job))
    quoted["spec"]["completions"] = "2"
    assert "is not of type 'integer'" in str(schema_errors(quoted))


def test_kserves_schema_refuses_a_misspelled_field_and_a_metric_it_does_not_know():
    (service,) = yaml.safe_load_all((K8S / "kserve.yaml").read_text())
    assert service["kind"] == "InferenceService" and schema_errors(service) is None
    misspelled = json.loads(json.dumps(service))
    model = misspelled["spec"]["predictor"]["model"]
    model["storageURI"] = model.pop("storageUri")
    assert "'storageURI' was unexpected" in str(schema_errors(misspelled))
    gpu = json.loads(json.dumps(service))
    gpu["spec"]["predictor"]["scaleMetric"] = "gpu"
    assert "'gpu' is not one of" in str(schema_errors(gpu))


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
