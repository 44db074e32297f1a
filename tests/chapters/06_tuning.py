"""Chapter 6's checks: what its executed solution must show (check), the answers its
graders must accept (CORRECT) or reject (WRONG), and the numbers its prose quotes (CLAIMS).

Each variant is the whole source of an exercise cell, written as a student would write it.
"""

# ruff: noqa: E501

import json
from pathlib import Path

import psutil


def check(results: dict, workdir: Path) -> None:
    """What the executed solution recorded (results.json) and left in its work folder."""
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


def _space(body: str, imports: str = "    import keras\n\n") -> str:
    """Exercise 1's cell with `body` (indented 4 spaces) as the function's body."""
    return f'''def build_model(hp):
    """A compiled digits classifier whose shape and optimizer come from `hp`."""
{imports}{body}'''


def _tuner(body: str) -> str:
    return f"def make_tuner(kind, build_model, directory, max_trials, epochs):\n{body}"


def _search(body: str) -> str:
    return f"def run_search(tuner, x, y, x_valid, y_valid, epochs):\n{body}"


def _solution(grade_id: str) -> str:
    """The solution cell's source, without nbgrader's markers."""
    notebook = Path(__file__).resolve().parents[2] / "solutions/06_tuning/06_tuning.ipynb"
    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == grade_id:
            lines = "".join(cell["source"]).splitlines(keepends=True)
            return "".join(line for line in lines if "### " not in line)
    raise KeyError(grade_id)


_TUNER_SOLUTION = _solution("ex_06_tuner")
_SEARCH_SOLUTION = _solution("ex_06_search")
_SOLUTION_SPACE = """    units = hp.Int("units", 16, 128, step=16)
    layers = hp.Int("layers", 1, 3)
    dropout = hp.Float("dropout", 0.0, 0.5, step=0.1)
    learning_rate = hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")
    model = keras.Sequential([keras.Input((8, 8)), keras.layers.Flatten()])
    for _ in range(layers):
        model.add(keras.layers.Dense(units, activation="relu"))
        model.add(keras.layers.Dropout(dropout))
    model.add(keras.layers.Dense(10, activation="softmax"))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
"""


def _space_with(old: str, new: str) -> str:
    assert old in _SOLUTION_SPACE, old
    return _space(_SOLUTION_SPACE.replace(old, new))


