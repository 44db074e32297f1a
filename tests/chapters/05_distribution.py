"""Chapter 5's checks: what its executed solution must show (check), the answers its
graders must accept (CORRECT) or reject (WRONG), and the numbers its prose quotes (CLAIMS).

Each variant is the whole source of an exercise cell, written as a student would write it.
"""

# ruff: noqa: E501

import json
from collections.abc import Iterable
from pathlib import Path


def check(results: dict, workdir: Path) -> None:
    """What the executed solution recorded (results.json) and left in its work folder."""
    assert results["data_parallel_max_gradient_difference"] < 1e-5
    assert results["model_parallel_bytes_per_step"] > 0
    assert [row["replicas"] for row in results["strategies"]] == [1, 2, 2]
    assert results["mwms_same_weights"] is True
    assert all(1 <= epoch < 3 for epoch in results["fault_tolerance"].values()), results
    assert all(n >= 1 for n in results["fault_tolerance_restarts"].values()), results
    assert results["ps_tasks_holding_variables"] == ["ps:0", "ps:1"]
    assert [row["workers"] for row in results["scaling"]] == [1, 2, 3]


NOTEBOOK = Path(__file__).parents[2] / "solutions" / "05_distribution" / "05_distribution.ipynb"


def _solution(grade_id: str) -> str:
    """The solution notebook's answer cell `grade_id`, without the nbgrader markers."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    (source,) = (
        "".join(cell["source"])
        for cell in cells
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == grade_id
    )
    return "".join(line for line in source.splitlines(True) if "### " not in line)


def _train_under(body: str) -> str:
    """Exercise 2's cell with `body` (indented 4 spaces) as the function's body."""
    return f'''def train_under(strategy, per_replica_batch, epochs=1):
    """Fit the digits model under `strategy`; return (replicas, global batch, history)."""
{body}'''


# grade_id of the solution cell -> {short description: full replacement source of that cell}
CORRECT = {
    "ex_05_average": {
        "tf.reduce_mean of a stack per variable": """def average_gradients(per_replica):
    return [tf.reduce_mean(tf.stack(grads), axis=0) for grads in zip(*per_replica)]
""",
        "NumPy arrays (np.mean over a stack)": """def average_gradients(per_replica):
    means = []
    for i in range(len(per_replica[0])):
        means.append(np.mean([np.asarray(replica[i]) for replica in per_replica], axis=0))
    return means
""",
        "Python sum divided by the number of replicas, as a tuple": """def average_gradients(per_replica):
    n = len(per_replica)
    return tuple(sum(grads) / n for grads in zip(*per_replica))
""",
        "running total in float64, as nested lists": """def average_gradients(per_replica):
    totals = [np.zeros(np.shape(g), dtype=np.float64) for g in per_replica[0]]
    for replica in per_replica:
        for total, g in zip(totals, replica):
            total += np.asarray(g, dtype=np.float64)
    return [(total / len(per_replica)).tolist() for total in totals]
""",
    },
    "ex_05_strategy": {
        "tf.data dataset batched by the global batch": _train_under("""    global_batch = strategy.num_replicas_in_sync * per_replica_batch
    with strategy.scope():
        model = build_digits_model()
    dataset = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(2048, seed=0)
    history = model.fit(dataset.batch(global_batch), epochs=epochs, verbose=0)
    return strategy.num_replicas_in_sync, global_batch, history
"""),
        "experimental_distribute_dataset of globally batched data": _train_under("""    replicas = strategy.num_replicas_in_sync
    global_batch = per_replica_batch * replicas
    with strategy.scope():
        model = build_digits_model()
    batches = tf.data.Dataset.from_tensor_slices((x_train, y_train)).batch(global_batch)
    history = model.fit(strategy.experimental_distribute_dataset(batches), epochs=epochs, verbose=0)
    return replicas, global_batch, history
"""),
        "everything inside the scope, int32 labels": _train_under("""    with strategy.scope():
        replicas = strategy.num_replicas_in_sync
        global_batch = replicas * per_replica_batch
        model = build_digits_model()
        history = model.fit(
            x_train, y_train.astype("int32"), batch_size=global_batch, epochs=epochs, verbose=0
        )
    return replicas, global_batch, history
"""),
        "repeated dataset, drop_remainder and steps_per_epoch": _train_under("""    replicas = strategy.num_replicas_in_sync
    global_batch = per_replica_batch * replicas
    steps = len(x_train) // global_batch
    data = tf.data.Dataset.from_tensor_slices((x_train, y_train))
    data = data.shuffle(len(x_train)).batch(global_batch, drop_remainder=True).repeat()
    with strategy.scope():
        model = build_digits_model()
    history = model.fit(data, epochs=epochs, steps_per_epoch=steps, verbose=0)
    return replicas, global_batch, history
