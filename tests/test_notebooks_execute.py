"""Every solution notebook runs headlessly in fast mode, and produces what it teaches."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import papermill
import pytest
from conftest import CHAPTERS, REPO

EXECUTED = REPO / "build" / "executed"


def check_01_savedmodel(results: dict, workdir: Path) -> None:
    assert results["keras_test_accuracy"] > 0.85
    assert results["savedmodel_max_abs_diff"] < 1e-6
    assert results["cli_mentions_uint8_input"] is True
    assert results["naive_export_runs_in_saved_model_cli"] is False  # the lesson still holds
    assert results["versions"] == ["0001", "0002"]
    for version in results["versions"]:
        assert (workdir / "models" / "digits" / version / "saved_model.pb").is_file()
    assert (workdir / "exports" / "custom_export" / "assets" / "class_names.txt").is_file()


def check_02_tf_serving(results: dict, workdir: Path) -> None:
    naive = results["naive_copy"]  # the trap, as TF Serving springs it: loaded without variables
    assert naive["states"] == {"2": "AVAILABLE", "1": "END"}, naive
    assert naive["failed"] > 0 and "variable" in naive["error"].lower(), naive
    swap = results["hot_swap"]
    assert swap["failed"] == 0 and swap["requests"] > 50, swap
    assert 0 < results["canary_share"] < 0.3
    for states in results["two_servers"].values():
        assert states["3"] == "AVAILABLE", results["two_servers"]
    assert [row["errors"] for row in results["batching"]] == [0, 0]
    assert (workdir / "models" / "digits" / "0003" / "saved_model.pb").is_file()
    assert (workdir / "models" / "retired" / "digits-2" / "saved_model.pb").is_file()


def check_03_rest_vs_grpc(results: dict, workdir: Path) -> None:
    # What was measured, not how fast: timings belong to the benchmark, not to tests.
    assert {row["protocol"] for row in results["single_instance_ms"]} == {"REST", "gRPC"}
    sizes = {
        (r["encoding"], r["batch size"]): r["bytes/instance"]
        for r in results["payload_bytes_per_instance"]
    }
    assert sizes[("photos json_row", 1)] > 3 * sizes[("photos protobuf", 1)]  # bytes, not time
    for sweep in ("digits_sweep", "photos_sweep", "concurrency"):
        assert results[sweep] and all(row["errors"] == 0 for row in results[sweep]), sweep
    protocols = {row["protocol"] for row in results["digits_sweep"]}
    assert protocols == {"REST row", "REST columnar", "REST gzip", "gRPC"}
    assert results["grpc_over_rest_at_largest_batch"] > 0
    server = results["server"]  # every figure names it
    assert server["backend"] in {"local", "docker", "binary", "remote"}, server
    assert server["description"].startswith(f"{server['backend']} backend: "), server
    # Where the time goes: every protocol at every batch size, each part measured, bytes sane.
    steps = results["time_breakdown"]
    assert {(r["protocol"], r["batch size"]) for r in steps} == {
        (p, b) for p in protocols for b in (1, 256, 1024)
    }, steps
    parts = ("encode ms", "transfer ms", "server ms", "decode ms", "total ms", "server share")
    for row in steps:
        assert row["errors"] == 0 and row["repeats"] >= 3, row
        assert all(row[part] >= 0 for part in parts), row
        assert row["request bytes"] > 0 and row["response bytes"] > 0, row
    request = {(r["protocol"], r["batch size"]): r["request bytes"] for r in steps}
    for size in (256, 1024):  # bytes, not time
        assert request[("REST gzip", size)] < request[("REST row", size)] / 2
        assert request[("gRPC", size)] < request[("REST row", size)] / 2
    # On a real network: loopback and at least one throttled link, every protocol, no failures.
    for key, sizes in (("link_sweep_digits", {1, 1024}), ("link_sweep_photos", {1})):
        rows = results[key]
        links = {row["link"] for row in rows}
        assert "loopback" in links and any("Mbit/s" in link for link in links), links
        assert {(r["link"], r["protocol"], r["batch size"]) for r in rows} >= {
            (link, p, b) for link in links for p in ("REST row", "REST gzip", "gRPC") for b in sizes
        }, key
        assert all(row["errors"] == 0 and row["requests"] >= 2 for row in rows), key
        sent = {(r["link"], r["protocol"]): r["bytes sent/instance"] for r in rows}
        assert sent[("loopback", "REST gzip")] < sent[("loopback", "REST row")], key
    assert len(results["link_ratios"]) >= 3 * 2, results["link_ratios"]


def check_04_tflite(results: dict, workdir: Path) -> None:
    assert results["float_tflite_max_abs_diff"] < 1e-5
    assert results["op_counts"]["tflite"] < results["op_counts"]["savedmodel"] / 5
    sizes = {row["variant"]: row["KB"] for row in results["variants"]}
    assert sizes["TFLite int8"] < 0.35 * sizes["TFLite float"], sizes  # bytes, not time
    assert sizes["TFLite float16"] < 0.6 * sizes["TFLite float"], sizes
    assert all(row["accuracy"] > 0.7 for row in results["variants"]), results["variants"]
    assert results["choice"] in sizes
    assert results["qat"]["keras"].startswith("tf_keras")
    assert min(results["qat"][k] for k in ("ptq_int8_accuracy", "qat_int8_accuracy")) > 0.5
    assert (workdir / "exports" / "digits_float.tflite").is_file()


def check_05_distribution(results: dict, workdir: Path) -> None:
    assert results["data_parallel_max_gradient_difference"] < 1e-5
    assert results["model_parallel_bytes_per_step"] > 0
    assert [row["replicas"] for row in results["strategies"]] == [1, 2, 2]
    assert results["mwms_same_weights"] is True
    assert all(2 <= epoch < 3 for epoch in results["fault_tolerance"].values()), results
    assert results["ps_tasks_holding_variables"] == ["ps:0", "ps:1"]
    assert [row["workers"] for row in results["scaling"]] == [1, 2, 3]


CHECKS = {
    "01_savedmodel": check_01_savedmodel,
    "02_tf_serving": check_02_tf_serving,
    "03_rest_vs_grpc": check_03_rest_vs_grpc,
    "04_tflite": check_04_tflite,
    "05_distribution": check_05_distribution,
}


def test_every_chapter_has_output_checks():
    assert sorted(CHECKS) == CHAPTERS


@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_solution_runs_in_fast_mode_and_records_its_results(chapter, record_property):
    workdir = EXECUTED / chapter
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    started = time.perf_counter()
    papermill.execute_notebook(
        REPO / "solutions" / chapter / f"{chapter}.ipynb",
        workdir / f"{chapter}.ipynb",
        parameters={"FAST": True},
        cwd=workdir,
        kernel_name="python3",
        progress_bar=False,
    )
    seconds = time.perf_counter() - started
    record_property("executed_notebook", chapter)
    record_property("summary", f"{chapter} executed in {seconds:.0f} s (fast mode)")
    results = json.loads((workdir / "results.json").read_text())
    CHECKS[chapter](results, workdir)
    executed = json.loads((workdir / f"{chapter}.ipynb").read_text())
    stderr = [
        "".join(output["text"])
        for cell in executed["cells"]
        for output in cell.get("outputs", [])
        if output.get("name") == "stderr"
    ]
    assert stderr == [], f"the notebook wrote to stderr: {stderr[:2]}"
