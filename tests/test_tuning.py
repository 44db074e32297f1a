"""scalelab.training.tuning without training: TF_CONFIG to Keras Tuner's variables, trial
logs, rates."""

from __future__ import annotations

import json

import pytest

from scalelab.training import tuning

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


def test_parallel_fraction_is_the_share_of_wall_time_with_two_runs_in_progress():
    runs = [
        {"started": 0.0, "ended": 10.0, "status": "COMPLETED"},
        {"started": 5.0, "ended": 20.0, "status": "COMPLETED"},  # overlaps from 5 to 10
        {"started": 3.0, "ended": None, "status": "LOST"},  # a killed run is not counted
    ]
    assert tuning.parallel_fraction(runs) == pytest.approx(5 / 20)


def test_best_trial_reads_the_chiefs_record_without_hyperbands_bookkeeping(tmp_path):
    for trial, score in (("0", 0.5), ("1", 0.9), ("2", None)):
        folder = tmp_path / "chief" / "any_project" / f"trial_{trial}"
        folder.mkdir(parents=True)
        values = {"units": int(trial), "tuner/epochs": 3}
        trial_json = {"trial_id": trial, "status": "COMPLETED", "score": score,
                      "hyperparameters": {"values": values}}  # fmt: skip
        (folder / "trial.json").write_text(json.dumps(trial_json))
    assert tuning.best_trial(tmp_path) == {"units": 1}
    assert [row["trial"] for row in tuning.oracle_view(tmp_path)] == ["0", "1", "2"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # threading.currentThread in TF
def test_log_trials_makes_any_tuner_log_its_trials_and_keeps_its_class(tmp_path):
    keras_tuner = pytest.importorskip("keras_tuner")

    class ScoreOnly(keras_tuner.Tuner):
        def run_trial(self, trial, *args, **kwargs):
            return {"score": trial.hyperparameters.get("x")}

    space = keras_tuner.HyperParameters()
    space.Int("x", 0, 2)
    oracle = keras_tuner.oracles.GridSearchOracle(
        objective=keras_tuner.Objective("score", "max"), max_trials=3, hyperparameters=space
    )
    tuner = ScoreOnly(oracle=oracle, directory=str(tmp_path / "t"))
    assert tuning.log_trials(tuner, tmp_path) is tuner and isinstance(tuner, ScoreOnly)
    tuner.search(verbose=0)
    runs = tuning.trial_log(tmp_path)
    assert [(run["worker"], run["status"], run["score"]) for run in runs] == [
        ("tuner0", "COMPLETED", 0), ("tuner0", "COMPLETED", 1), ("tuner0", "COMPLETED", 2)
    ]  # fmt: skip
    assert tuner.search_ended


def test_start_search_names_the_functions_it_needs(tmp_path):
    def build_model(hp):
        return hp

    with pytest.raises(ValueError, match="make_tuner, run_search"):
        tuning.start_search(tmp_path, [build_model])
