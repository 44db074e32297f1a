"""Chapter 4's checks: what its executed solution must show (check), the answers its
graders must accept (CORRECT) or reject (WRONG), and the numbers its prose quotes (CLAIMS).

Each variant is the whole source of an exercise cell, written as a student would write it.
"""

# ruff: noqa: E501

from pathlib import Path


def check(results: dict, workdir: Path) -> None:
    """What the executed solution recorded (results.json) and left in its work folder."""
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


_CONVERT_HEAD = """def convert(saved_model_dir, mode, representative=None):
    if mode not in ("float", "dynamic", "float16", "int8"):
        raise ValueError(f"unknown mode {mode!r}")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    if mode != "float":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
"""


def _convert(int8: str, head: str = _CONVERT_HEAD) -> str:
    """Exercise 2's answer with the given int8 branch (and optionally another head)."""
    return f'{head}    if mode == "int8":\n{int8}    return converter.convert()\n'


_INT8 = """        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
"""


def _evaluate(quantize: str = "np.round(values / scale + zero_point)", ending: str = "") -> str:
    """Exercise 3's batch answer with the input quantization (and the return) changed."""
    ending = ending or "return float(np.mean(predictions == np.asarray(y)))"
    return f"""def evaluate_tflite(model_bytes, x, y):
    runner = tflite.interpreter(model_bytes)
    source = runner.get_input_details()[0]
    target = runner.get_output_details()[0]
    runner.resize_tensor_input(source["index"], list(x.shape))
    runner.allocate_tensors()
    values = np.asarray(x, dtype=np.float32)
    if source["dtype"] == np.int8:
        scale, zero_point = source["quantization"]
        values = np.clip({quantize}, -128, 127)
    runner.set_tensor(source["index"], values.astype(source["dtype"]))
    runner.invoke()
    predictions = runner.get_tensor(target["index"]).argmax(axis=1)
    {ending}
"""


_QAT_HEAD = """def quantization_aware(float_model, tflite_path, weight_bits=8, epochs=1, learning_rate=1e-3):
    from pathlib import Path

    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras
    from tensorflow_model_optimization.quantization.keras.experimental import default_n_bit

    from scalelab import data

    digits = data.load("digits")
    model = keras.models.load_model(float_model)
"""
_QAT_WRAP = """    scheme = default_n_bit.DefaultNBitQuantizeScheme(
        num_bits_weight=weight_bits, num_bits_activation=8
    )
    with tfmot.quantization.keras.quantize_scope():
        aware = tfmot.quantization.keras.quantize_apply(
            tfmot.quantization.keras.quantize_annotate_model(model), scheme
        )
"""
_QAT_FIT = """    aware.compile(keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy", metrics=["accuracy"])
    aware.fit(data.scale(digits.x_train), digits.y_train, epochs=epochs, verbose=0)
"""
_QAT_CONVERT = """    converter = tf.lite.TFLiteConverter.from_keras_model(aware)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    Path(tflite_path).write_bytes(converter.convert())
    return {}
"""


def _qat(wrap: str = _QAT_WRAP, fit: str = _QAT_FIT, convert: str = _QAT_CONVERT) -> str:
    """Exercise 5's answer with one of its steps replaced."""
    return _QAT_HEAD + wrap + fit + convert


