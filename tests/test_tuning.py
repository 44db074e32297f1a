"""scalelab.tuning without training: TF_CONFIG to Keras Tuner's variables, trial logs, rates."""

from __future__ import annotations

import json

import pytest

from scalelab import tuning

CLUSTER = {"chief": ["localhost:7000"], "worker": ["localhost:7001", "host-b:7002"]}


def config(task_type: str, index: int) -> str:
    return json.dumps({"cluster": CLUSTER, "task": {"type": task_type, "index": index}})


@pytest.mark.parametrize(
    ("task", "tuner_id"),
    [(("chief", 0), "chief"), (("worker", 0), "worker0"), (("worker", 1), "worker1")],
)
def test_each_task_gets_its_tuner_id_and_the_chiefs_address_from_tf_config(task, tuner_id):
    assert tuning.oracle_environment(config(*task)) == (
        tuner_id,
        {
            "KERASTUNER_TUNER_ID": tuner_id,
            "KERASTUNER_ORACLE_IP": "127.0.0.1",  # localhost, numerically
            "KERASTUNER_ORACLE_PORT": "7000",
        },
    )


def test_without_a_chief_the_task_searches_alone():
    alone = {"cluster": {"worker": ["localhost:7001"]}, "task": {"type": "worker", "index": 0}}
    assert tuning.oracle_environment(json.dumps(alone)) == (tuning.SINGLE, {})
    assert tuning.oracle_environment(None) == (tuning.SINGLE, {})


def write_log(folder, worker, events):
    with open(folder / f"trials-{worker}.jsonl", "a") as log:
        for event, trial, time, score in events:
            status = "RUNNING" if event == "start" else "COMPLETED"
            line = {"event": event, "trial": trial, "worker": worker, "time": time,
                    "status": status, "score": score, "epochs": 3 if score else None}  # fmt: skip
            log.write(json.dumps(line) + "\n")


def test_trial_log_pairs_starts_with_ends_and_keeps_a_killed_run_as_lost(tmp_path):
    write_log(tmp_path, "worker0", [("start", "1", 10.0, None), ("end", "1", 12.0, 0.9)])
    write_log(tmp_path, "worker1", [("start", "0", 9.0, None)])  # killed: no end
    write_log(tmp_path, "worker1", [("start", "0", 20.0, None), ("end", "0", 23.0, 0.8)])
    runs = tuning.trial_log(tmp_path)
    assert [(r["trial"], r["worker"], r["status"]) for r in runs] == [
        ("0", "worker1", "LOST"),
        ("1", "worker0", "COMPLETED"),
        ("0", "worker1", "COMPLETED"),
    ]
    assert runs[0]["ended"] is None and runs[2]["score"] == 0.8 and runs[2]["epochs"] == 3
    # 2 completed in 14 s (from 9 to 23), the lost run's start included
    assert tuning.trials_per_minute(runs) == pytest.approx(2 / 14 * 60)
    assert [row["best"] for row in tuning.best_so_far(runs)] == [0.9, 0.9]


def test_a_log_where_nothing_ended_says_so():
    with pytest.raises(ValueError, match="No trial in this log ended"):
        tuning.trials_per_minute([{"started": 1.0, "ended": None, "status": "LOST"}])


def test_an_unknown_tuner_is_named_with_the_choices(tmp_path):
    with pytest.raises(ValueError, match="random, bayesian, hyperband"):
        tuning.make_tuner("grid", tmp_path, max_trials=1, epochs=1)