"""),
        "model.history after fit, shuffle=True": _train_under("""    replicas = strategy.num_replicas_in_sync
    global_batch = per_replica_batch * replicas
    with strategy.scope():
        model = build_digits_model()
    x, y = x_train, y_train
    model.fit(x, y, batch_size=global_batch, epochs=epochs, verbose=0, shuffle=True)
    return replicas, global_batch, model.history
"""),
    },
    "ex_05_mwms": {
        "tf_keras fit with BackupAndRestore": """def mwms_worker(epochs, steps_per_epoch, global_batch, checkpoint_dir, pause=0.0):
    import time

    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    import tf_keras as keras

    from scalelab.training import distribute

    x, y = distribute.digits()
    with strategy.scope():
        model = keras.Sequential(
            [keras.Input((64,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)]
        )
        model.compile(
            keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        )
    data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x)).repeat().batch(global_batch)

    class Resume(keras.callbacks.Callback):
        first = None

        def on_epoch_begin(self, epoch, logs=None):
            if self.first is None:
                self.first = epoch

        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 < epochs:
                time.sleep(pause)

    resume = Resume()
    history = model.fit(
        data,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        callbacks=[keras.callbacks.BackupAndRestore(checkpoint_dir), resume],
        verbose=0,
    )
    return {"initial_epoch": resume.first, "losses": history.history["loss"], "weights": model.get_weights()}
""",
        "distribute_datasets_from_function, Adam, an epoch variable in the checkpoint": """def mwms_worker(epochs, steps_per_epoch, global_batch, checkpoint_dir, pause=0.0):
    import os
    import time

    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    import keras

    from scalelab.training import distribute

    def make_data(context):
        x, y = distribute.digits()
        data = tf.data.Dataset.from_tensor_slices((x, y))
        data = data.shard(context.num_input_pipelines, context.input_pipeline_id)
        return data.shuffle(1000, seed=1).repeat().batch(context.get_per_replica_batch_size(global_batch))

    keras.utils.set_random_seed(1)
    with strategy.scope():
        inputs = keras.Input((64,))
        outputs = keras.layers.Dense(10)(keras.layers.Dense(32, activation="tanh")(inputs))
        model = keras.Model(inputs, outputs)
        optimizer = keras.optimizers.Adam(0.005)
        optimizer.build(model.trainable_variables)
        done = tf.Variable(0, dtype=tf.int64)

    @tf.function
    def step(batch):
        def one(images, labels):
            with tf.GradientTape() as tape:
                per_example = keras.losses.sparse_categorical_crossentropy(
                    labels, model(images, training=True), from_logits=True
                )
                loss = tf.reduce_sum(per_example) / global_batch
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        return strategy.reduce("SUM", strategy.run(one, args=batch), axis=None)

    batches = iter(strategy.distribute_datasets_from_function(make_data))
    task = strategy.cluster_resolver.task_id
    folder = checkpoint_dir if task == 0 else os.path.join(checkpoint_dir + "-others", str(task))
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=done)
    manager = tf.train.CheckpointManager(checkpoint, folder, max_to_keep=2)
    if tf.train.latest_checkpoint(checkpoint_dir):
        checkpoint.restore(tf.train.latest_checkpoint(checkpoint_dir))
    start = int(done.numpy())
    history = []
    for epoch in range(start, epochs):
        losses = [step(next(batches)) for _ in range(steps_per_epoch)]
        history.append(float(tf.reduce_mean(losses)))
        done.assign(epoch + 1)
        manager.save()
        if epoch < epochs - 1:
            time.sleep(pause)
    return dict(losses=history, initial_epoch=start, weights=[w.numpy() for w in model.weights])
""",
    },
    "ex_05_ps": {
        "distribute_datasets_from_function, FixedShardsPartitioner, coordinator.fetch": """def ps_coordinator(steps, batch):
    import tensorflow as tf

    from scalelab.training import distribute

    distribute.serve_unless_coordinator()
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    strategy = tf.distribute.ParameterServerStrategy(
        resolver,
        variable_partitioner=tf.distribute.experimental.partitioners.FixedShardsPartitioner(2),
    )
    keras = tf.keras  # tf_keras in these processes
    with strategy.scope():
        model = keras.Sequential([keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)])
        model.build((None, 64))
        optimizer = keras.optimizers.legacy.Adam(0.01)
    coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)

    def dataset_fn(context):
        x, y = distribute.digits()
        data = tf.data.Dataset.from_tensor_slices((x.astype("float32"), y)).repeat().shuffle(500)
        return data.batch(context.get_per_replica_batch_size(batch))

    @tf.function
    def per_worker_dataset_fn():
        return strategy.distribute_datasets_from_function(dataset_fn)

    iterator = iter(coordinator.create_per_worker_dataset(per_worker_dataset_fn))

    @tf.function
    def step(iterator):
        def replica(x, y):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(
                    keras.losses.sparse_categorical_crossentropy(y, model(x), from_logits=True)
                )
            optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
            return loss

        return strategy.run(replica, args=next(iterator))

    futures = []
    for _ in range(steps):
        futures.append(coordinator.schedule(step, args=(iterator,)))
    coordinator.join()
    return {
        "losses": [float(x) for x in coordinator.fetch(futures)],
        "variables": {v.name: v.device for v in model.variables},
    }