# grade_id of the solution cell -> {short description: full replacement source of that cell}
CORRECT = {
    "ex_04_representative": {
        "a list instead of a generator": """def representative_dataset(images, n=100):
    return [[np.asarray(image, dtype=np.float32)[None]] for image in images[:n]]
""",
        "tf.data pipeline yielding tensors": """def representative_dataset(images, n=100):
    for batch in tf.data.Dataset.from_tensor_slices(images).batch(1).take(n):
        yield [tf.cast(batch, tf.float32)]
""",
        "generator expression over indices, expand_dims": """def representative_dataset(images, n=100):
    count = min(n, len(images))
    return ([np.expand_dims(images[i], 0).astype(np.float32)] for i in range(count))
""",
        "slices keep the batch dimension": """def representative_dataset(images, n=100):
    for i in range(min(n, len(images))):
        yield [images[i : i + 1].astype("float32")]
""",
    },
    "ex_04_convert": {
        "no supported_ops (this model quantizes fully anyway)": _convert(
            """        converter.representative_dataset = representative
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
"""
        ),
        "if/elif chain, unknown mode checked last, RepresentativeDataset wrapper": """def convert(saved_model_dir, mode, representative=None):
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    if mode == "float":
        pass
    elif mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = tf.lite.RepresentativeDataset(representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    else:
        raise ValueError(f"unknown mode: {mode}")
    return converter.convert()
""",
        "from_concrete_functions of the loaded signature, own generator": """def convert(saved_model_dir, mode, representative=None):
    if mode not in {"float", "dynamic", "float16", "int8"}:
        raise ValueError(mode)
    loaded = tf.saved_model.load(str(saved_model_dir))
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [loaded.signatures["serving_default"]], loaded
    )
    if mode in ("dynamic", "float16", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if mode == "int8":

        def samples():
            yield from representative()

        converter.representative_dataset = samples
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()
""",
        "settings table per mode, OPTIMIZE_FOR_SIZE alias": """SETTINGS = {
    "float": {},
    "dynamic": {"optimize": True},
    "float16": {"optimize": True, "types": [tf.float16]},
    "int8": {"optimize": True, "int8": True},
}


def convert(saved_model_dir, mode, representative=None):
    if mode not in SETTINGS:
        raise ValueError(f"mode must be one of {list(SETTINGS)}")
    settings = SETTINGS[mode]
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    if settings.get("optimize"):
        converter.optimizations = [tf.lite.Optimize.OPTIMIZE_FOR_SIZE]
    if "types" in settings:
        converter.target_spec.supported_types = settings["types"]
    if settings.get("int8"):
        converter.representative_dataset = lambda: representative()
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()
""",
    },
    "ex_04_evaluate": {
        "ai_edge_litert Interpreter, outputs dequantized": """from ai_edge_litert.interpreter import Interpreter


def evaluate_tflite(model_bytes, x, y):
    interpreter = Interpreter(model_content=model_bytes)
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inp["index"], x.shape)
    interpreter.allocate_tensors()
    data = x.astype(np.float32)
    if inp["dtype"] == np.int8:
        scale, zero = inp["quantization"]
        data = np.clip(np.round(data / scale + zero), -128, 127).astype(np.int8)
    interpreter.set_tensor(inp["index"], data)
    interpreter.invoke()
    scores = interpreter.get_tensor(out["index"])
    if out["dtype"] == np.int8:
        scale, zero = out["quantization"]
        scores = (scores.astype(np.float32) - zero) * scale
    return float((scores.argmax(axis=1) == y).mean())
""",
        "tf.lite.Interpreter, one image at a time, np.rint": """def evaluate_tflite(model_bytes, x, y):
    interpreter = tf.lite.Interpreter(model_content=model_bytes)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    target = interpreter.get_output_details()[0]
    scale, zero_point = source["quantization"]
    correct = 0
    for image, label in zip(x, y):
        sample = image[None].astype(np.float32)
        if source["dtype"] == np.int8:
            sample = np.clip(np.rint(sample / scale + zero_point), -128, 127)
        interpreter.set_tensor(source["index"], sample.astype(source["dtype"]))
        interpreter.invoke()
        correct += int(interpreter.get_tensor(target["index"])[0].argmax() == label)
    return correct / len(y)
""",
        "signature runner, any integer input type": """def evaluate_tflite(model_bytes, x, y):
    runner = tflite.interpreter(model_bytes)
    source = runner.get_input_details()[0]
    values = np.asarray(x, np.float32)
    if np.issubdtype(source["dtype"], np.integer):
        scale, zero_point = source["quantization"]
        info = np.iinfo(source["dtype"])
        values = np.clip(np.round(values / scale + zero_point), info.min, info.max)
    serve = runner.get_signature_runner()
    (name,) = serve.get_input_details()
    (scores,) = serve(**{name: values.astype(source["dtype"])}).values()
    return float(np.mean(scores.argmax(-1) == np.asarray(y)))
""",
    },
    "quiz_04_1": {
        "upper case": 'quiz_04_1 = "D"\n',
        "parentheses and spaces": 'quiz_04_1 = " (d) "\n',
    },
    "quiz_04_2": {"upper case": 'quiz_04_2 = "B"\n', "parentheses": 'quiz_04_2 = "(b)"\n'},
    "ex_04_qat": {
        "annotate layer by layer with clone_model, representative data given anyway": _qat(
            wrap="""    scheme = default_n_bit.DefaultNBitQuantizeScheme(num_bits_weight=weight_bits)

    def annotate(layer):
        clone = layer.__class__.from_config(layer.get_config())
        if isinstance(layer, keras.layers.Dense):
            return tfmot.quantization.keras.quantize_annotate_layer(clone)
        return clone

    annotated = keras.models.clone_model(model, clone_function=annotate)
    annotated.set_weights(model.get_weights())
    with tfmot.quantization.keras.quantize_scope():
        aware = tfmot.quantization.keras.quantize_apply(annotated, scheme=scheme)
""",
            convert="""    converter = tf.lite.TFLiteConverter.from_keras_model(aware)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    images = data.scale(digits.x_train[:100]).astype("float32")
    converter.representative_dataset = lambda: ([image[None]] for image in images)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    with open(tflite_path, "wb") as f:
        f.write(converter.convert())
""",
        ),
        "tf.keras (tf_keras in this process), validation data, SavedModel conversion": """def quantization_aware(float_model, tflite_path, weight_bits=8, epochs=1, learning_rate=1e-3):
    import tempfile

    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    from tensorflow_model_optimization.quantization.keras.experimental.default_n_bit import (
        DefaultNBitQuantizeScheme,
    )

    from scalelab import data

    digits = data.load("digits")
    model = tf.keras.models.load_model(float_model)
    annotated = tfmot.quantization.keras.quantize_annotate_model(model)
    with tfmot.quantization.keras.quantize_scope():
        aware = tfmot.quantization.keras.quantize_apply(
            annotated, DefaultNBitQuantizeScheme(num_bits_weight=weight_bits, num_bits_activation=8)
        )
    aware.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = aware.fit(
        data.scale(digits.x_train), digits.y_train, epochs=epochs, batch_size=32, verbose=0,
        validation_data=(data.scale(digits.x_valid), digits.y_valid),
    )
    folder = tempfile.mkdtemp()
    tf.saved_model.save(aware, folder)
    converter = tf.lite.TFLiteConverter.from_saved_model(folder)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    open(tflite_path, "wb").write(converter.convert())
    return {"val_accuracy": history.history["val_accuracy"]}
""",
    },
}