# grade_id of the solution cell -> {short description: full replacement source of that cell}
CORRECT = {
    "ex_06_space": {
        "functional API, Choice for units, continuous dropout": _space("""    inputs = keras.Input(shape=(8, 8))
    x = keras.layers.Reshape((64,))(inputs)
    n_layers = hp.Int("layers", min_value=1, max_value=3)
    width = hp.Choice("units", [16, 32, 48, 64, 80, 96, 112, 128])
    rate = hp.Float("dropout", min_value=0.0, max_value=0.5)
    for i in range(n_layers):
        x = keras.layers.Dense(width, activation="relu", name=f"hidden_{i}")(x)
        x = keras.layers.Dropout(rate)(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    lr = hp.Float("learning_rate", min_value=0.0001, max_value=0.01, sampling="log")
    model.compile(keras.optimizers.Adam(learning_rate=lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
"""),
        "a list of layers, a metric object named accuracy, a loss object": _space("""    layer_list = [keras.layers.Input((8, 8)), keras.layers.Flatten()]
    for _ in range(hp.Int("layers", 1, 3)):
        layer_list.append(keras.layers.Dense(hp.Int("units", 16, 128, 16), "relu"))
        layer_list.append(keras.layers.Dropout(hp.Float("dropout", 0, 0.5, 0.1)))
    layer_list.append(keras.layers.Dense(10))
    layer_list.append(keras.layers.Softmax())
    model = keras.Sequential(layer_list)
    model.compile(
        optimizer=keras.optimizers.Adam(hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model
"""),
        "hyperparameters read in another order, learning rate set on the optimizer afterwards": _space("""    learning_rate = hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")
    dropout = hp.Float("dropout", 0.0, 0.5, step=0.1)
    units = hp.Int("units", 16, 128, step=16)
    model = keras.Sequential()
    model.add(keras.layers.Input(shape=(8, 8)))
    model.add(keras.layers.Flatten())
    for _ in range(hp.Int("layers", 1, 3)):
        model.add(keras.layers.Dense(units, activation=keras.activations.relu))
        model.add(keras.layers.Dropout(rate=dropout))
    model.add(keras.layers.Dense(10, activation=keras.activations.softmax))
    optimizer = keras.optimizers.Adam()
    optimizer.learning_rate = learning_rate
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
"""),
        "keras.layers imported by name inside the function": _space(
            """    from keras import Input, Sequential, layers, optimizers

    model = Sequential([Input((8, 8)), layers.Flatten()])
    for _ in range(hp.Int("layers", min_value=1, max_value=3, step=1)):
        model.add(layers.Dense(hp.Int("units", 16, 128, step=16), activation="relu"))
        model.add(layers.Dropout(hp.Float("dropout", 0.0, 0.5)))
    model.add(layers.Dense(10, activation="softmax"))
    rate = hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")
    model.compile(optimizers.Adam(rate), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
""",
            imports="",
        ),
    },
    "ex_06_tuner": {
        "a dict of classes, an Objective object, no seed": _tuner("""    import keras_tuner

    classes = {
        "random": keras_tuner.RandomSearch,
        "bayesian": keras_tuner.BayesianOptimization,
        "hyperband": keras_tuner.Hyperband,
    }
    budget = {"max_epochs": epochs, "factor": 3} if kind == "hyperband" else {"max_trials": max_trials}
    return classes[kind](
        hypermodel=build_model,
        objective=keras_tuner.Objective("val_accuracy", direction="max"),
        directory=directory,
        project_name=f"{kind}_search",
        overwrite=True,
        **budget,
    )
"""),
        "a Tuner with an explicit oracle per kind": _tuner("""    import keras_tuner
    from keras_tuner import oracles

    goal = keras_tuner.Objective("val_accuracy", "max")
    if kind == "random":
        oracle = oracles.RandomSearchOracle(objective=goal, max_trials=max_trials)
    elif kind == "bayesian":
        oracle = oracles.BayesianOptimizationOracle(objective=goal, max_trials=max_trials)
    else:
        oracle = oracles.HyperbandOracle(objective=goal, max_epochs=epochs, factor=3)
    return keras_tuner.Tuner(oracle=oracle, hypermodel=build_model, directory=directory, overwrite=True)
"""),
        "match statement, default Bayesian initial points": _tuner("""    import keras_tuner as kt

    shared = dict(objective="val_accuracy", directory=directory, overwrite=True, seed=42)
    match kind:
        case "random":
            return kt.RandomSearch(build_model, max_trials=max_trials, **shared)
        case "bayesian":
            return kt.BayesianOptimization(build_model, max_trials=max_trials, **shared)
        case "hyperband":
            return kt.Hyperband(build_model, max_epochs=epochs, factor=3, **shared)
"""),
    },
    "ex_06_search": {
        "EarlyStopping on val_accuracy, the oracle's best trial": _search("""    import keras

    tuner.search(
        x,
        y,
        epochs=epochs,
        validation_data=[x_valid, y_valid],
        callbacks=[keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=1)],
        verbose=0,
    )
    return tuner.oracle.get_best_trials(num_trials=1)[0].hyperparameters.values
"""),
        "keyword x and y, restore_best_weights, the HyperParameters object": _search("""    from keras.callbacks import EarlyStopping

    stop = EarlyStopping("val_loss", patience=3, restore_best_weights=True)
    tuner.search(x=x, y=y, validation_data=(x_valid, y_valid), epochs=epochs, callbacks=[stop], verbose=0)
    (best,) = tuner.get_best_hyperparameters(num_trials=1)
    return best
"""),
        "a copy of the values, built key by key": _search("""    import keras

    callbacks = [keras.callbacks.TerminateOnNaN(), keras.callbacks.EarlyStopping(patience=2)]
    tuner.search(x, y, epochs=epochs, validation_data=(x_valid, y_valid), callbacks=callbacks, verbose=0)
    hp = tuner.get_best_hyperparameters()[0]
    return {name: hp.get(name) for name in hp.values}
"""),
    },
    "quiz_06_1": {"upper case": 'quiz_06_1 = "B"\n', "in parentheses": 'quiz_06_1 = "(b)"\n'},
    "quiz_06_2": {"with spaces": 'quiz_06_2 = " b "\n'},
    "quiz_06_3": {"upper case in parentheses": 'quiz_06_3 = "(C)"\n'},
}

