"""Chapter 6's answers the graders must accept (CORRECT) or reject (WRONG), and its prose's numbers.

Each variant is the whole source of an exercise cell, written as a student would write it.
"""

# ruff: noqa: E501


def _space(body: str) -> str:
    """Exercise 1's cell with `body` (indented 4 spaces) as the function's body."""
    return f'''def build_model(hp):
    """A compiled digits classifier whose shape and optimizer come from `hp`."""
{body}'''


def _best(body: str) -> str:
    return f"def best_hyperparameters(tuner):\n{body}"


def _speedup(body: str) -> str:
    return f"def speedup(single, distributed):\n{body}"


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
        "the library's build_model": _space("""    return tuning.build_model(hp)
"""),
    },
    "ex_06_best": {
        "the oracle's best trial": _best("""    return tuner.oracle.get_best_trials(num_trials=1)[0].hyperparameters.values
"""),
        "the HyperParameters object itself": _best("""    (best,) = tuner.get_best_hyperparameters(num_trials=1)
    return best
"""),
        "a copy of the values, built key by key": _best("""    hp = tuner.get_best_hyperparameters()[0]
    return {name: hp.get(name) for name in hp.values}
"""),
    },
    "ex_06_speedup": {
        "a helper per log, filtering completed records": _speedup("""    def rate(log):
        completed = [r for r in log if r["status"] == "COMPLETED"]
        first = min(r["started"] for r in log)
        last = max(r["ended"] for r in log if r["ended"])
        return len(completed) * 60 / (last - first)

    return rate(distributed) / rate(single)
"""),
        "sorted copies, seconds instead of minutes (the units cancel)": _speedup("""    rates = []
    for log in (single, distributed):
        starts = sorted(run["started"] for run in log)
        ends = sorted(run["ended"] for run in log if run["ended"] is not None)
        done = len([run for run in log if run["status"] == "COMPLETED"])
        rates.append(done / (ends[-1] - starts[0]))
    return rates[1] / rates[0]
"""),
        "the library's trials_per_minute": _speedup("""    return tuning.trials_per_minute(distributed) / tuning.trials_per_minute(single)
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
    },
    "ex_06_best": {
        "the last trial": _best("""    trials = list(tuner.oracle.trials.values())
    return trials[-1].hyperparameters.values
"""),
        "the highest score, whatever the direction": _best("""    trials = tuner.oracle.trials.values()
    return max(trials, key=lambda t: t.score).hyperparameters.values
"""),
        "the list get_best_hyperparameters returns": _best("""    return tuner.get_best_hyperparameters()
"""),
        "the best trial's score": _best("""    return tuner.oracle.get_best_trials(1)[0].score
"""),
    },
    "ex_06_speedup": {
        "the ratio upside down": _speedup("""    def rate(log):
        span = max(r["ended"] for r in log if r["ended"]) - min(r["started"] for r in log)
        return sum(r["status"] == "COMPLETED" for r in log) / span

    return rate(single) / rate(distributed)
"""),
        "every record counted as a trial": _speedup("""    def rate(log):
        span = max(r["ended"] for r in log if r["ended"]) - min(r["started"] for r in log)
        return len(log) / span

    return rate(distributed) / rate(single)
"""),
        "summed trial durations instead of wall time": _speedup("""    def rate(log):
        done = [r for r in log if r["status"] == "COMPLETED"]
        return len(done) / sum(r["ended"] - r["started"] for r in done)

    return rate(distributed) / rate(single)
"""),
        "first and last records as the span (assumes order)": _speedup("""    def rate(log):
        done = [r for r in log if r["status"] == "COMPLETED"]
        return len(done) / (done[-1]["ended"] - done[0]["started"])

    return rate(distributed) / rate(single)
"""),
        "ratio of trial counts only": _speedup("""    count = lambda log: sum(r["status"] == "COMPLETED" for r in log)
    return count(distributed) / count(single)
"""),
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
    # 2.12 measured on a quiet machine (the notebook alone); less while other tests share the cores.
    "here 0.8–2.5× as many": (lambda r: r["speedup"], 0.8, 2.5),
}
