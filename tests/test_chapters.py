"""Each solution runs once (papermill, fast mode), and that one kernel then proves three things:
the notebook produces what it teaches, its graders accept every correct variant answer and reject
every listed mistake (tests/chapters/<chapter>.py), and the numbers its prose quotes are the run's.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import shutil
import time
from pathlib import Path
from types import ModuleType
from unittest import mock

import nbformat
import papermill
import papermill.engines
import psutil
import pytest
from conftest import CHAPTERS, REPO
from nbclient.exceptions import CellExecutionError
from papermill.clientwrap import PapermillNotebookClient

from scalelab import grading

EXECUTED = REPO / "build" / "executed"
VARIANTS_FILE = "variants.json"
CELL_TIMEOUT = 600  # seconds: a cell that hangs fails the test, naming the cell, instead of CI


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
    assert min(results["accuracies"].values()) > 0.85, results["accuracies"]  # both answer well
    assert results["promoted_labels"] == {"stable": 2, "canary": 2}  # moved by editing labels
    assert results["labels_after_refused_move"] == {"stable": 2, "canary": 2}  # refused: kept
    starts = results["first_request_ms"]
    assert [len(starts[kind]) for kind in ("no warm-up", "warm-up")] == [3, 3], starts
    warm = workdir / "exports" / "warm" / "digits" / "0001" / "assets.extra"
    assert (warm / "tf_serving_warmup_requests").is_file()


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
    # Compressed requests, as counted by netem.tap on their way to the server.
    wire = {
        (r["model"], r["request"]): r["bytes to the server"] for r in results["bytes_to_the_server"]
    }
    for api in ("REST", "gRPC"):
        assert wire[("digits", f"{api} gzip")] < wire[("digits", api)] / 2, wire
    # Parts timed inside their request: each part within its whole, shares never above 1.
    for name, requests in results["request_parts_photo"].items():
        assert len(requests) >= 3, name
        for parts in requests:
            pieces = parts["encode ms"] + parts["round trip ms"] + parts["decode ms"]
            assert abs(pieces - parts["whole ms"]) < 1e-6 * parts["whole ms"] + 1e-3, parts
    assert 0 < results["json_encode_share_of_rest_request"]["median"] <= 1
    for row in steps:  # every part with its spread over the repeats
        assert all(
            row["spread"][part]["q25"] <= row["spread"][part]["q75"] for part in row["spread"]
        )
    # The load generator's rows: every request answered, as many as asked for.
    for row in results["concurrency"]:
        assert row["errors"] == 0 and row["requests"] >= 390, row


def check_04_tflite(results: dict, workdir: Path) -> None:
    assert results["float_tflite_max_abs_diff"] < 1e-5
    assert results["op_counts"]["tflite"] < results["op_counts"]["savedmodel"] / 5
    sizes = {row["variant"]: row["KB"] for row in results["variants"]}
    assert sizes["TFLite int8"] < 0.35 * sizes["TFLite float"], sizes  # bytes, not time
    assert sizes["TFLite float16"] < 0.6 * sizes["TFLite float"], sizes
    assert all(row["accuracy"] > 0.7 for row in results["variants"]), results["variants"]
    qat = results["qat"]  # the learner's QAT program, run in a tf_keras child process
    assert qat["float"] > 0.9 and qat["8-bit post-training"] > qat["float"] - 0.02, qat
    assert qat["2-bit quantization-aware"] > qat["2-bit post-training"], qat
    assert (workdir / "exports" / "digits_float.tflite").is_file()


def check_05_distribution(results: dict, workdir: Path) -> None:
    assert results["data_parallel_max_gradient_difference"] < 1e-5
    assert results["model_parallel_bytes_per_step"] > 0
    assert [row["replicas"] for row in results["strategies"]] == [1, 2, 2]
    assert results["mwms_same_weights"] is True
    assert all(1 <= epoch < 3 for epoch in results["fault_tolerance"].values()), results
    assert all(n >= 1 for n in results["fault_tolerance_restarts"].values()), results
    assert results["ps_tasks_holding_variables"] == ["ps:0", "ps:1"]
    assert [row["workers"] for row in results["scaling"]] == [1, 2, 3]


def check_06_tuning(results: dict, workdir: Path) -> None:
    assert [row["search"] for row in results["single_process"]] == [
        "random",
        "bayesian",
        "hyperband",
    ]
    hyperband, random_search = results["single_process"][2], results["single_process"][0]
    assert (
        hyperband["epochs trained"]
        < hyperband["trials"] * random_search["epochs trained"] / random_search["trials"]
    )
    # The search really ran across processes: two workers completed trials; none is left running.
    by_worker = results["distributed_trials_by_worker"]
    assert len(by_worker) >= 2 and all(by_worker.values()), by_worker
    assert sum(map(len, by_worker.values())) == 4, by_worker
    # ... with the notebook's own functions, shipped by source beside the task function
    program = (workdir / "tuning" / "distributed" / "logs" / "search_task.py").read_text()
    for name in ("build_model(hp)", "make_tuner(kind,", "run_search(tuner,", "search_task("):
        assert f"def {name}" in program, name
    death = results["worker_death"]
    assert death["lost_by"] == death["victim"].replace(":", "") and death["restarts"] == 1, death
    assert death["rerun_by"] == [death["lost_by"]] and death["final_statuses"] == ["COMPLETED"], (
        death
    )
    assert results["served_matches_keras"] is True and results["tuned_test_accuracy"] > 0.8
    assert (workdir / "models" / "digits_tuned" / "0001" / "saved_model.pb").is_file()
    alive = [pid for pid in results["cluster_pids"] if pid and psutil.pid_exists(pid)]
    alive = [pid for pid in alive if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"cluster processes still running: {alive}"
    task = f"--directory={workdir}"  # what every task of the notebook's searches was started with
    leftovers = [
        p.pid for p in psutil.process_iter(["cmdline"]) if task in " ".join(p.info["cmdline"] or [])
    ]
    assert not leftovers, f"search tasks still running: {leftovers}"


CHECKS = {
    "01_savedmodel": check_01_savedmodel,
    "02_tf_serving": check_02_tf_serving,
    "03_rest_vs_grpc": check_03_rest_vs_grpc,
    "04_tflite": check_04_tflite,
    "05_distribution": check_05_distribution,
    "06_tuning": check_06_tuning,
}


def chapter_data(chapter: str) -> ModuleType:
    """tests/chapters/<chapter>.py: CORRECT and WRONG answers per exercise, CLAIMS of its prose."""
    path = REPO / "tests" / "chapters" / f"{chapter}.py"
    spec = importlib.util.spec_from_file_location(f"chapter_{chapter}", path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def code_exercises(chapter: str) -> dict[str, dict[str, str]]:
    """{grade_id: {"solution", "test", "stub"}} sources of every auto-graded exercise."""
    name = f"{chapter}.ipynb"
    cells = json.loads((REPO / "solutions" / chapter / name).read_text())["cells"]
    by_id = {
        meta["grade_id"]: "".join(cell["source"])
        for cell in cells
        if (meta := cell["metadata"].get("nbgrader", {})).get("grade_id")
    }
    stubs = grading.exercise_stubs(REPO / "notebooks" / chapter / name)
    return {
        grade_id: {
            "solution": by_id[grade_id],
            "test": by_id[grading.test_id(grade_id)],
            "stub": stub,
        }
        for grade_id, stub in stubs.items()
    }


def bound_names(source: str) -> set[str]:
    """Names a cell binds at top level: defs, classes, assignment targets."""
    from IPython.core.inputtransformer2 import TransformerManager

    names = set()
    for node in ast.parse(TransformerManager().transform_cell(source)).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return names


def cases(chapter: str, grade_id: str) -> list[tuple[str, str, bool]]:
    """(description, source, should pass) of every answer to grade for one exercise."""
    data = chapter_data(chapter)
    stub = code_exercises(chapter)[grade_id]["stub"]
    return [
        ("unanswered (as released)", stub, False),
        *((name, source, True) for name, source in data.CORRECT.get(grade_id, {}).items()),
        *((name, source, False) for name, source in data.WRONG.get(grade_id, {}).items()),
    ]


class _GradeVariantsAfterRun(PapermillNotebookClient):
    """Papermill's client, which after a successful run grades the variants in the same kernel."""

    chapter: str | None = None

    def papermill_execute_cells(self) -> None:
        super().papermill_execute_cells()
        if self.chapter and not any(
            cell.metadata.get("papermill", {}).get("exception") for cell in self.nb.cells
        ):
            scratch = nbformat.v4.new_code_cell()
            self.nb.cells.append(scratch)
            try:
                outcomes = self.grade_variants(len(self.nb.cells) - 1)
            finally:
                self.nb.cells.pop()
            (Path.cwd() / VARIANTS_FILE).write_text(json.dumps(outcomes, indent=1))

    def run(self, source: str, index: int) -> str | None:
        """Run `source` in the notebook's kernel; the error it raised, or None."""
        try:
            self.execute_cell(nbformat.v4.new_code_cell(source), index)
        except CellExecutionError as error:
            return f"{error.ename}: {error.evalue}"[:300] or "error"
        return None

    def grade_variants(self, index: int) -> list[dict]:
        outcomes = []
        data = chapter_data(self.chapter)
        # A chapter whose tests need what its last cells stopped (a server) starts it again here.
        before = self.run(getattr(data, "BEFORE_VARIANTS", ""), index)
        assert before is None, f"BEFORE_VARIANTS failed: {before}"
        for grade_id, sources in code_exercises(self.chapter).items():
            names = sorted(bound_names(sources["solution"]))
            forget = f"for _name in {names}: globals().pop(_name, None)"
            for name, source, should_pass in cases(self.chapter, grade_id):
                started = time.perf_counter()
                self.run(forget, index)  # as in a fresh kernel: no value left by the solution
                self.run(source, index)
                error = self.run(sources["test"], index)
                outcomes.append(
                    {
                        "exercise": grade_id,
                        "answer": name,
                        "should_pass": should_pass,
                        "error": error,
                        "seconds": round(time.perf_counter() - started, 2),
                    }
                )
            restored = self.run(sources["solution"], index) or self.run(sources["test"], index)
            assert restored is None, (
                f"{grade_id}: the solution fails after its variants: {restored}"
            )
        self.run(getattr(data, "AFTER_VARIANTS", ""), index)
        return outcomes