WRONG = {
    "ex_06_space": {
        "units in steps of 32": _space_with(
            'hp.Int("units", 16, 128, step=16)', 'hp.Int("units", 16, 128, step=32)'
        ),
        "at most 2 layers": _space_with('hp.Int("layers", 1, 3)', 'hp.Int("layers", 1, 2)'),
        "learning rate sampled linearly": _space_with('sampling="log"', 'sampling="linear"'),
        "learning rate from a few choices": _space_with(
            'hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")',
            'hp.Choice("learning_rate", [1e-4, 1e-3, 1e-2])',
        ),
        "dropout up to 0.9": _space_with(
            'hp.Float("dropout", 0.0, 0.5, step=0.1)', 'hp.Float("dropout", 0.0, 0.9, step=0.1)'
        ),
        "one dropout layer only": _space_with(
            "        model.add(keras.layers.Dropout(dropout))\n    model.add(keras.layers.Dense(10",
            "    model.add(keras.layers.Dropout(dropout))\n    model.add(keras.layers.Dense(10",
        ),
        "the learning rate is not used": _space_with(
            "keras.optimizers.Adam(learning_rate)", "keras.optimizers.Adam()"
        ),
        "logits out (no softmax)": _space_with(
            'keras.layers.Dense(10, activation="softmax")', "keras.layers.Dense(10)"
        ),
        "no accuracy metric": _space_with(', metrics=["accuracy"]', ""),
        "one hidden layer whatever `layers` says": _space_with(
            "for _ in range(layers):", "for _ in range(1):"
        ),
        "fixed width 64": _space_with(
            'keras.layers.Dense(units, activation="relu")',
            'keras.layers.Dense(64, activation="relu")',
        ),
        "flattened 64-pixel input": _space_with(
            "keras.Input((8, 8)), keras.layers.Flatten()", "keras.Input((64,))"
        ),
        "hyperparameters with other names": _space_with('hp.Int("units"', 'hp.Int("width"'),
        "keras imported outside the function": "import keras\n\n\n" + _space(_SOLUTION_SPACE, ""),
    },
    "ex_06_tuner": {
        "a tuner maximising the validation loss": _tuner("""    import keras_tuner

    goal = keras_tuner.Objective("val_loss", "max")
    if kind == "random":
        return keras_tuner.RandomSearch(build_model, objective=goal, max_trials=max_trials, directory=directory, overwrite=True)
    if kind == "bayesian":
        return keras_tuner.BayesianOptimization(build_model, objective=goal, max_trials=max_trials, directory=directory, overwrite=True)
    return keras_tuner.Hyperband(build_model, objective=goal, max_epochs=epochs, directory=directory, overwrite=True)
"""),
        "the training accuracy as objective": _TUNER_SOLUTION.replace(
            '"val_accuracy"', '"accuracy"'
        ),
        "random search for every kind": _TUNER_SOLUTION.replace(
            "keras_tuner.BayesianOptimization(", "keras_tuner.RandomSearch("
        ).replace(", num_initial_points=2", ""),
        "Hyperband with a fixed max_epochs": _TUNER_SOLUTION.replace(
            "max_epochs=epochs", "max_epochs=10"
        ),
        "the number of trials ignored": _TUNER_SOLUTION.replace(
            "max_trials=max_trials", "max_trials=10"
        ),
        "the notebook's build_model, not the one given": _TUNER_SOLUTION.replace(
            "(build_model,", "(globals()['build_model'],"
        ).replace("(\n            build_model,", "(\n            globals()['build_model'],"),
        "reloads an earlier search": _TUNER_SOLUTION.replace(
            '"overwrite": True', '"overwrite": False'
        ),
        "keras_tuner imported outside the function": "import keras_tuner\n\n"
        + _TUNER_SOLUTION.replace("    import keras_tuner\n\n", ""),
    },
    "ex_06_search": {
        "no validation data (a validation split of the training data)": _SEARCH_SOLUTION.replace(
            "validation_data=(x_valid, y_valid)", "validation_split=0.2"
        ),
        "no early stopping": _SEARCH_SOLUTION.replace("callbacks=[stop_early], ", ""),
        "early stopping on the training loss": _SEARCH_SOLUTION.replace(
            'monitor="val_loss"', 'monitor="loss"'
        ),
        "early stopping on val_accuracy in min mode": _SEARCH_SOLUTION.replace(
            'monitor="val_loss"', 'monitor="val_accuracy", mode="min"'
        ),
        "the epochs not passed on": _SEARCH_SOLUTION.replace("epochs=epochs, ", ""),
        "the last trial": _SEARCH_SOLUTION.replace(
            "return dict(tuner.get_best_hyperparameters(1)[0].values)",
            "return list(tuner.oracle.trials.values())[-1].hyperparameters.values",
        ),
        "the highest score, whatever the direction": _SEARCH_SOLUTION.replace(
            "return dict(tuner.get_best_hyperparameters(1)[0].values)",
            "return max(tuner.oracle.trials.values(), key=lambda t: t.score).hyperparameters.values",
        ),
        "the list get_best_hyperparameters returns": _SEARCH_SOLUTION.replace(
            "dict(tuner.get_best_hyperparameters(1)[0].values)", "tuner.get_best_hyperparameters()"
        ),
        "the training data as validation data": _SEARCH_SOLUTION.replace(
            "validation_data=(x_valid, y_valid)", "validation_data=(x, y)"
        ),
    },
    "quiz_06_1": {"the best worker": 'quiz_06_1 = "a"\n', "two letters": 'quiz_06_1 = "b, d"\n'},
    "quiz_06_2": {
        "several models at once": 'quiz_06_2 = "a"\n',
        "a word": 'quiz_06_2 = "epochs"\n',
    },
    "quiz_06_3": {
        "reassigned at once": 'quiz_06_3 = "a"\n',
        "recorded as failed": 'quiz_06_3 = "d"\n',
    },
}


# exact text in a markdown cell -> (results.json -> number, low, high): the number the prose claims
CLAIMS = {
    # 0.87 on a quiet machine; the workers start within a second or two of each other.
    "two trials were in progress together for most of the distributed": (
        lambda r: r["parallel_fraction"],
        0.5,
        1.0,
    ),
}