""",
        "the reference with a MinSizePartitioner of 512 bytes and a functional model": _solution(
            "ex_05_ps"
        )
        .replace("min_shard_bytes=1024", "min_shard_bytes=512")
        .replace(
            """model = keras.Sequential(
            [keras.Input((64,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)]
        )""",
            """inputs = keras.Input((64,))
        model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Dense(48, "relu")(inputs)))""",
        ),
    },
    "quiz_05_1": {"upper case": 'quiz_05_1 = "B"\n', "in parentheses": 'quiz_05_1 = "(b)"\n'},
    "quiz_05_2": {
        "upper case, spaces": 'quiz_05_2 = " C "\n',
        "in parentheses": 'quiz_05_2 = "(c)"\n',
    },
    "quiz_05_3": {"upper case": 'quiz_05_3 = "A"\n', "parentheses, space": 'quiz_05_3 = "(a) "\n'},
    "quiz_05_5": {"upper case": 'quiz_05_5 = "C"\n', "in parentheses": 'quiz_05_5 = "(c)"\n'},
}

WRONG = {
    "ex_05_average": {
        "sums instead of averaging": """def average_gradients(per_replica):
    return [tf.add_n(list(grads)) for grads in zip(*per_replica)]
""",
        "np.mean over the ragged nested list": """def average_gradients(per_replica):
    return list(np.mean(per_replica, axis=0))
""",
        "averages each replica over its variables": """def average_gradients(per_replica):
    return [tf.reduce_mean(tf.stack([tf.reduce_mean(g) for g in grads])) for grads in per_replica]
""",
        "divides by two (assumes two replicas)": """def average_gradients(per_replica):
    return [(grads[0] + grads[1]) / 2 if len(grads) > 1 else grads[0] / 2 for grads in zip(*per_replica)]
""",
        "divides by the number of variables": """def average_gradients(per_replica):
    return [tf.add_n(list(grads)) / len(per_replica[0]) for grads in zip(*per_replica)]
""",
        "flattens every gradient": """def average_gradients(per_replica):
    return [tf.reshape(tf.add_n(list(grads)) / len(grads), [-1]) for grads in zip(*per_replica)]
""",
        "only the first variable": """def average_gradients(per_replica):
    return [tf.add_n([replica[0] for replica in per_replica]) / len(per_replica)]
""",
    },
    "ex_05_strategy": {
        "fits with the per-replica batch": _train_under("""    replicas = strategy.num_replicas_in_sync
    global_batch = per_replica_batch * replicas
    with strategy.scope():
        model = build_digits_model()
    history = model.fit(x_train, y_train, batch_size=per_replica_batch, epochs=epochs, verbose=0)
    return replicas, global_batch, history
"""),
        "dataset batched per replica": _train_under("""    replicas = strategy.num_replicas_in_sync
    with strategy.scope():
        model = build_digits_model()
    data = tf.data.Dataset.from_tensor_slices((x_train, y_train)).batch(per_replica_batch)
    history = model.fit(data, epochs=epochs, verbose=0)
    return replicas, per_replica_batch * replicas, history
"""),
        "model built outside strategy.scope()": _train_under("""    replicas = strategy.num_replicas_in_sync
    global_batch = per_replica_batch * replicas
    model = build_digits_model()
    history = model.fit(x_train, y_train, batch_size=global_batch, epochs=epochs, verbose=0)
    return replicas, global_batch, history
"""),
        "replicas counted as the machine's devices": _train_under("""    replicas = len(DEVICES)
    global_batch = per_replica_batch * replicas
    with strategy.scope():
        model = build_digits_model()
    history = model.fit(x_train, y_train, batch_size=global_batch, epochs=epochs, verbose=0)
    return replicas, global_batch, history
"""),
        "splits the batch instead of multiplying": _train_under("""    replicas = strategy.num_replicas_in_sync
    global_batch = per_replica_batch // replicas
    with strategy.scope():
        model = build_digits_model()
    history = model.fit(x_train, y_train, batch_size=global_batch, epochs=epochs, verbose=0)
    return replicas, global_batch, history