class _GradingEngine(papermill.engines.NBClientEngine):
    @classmethod
    def execute_managed_notebook(cls, *args, **kwargs):  # type: ignore[no-untyped-def]
        with mock.patch.object(
            papermill.engines, "PapermillNotebookClient", _GradeVariantsAfterRun
        ):
            return super().execute_managed_notebook(*args, **kwargs)


papermill.engines.papermill_engines.register("scalelab-variants", _GradingEngine)


def execute(chapter: str) -> tuple[dict, Path, float]:
    """Execute the chapter's solution and grade its variants: (results, work folder, seconds)."""
    workdir = EXECUTED / chapter
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    started = time.perf_counter()
    _GradeVariantsAfterRun.chapter = chapter
    try:
        papermill.execute_notebook(
            REPO / "solutions" / chapter / f"{chapter}.ipynb",
            workdir / f"{chapter}.ipynb",
            parameters={"FAST": True},
            cwd=workdir,
            kernel_name="python3",
            progress_bar=False,
            engine_name="scalelab-variants",
            execution_timeout=CELL_TIMEOUT,
        )
    finally:
        _GradeVariantsAfterRun.chapter = None
    results = json.loads((workdir / "results.json").read_text())
    return results, workdir, time.perf_counter() - started


def test_every_chapter_has_output_checks_and_answer_variants():
    assert sorted(CHECKS) == CHAPTERS
    for chapter in CHAPTERS:
        data = chapter_data(chapter)
        for grade_id in code_exercises(chapter):
            assert data.WRONG.get(grade_id), f"{chapter}: no wrong answer to {grade_id} is tried"
            if grade_id.startswith("ex_"):
                assert len(data.CORRECT.get(grade_id, {})) >= 2, f"{chapter}: {grade_id}"
        unknown = (set(data.CORRECT) | set(data.WRONG)) - set(code_exercises(chapter))
        assert not unknown, f"{chapter}: variants for no exercise: {unknown}"