WRONG = {
    "ex_04_representative": {
        "yields a bare array, not a list of inputs": """def representative_dataset(images, n=100):
    for image in np.asarray(images[:n], dtype=np.float32):
        yield image[None]
""",
        "a tuple of inputs (the converter reads tuples as (signature, dict))": """def representative_dataset(images, n=100):
    for image in np.asarray(images[:n], dtype=np.float32):
        yield (image[None],)
""",
        "no batch dimension": """def representative_dataset(images, n=100):
    for image in np.asarray(images[:n], dtype=np.float32):
        yield [image]
""",
        "all n images in one sample": """def representative_dataset(images, n=100):
    yield [np.asarray(images[:n], dtype=np.float32)]
""",
        "ignores n": """def representative_dataset(images, n=100):
    for image in np.asarray(images, dtype=np.float32):
        yield [image[None]]
""",
        "keeps the input's dtype (uint8 stays uint8)": """def representative_dataset(images, n=100):
    for image in images[:n]:
        yield [np.asarray(image)[None]]
""",
        "float64 samples": """def representative_dataset(images, n=100):
    for image in images[:n]:
        yield [np.array(image, dtype=float)[None]]
""",
        "rescales images that are already scaled": """def representative_dataset(images, n=100):
    for image in np.asarray(images[:n], dtype=np.float32):
        yield [image[None] / 255.0]
""",
        "returns a generator function, not the samples": """def representative_dataset(images, n=100):
    def samples():
        for image in np.asarray(images[:n], dtype=np.float32):
            yield [image[None]]

    return samples
""",
        "a random sample, not the first n": """def representative_dataset(images, n=100):
    rng = np.random.default_rng(0)
    for i in rng.permutation(len(images))[:n]:
        yield [np.asarray(images[i], dtype=np.float32)[None]]
""",
    },
    "ex_04_convert": {
        "int8 without representative data (dynamic range, not full integer)": _convert(
            "        pass\n"
        ),
        "int8 with float inputs and outputs": _convert(
            """        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
"""
        ),
        "uint8 inputs and outputs": _convert(_INT8.replace("tf.int8\n", "tf.uint8\n")),
        "passes the samples, not the function returning them": _convert(
            _INT8.replace("= representative\n", "= representative()\n")
        ),
        "representative data in dynamic mode too (calibrated int8, float I/O)": _convert(
            _INT8,
            _CONVERT_HEAD
            + """    if mode == "dynamic" and representative is not None:
        converter.representative_dataset = representative
""",
        ),
        "float16 without Optimize.DEFAULT (stays float32)": _convert(
            _INT8,
            _CONVERT_HEAD.replace('if mode != "float":', 'if mode in ("dynamic", "int8"):'),
        ),
        "unknown mode converted as float": _convert(
            _INT8, _CONVERT_HEAD.replace("raise ValueError", "print")
        ),
        "unknown mode raises KeyError (settings lookup)": _convert(
            _INT8,
            _CONVERT_HEAD.replace(
                """    if mode not in ("float", "dynamic", "float16", "int8"):
        raise ValueError(f"unknown mode {mode!r}")
""",
                """    {"float": 0, "dynamic": 1, "float16": 2, "int8": 3}[mode]
""",
            ),
        ),
    },
    "ex_04_evaluate": {
        "does not quantize the input (casts 0..1 floats to int8)": _evaluate("values"),
        "forgets the zero point": _evaluate("np.round(values / scale)"),
        "multiplies by the scale instead of dividing": _evaluate(
            "np.round(values * scale + zero_point)"
        ),
        "a percentage, not a fraction": _evaluate(
            ending="return 100 * float(np.mean(predictions == np.asarray(y)))"
        ),
        "the number of correct predictions, not a fraction": _evaluate(
            ending="return int(np.sum(predictions == np.asarray(y)))"
        ),
        "only the first image (no resize)": """def evaluate_tflite(model_bytes, x, y):
    runner = tflite.interpreter(model_bytes)
    source = runner.get_input_details()[0]
    target = runner.get_output_details()[0]
    values = np.asarray(x[:1], dtype=np.float32)
    if source["dtype"] == np.int8:
        scale, zero_point = source["quantization"]
        values = np.clip(np.round(values / scale + zero_point), -128, 127)
    runner.set_tensor(source["index"], values.astype(source["dtype"]))
    runner.invoke()
    predictions = runner.get_tensor(target["index"]).argmax(axis=1)
    return float(np.mean(predictions == np.asarray(y[:1])))
""",
        "calls tflite.predict": """def evaluate_tflite(model_bytes, x, y):
    probabilities = tflite.predict(tflite.interpreter(model_bytes), x)
    return float(np.mean(probabilities.argmax(axis=1) == y))
""",
    },
    "quiz_04_1": {
        "c": 'quiz_04_1 = "c"\n',
        "a": 'quiz_04_1 = "a"\n',
        "the option's words": 'quiz_04_1 = "remove layers"\n',
    },
    "quiz_04_2": {"a": 'quiz_04_2 = "a"\n', "d": 'quiz_04_2 = "d"\n'},
    "ex_04_qat": {
        "quantize_model: 8-bit weights, weight_bits ignored": _qat(
            wrap="    aware = tfmot.quantization.keras.quantize_model(model)\n"
        ),
        "no fine-tuning (post-training only: learning rate 0)": _qat(
            fit=_QAT_FIT.replace("Adam(learning_rate)", "Adam(0.0)")
        ),
        "float inputs and outputs": _qat(
            convert=_QAT_CONVERT.replace(
                "    converter.inference_input_type = tf.int8\n", ""
            ).replace("    converter.inference_output_type = tf.int8\n", "")
        ),
        "converts the float model, not the QAT one": _qat(
            convert=_QAT_CONVERT.replace("from_keras_model(aware)", "from_keras_model(model)")
        ),
        "writes nothing": _qat(convert="    return {}\n"),
    },
}