"""),
        "ignores epochs": _train_under("""    replicas = strategy.num_replicas_in_sync
    global_batch = per_replica_batch * replicas
    with strategy.scope():
        model = build_digits_model()
    history = model.fit(x_train, y_train, batch_size=global_batch, epochs=1, verbose=0)
    return replicas, global_batch, history
"""),
        "returns the history dict": _train_under("""    replicas = strategy.num_replicas_in_sync
    global_batch = per_replica_batch * replicas
    with strategy.scope():
        model = build_digits_model()
    history = model.fit(x_train, y_train, batch_size=global_batch, epochs=epochs, verbose=0)
    return replicas, global_batch, history.history
"""),
    },
    "ex_05_mwms": {
        "reduce with MEAN: the loss reported is half of it": _solution("ex_05_mwms").replace(
            "strategy.reduce(tf.distribute.ReduceOp.SUM,",
            "strategy.reduce(tf.distribute.ReduceOp.MEAN,",
        ),
        "dataset batched by the per-worker batch, then split again": _solution(
            "ex_05_mwms"
        ).replace(
            "dataset.batch(global_batch)",
            "dataset.batch(global_batch // strategy.num_replicas_in_sync)",
        ),
        "model built outside strategy.scope()": _solution("ex_05_mwms").replace(
            "    with strategy.scope():\n        model = keras.Sequential(",
            "    if True:\n        model = keras.Sequential(",
        ),
        "checkpoints but never restores": _solution("ex_05_mwms").replace(
            "    if latest:\n        checkpoint.restore(latest)\n", ""
        ),
    },
    "ex_05_ps": {
        "no variable partitioner": _solution("ex_05_ps").replace(
            "strategy = tf.distribute.ParameterServerStrategy(resolver, variable_partitioner=partitioner)",
            "strategy = tf.distribute.ParameterServerStrategy(resolver)",
        ),
        "gradients computed but never applied": _solution("ex_05_ps").replace(
            "            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))\n",
            "",
        ),
    },
    "quiz_05_1": {
        "model parallelism's advantage": 'quiz_05_1 = "c"\n',
        "two letters": 'quiz_05_1 = "b, c"\n',
    },
    "quiz_05_2": {
        "synchronous all-reduce": 'quiz_05_2 = "b"\n',
        "the strategy's name": 'quiz_05_2 = "ParameterServerStrategy"\n',
    },
    "quiz_05_3": {
        "multi-worker on one machine": 'quiz_05_3 = "d"\n',
        "a number": "quiz_05_3 = 1\n",
    },
    "quiz_05_5": {
        "sharding splits the work": 'quiz_05_5 = "a"\n',
        "one example per worker": 'quiz_05_5 = "b"\n',
    },
}


def _worst(values: Iterable[float], low: float, high: float) -> float:
    """The value that decides whether all of `values` lie in [low, high]: one outside if any is."""
    values = list(values)
    return min(values) if min(values) < low else max(values)


def _slowdowns(results: dict) -> list[float]:
    """Seconds per epoch under each strategy, as a multiple of no strategy's."""
    alone, *others = results["strategies"]
    return [row["s/epoch"] / alone["s/epoch"] for row in others]


def _scaling(results: dict, workers: int, key: str) -> float:
    return next(row[key] for row in results["scaling"] if row["workers"] == workers)


# exact text in a markdown cell -> (results.json -> number, low, high): the number the prose claims
CLAIMS = {
    # 1.5-20x on a quiet machine, 26x once under CI's load (the no-strategy epoch is ~40 ms).
    "here at least 1.5×": (lambda r: min(_slowdowns(r)), 1.5, 1e3),
    "yet worker 0 was restarted too": (lambda r: r["fault_tolerance_restarts"]["worker:0"], 1, 2),
    # The kill comes in the 2 s pause after the first checkpoint: both resume at epoch 1.
    "both at epoch 1 above": (lambda r: _worst(r["fault_tolerance"].values(), 1, 1), 1, 1),
    # Two against one worker measured 0.09-0.24 alone, 0.85 once while another run shared the cores.
    "two workers process fewer examples per second than one worker alone": (
        lambda r: _scaling(r, 2, "examples/s") / _scaling(r, 1, "examples/s"),
        0,
        0.999,
    ),
    # Three against one worker measured 0.11-0.59 (three against two 0.65-1.32: load decides).
    "A third worker does not bring it back to one worker's": (
        lambda r: _scaling(r, 3, "examples/s") / _scaling(r, 1, "examples/s"),
        0,
        0.999,
    ),
}