@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_solution_runs_records_its_results_grades_every_variant_fairly_and_quotes_its_numbers(
    chapter, subtests, record_property, tmp_path
):
    """One execution per chapter; each thing it proves is a subtest that fails on its own."""
    results, workdir, seconds = execute(chapter)
    record_property("executed_notebook", chapter)
    record_property("summary", f"{chapter} executed in {seconds:.0f} s (fast mode, with variants)")
    with subtests.test("real nbgrader gives the executed solution full marks"):
        root = tmp_path / "course"
        grading.course_copy(REPO, chapter, root)
        score = grading.grade_outputs(root, chapter, "solution", workdir / f"{chapter}.ipynb")
        record_property("summary", f"{chapter} round trip, solution: {score}")
        assert score.points == score.max_points > 0, score
    with subtests.test("what the notebook recorded, and nothing on stderr"):
        CHECKS[chapter](results, workdir)
        notebook = json.loads((workdir / f"{chapter}.ipynb").read_text())
        stderr = [
            "".join(output["text"])
            for cell in notebook["cells"]
            for output in cell.get("outputs", [])
            if output.get("name") == "stderr"
        ]
        assert stderr == [], f"the notebook wrote to stderr: {stderr[:2]}"
    outcomes = json.loads((workdir / VARIANTS_FILE).read_text())
    for grade_id in code_exercises(chapter):
        with subtests.test(f"graders of {grade_id} accept every correct answer, reject mistakes"):
            mine = [o for o in outcomes if o["exercise"] == grade_id]
            assert len(mine) == len(cases(chapter, grade_id))
            unfair = [
                f"{o['answer']!r}: "
                + (f"rejected ({o['error']})" if o["should_pass"] else "accepted")
                for o in mine
                if (o["error"] is None) != o["should_pass"]
            ]
            assert not unfair, f"{grade_id} graded unfairly: " + "; ".join(unfair)
    with subtests.test("numbers quoted in the prose are the run's"):
        notebook = json.loads((REPO / "solutions" / chapter / f"{chapter}.ipynb").read_text())
        prose = "\n".join(
            "".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "markdown"
        )
        wrong = []
        for quote, (value, low, high) in chapter_data(chapter).CLAIMS.items():
            assert quote in prose, f"{chapter}: the prose no longer says {quote!r}: update CLAIMS"
            if not low <= value(results) <= high:
                wrong.append(
                    f"{quote!r}: the run gives {value(results):.3g}, not in [{low}, {high}]"
                )
        assert not wrong, f"{chapter}: " + "; ".join(wrong)
