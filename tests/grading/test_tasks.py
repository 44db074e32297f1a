"""scalelab.grading.tasks' plumbing, without nbgrader: what crosses between a worker and the
instructor's process."""

from __future__ import annotations

from pathlib import Path

from scalelab.grading import tasks


def test_unpack_keeps_files_and_folders_and_drops_links_a_kernel_may_have_left(tmp_path: Path):
    packed = tmp_path / "packed"
    (packed / "sub").mkdir(parents=True)
    (packed / "sub" / "graded.ipynb").write_text("{}")
    (packed / "passwd").symlink_to("/etc/passwd")
    (packed / "up").symlink_to("..")
    out = tmp_path / "out"
    tasks.unpack(tasks.pack(packed), out)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == ["sub", "sub/graded.ipynb"]


def test_an_outcome_survives_its_json_round_trip(tmp_path: Path):
    outcome = tasks.Outcome("ada", b"\x00\x1ftar", "report\n", "", "pod grade-0", 12.5)
    tasks.save_outcome(outcome, tmp_path / "outcomes" / "ada.json")
    assert tasks.load_outcome(tmp_path / "outcomes" / "ada.json") == outcome
    assert [p.name for p in (tmp_path / "outcomes").iterdir()] == ["ada.json"]  # no partial left