def _kb(results: dict, variant: str) -> float:
    return next(row["KB"] for row in results["variants"] if row["variant"] == variant)


# exact text in a markdown cell -> (results.json -> number, low, high): the number the prose claims
CLAIMS = {
    "about 86,000 weights": (lambda results: results["weights"], 85_000, 87_000),
    "halves size": (
        lambda results: _kb(results, "TFLite float16") / _kb(results, "TFLite float"),
        0.45,
        0.55,
    ),
    "float16 halves": (
        lambda results: _kb(results, "TFLite float16") / _kb(results, "TFLite float"),
        0.45,
        0.55,
    ),
    "about 3–4× smaller": (
        lambda results: _kb(results, "TFLite float") / _kb(results, "TFLite int8"),
        3.0,
        4.0,
    ),
    "about 300 SavedModel ops": (lambda results: results["op_counts"]["savedmodel"], 250, 350),
    "became 8 operators": (lambda results: results["op_counts"]["tflite"], 8, 8),
    "a few hundred test": (lambda results: results["test_images"], 200, 999),
    "one image is 0.3 points": (lambda results: 100 / results["test_images"], 0.25, 0.35),
    "a little **larger** than dynamic": (
        lambda results: _kb(results, "TFLite int8") / _kb(results, "TFLite dynamic"),
        1.0,
        1.3,
    ),
    "Eight bits cost nothing measurable": (
        lambda results: abs(results["qat"]["float"] - results["qat"]["8-bit post-training"]),
        0.0,
        0.01,
    ),
    "loses more than ten accuracy points": (
        lambda results: results["qat"]["float"] - results["qat"]["2-bit post-training"],
        0.1,
        1.0,
    ),
    "wins most of them back": (
        lambda results: (
            (results["qat"]["2-bit quantization-aware"] - results["qat"]["2-bit post-training"])
            / (results["qat"]["float"] - results["qat"]["2-bit post-training"])
        ),
        0.5,
        1.5,
    ),
}
