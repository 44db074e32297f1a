"""TF_CONFIG, ports and launch arguments: what TensorFlow reads, and clear errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from scalelab.bench.strategies import format_table
from scalelab.processes.children import free_ports
from scalelab.processes.cluster import (
    local_cluster,
    make_tf_config,
    start_cluster,
    tf_config_json,
)

CLUSTER = {
    "chief": ["host0:2222"],
    "worker": ["host1:2222", "host2:2222"],
    "ps": ["host3:2222"],
}


def test_tf_config_holds_the_whole_cluster_and_this_task():
    config = make_tf_config(CLUSTER, "worker", 1)
    assert config == {"cluster": CLUSTER, "task": {"type": "worker", "index": 1}}
    assert json.loads(tf_config_json(CLUSTER, "worker", 1)) == config


@pytest.mark.parametrize(
    ("cluster", "task_type", "index", "message"),
    [
        ({}, "worker", 0, "non-empty dict"),
        ({"master": ["h:1"]}, "master", 0, "Unknown task type 'master'"),
        ({"worker": "h:1"}, "worker", 0, "non-empty list"),
        ({"worker": []}, "worker", 0, "non-empty list"),
        ({"worker": ["h"]}, "worker", 0, "'h' in cluster\\['worker'\\] is not 'host:port'"),
        ({"worker": ["h:70000"]}, "worker", 0, "is not 'host:port'"),
        ({"worker": ["h:1", "h:1"]}, "worker", 0, "h:1 appears twice"),
        ({"chief": ["a:1", "b:1"]}, "chief", 0, "at most one chief"),
        (CLUSTER, "evaluator", 0, "'evaluator' is not in the cluster, which has chief, worker, ps"),
        (CLUSTER, "worker", 2, "has 2 worker task\\(s\\), so use 0..1"),
        (CLUSTER, "worker", -1, "Index -1 is out of range"),
        (CLUSTER, "worker", True, "Index True is out of range"),
    ],
)
def test_bad_cluster_or_task_raises_value_error_saying_what_is_wrong(
    cluster, task_type, index, message
):
    with pytest.raises(ValueError, match=message):
        make_tf_config(cluster, task_type, index)


def test_free_ports_are_distinct_and_bindable():
    ports = free_ports(5)
    assert len(set(ports)) == 5 and all(0 < port < 65536 for port in ports)
    with pytest.raises(ValueError, match="positive int"):
        free_ports(0)


def test_local_cluster_lists_only_the_task_types_asked_for():
    cluster = local_cluster(workers=2, ps=1, chief=True)
    assert {kind: len(addresses) for kind, addresses in cluster.items()} == {
        "chief": 1,
        "worker": 2,
        "ps": 1,
    }
    assert all(a.startswith("localhost:") for addresses in cluster.values() for a in addresses)
    assert list(local_cluster(workers=2)) == ["worker"]


@pytest.mark.parametrize(
    ("program", "options", "error", "message"),
    [
        ("scalelab", {"ps": 1}, ValueError, "needs chief=True"),
        ("scalelab", {"workers": 0}, ValueError, "at least one task"),
        ("missing.py", {}, FileNotFoundError, "No script"),
        ("not a module", {}, ValueError, "neither a .py script nor a module"),
    ],
)
def test_start_cluster_refuses_bad_arguments_before_starting_anything(
    program, options, error, message
):
    with pytest.raises(error, match=message):
        start_cluster(program, **options)


def test_benchmark_table_has_one_line_per_run():
    rows = [
        {"strategy": "none", "keras": "3.15.1", "api": "ctl", "replicas": 1, "steps_per_s": 812.3},
        {"strategy": "mwms", "keras": "2.21.0", "api": "fit", "replicas": 2, "steps_per_s": 51.0},
    ]
    lines = format_table(rows).splitlines()
    assert len(lines) == 3 and "steps_per_s" in lines[0]
    assert lines[1].split()[:3] == ["none", "3.15.1", "ctl"] and lines[2].endswith("51.0")
    assert len({len(line) for line in lines}) == 1  # aligned columns


def test_command_line_lists_its_cluster_tasks():
    shown = subprocess.run(
        [sys.executable, "-m", "scalelab", "cluster", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "train" in shown.stdout and "tune" in shown.stdout
