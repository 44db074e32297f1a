"""Chapter 1's checks: what its executed solution must show (check), the answers its
graders must accept (CORRECT) or reject (WRONG), and the numbers its prose quotes (CLAIMS).

Each variant is the whole source of an exercise cell, written as a student would write it.
"""

# ruff: noqa: E501

from pathlib import Path


def check(results: dict, workdir: Path) -> None:
    """What the executed solution recorded (results.json) and left in its work folder."""
    assert results["keras_test_accuracy"] > 0.85
    assert results["savedmodel_max_abs_diff"] < 1e-6
    assert results["cli_mentions_uint8_input"] is True
    assert results["naive_export_runs_in_saved_model_cli"] is False  # the lesson still holds
    assert results["versions"] == ["0001", "0002"]
    for version in results["versions"]:
        assert (workdir / "models" / "digits" / version / "saved_model.pb").is_file()
    assert (workdir / "exports" / "custom_export" / "assets" / "class_names.txt").is_file()


def _archive(**changes: str) -> str:
    """Exercise 1's ExportArchive answer with some of its parts changed (a plausible mistake)."""
    parts = {
        "raw": "model(tf.cast(images, tf.float32) / 255.0)",
        "class_id": "tf.argmax(probabilities, axis=-1)",
        "raw_out": '{"probabilities": probabilities, "class_id": class_id}',
        "scaled": '{"probabilities": model(scaled_images)}',
        "raw_spec": 'tf.TensorSpec(shape, tf.uint8, name="images")',
        "scaled_spec": 'tf.TensorSpec(shape, tf.float32, name="scaled_images")',
        "shape": "[None, *model.input_shape[1:]]",
        "raw_name": "serving_default",
        "scaled_name": "scaled",
        **changes,
    }
    return f"""def export_two_signatures(model, export_dir):
    shape = {parts["shape"]}

    def serve_raw(images):
        probabilities = {parts["raw"]}
        class_id = {parts["class_id"]}
        return {parts["raw_out"]}

    def serve_scaled(scaled_images):
        return {parts["scaled"]}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("{parts["raw_name"]}", serve_raw, input_signature=[{parts["raw_spec"]}])
    archive.add_endpoint("{parts["scaled_name"]}", serve_scaled, input_signature=[{parts["scaled_spec"]}])
    archive.write_out(str(export_dir), verbose=False)
"""


# grade_id of the solution cell -> {short description: full replacement source of that cell}
CORRECT = {
    "ex_01_export": {
        "tf.function endpoints carrying their own input_signature": """def export_two_signatures(model, export_dir):
    shape = [None, *model.input_shape[1:]]

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.uint8, name="images")])
    def serve_raw(images):
        probabilities = model(tf.cast(images, tf.float32) / 255.0)
        return {"probabilities": probabilities, "class_id": tf.argmax(probabilities, axis=-1)}

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name="scaled_images")])
    def serve_scaled(scaled_images):
        return {"probabilities": model(scaled_images)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve_raw)
    archive.add_endpoint("scaled", serve_scaled)
    archive.write_out(str(export_dir), verbose=False)
""",
        "convert_image_dtype, int64 output_type, unnamed specs, no track()": """def export_two_signatures(model, export_dir):
    shape = (None,) + tuple(model.input_shape[1:])

    def serve_raw(images):
        probabilities = model(tf.image.convert_image_dtype(images, tf.float32))
        class_id = tf.math.argmax(probabilities, axis=1, output_type=tf.int64)
        return {"probabilities": probabilities, "class_id": class_id}

    def serve_scaled(scaled_images):
        return {"probabilities": model(scaled_images)}

    archive = keras.export.ExportArchive()
    archive.add_endpoint("serving_default", serve_raw, input_signature=[tf.TensorSpec(shape, tf.uint8)])
    archive.add_endpoint("scaled", serve_scaled, input_signature=[tf.TensorSpec(shape, tf.float32)])
    archive.write_out(export_dir, verbose=False)
""",
        "endpoint named serve, which Keras aliases as serving_default": """def export_two_signatures(model, export_dir):
    shape = [None, *model.inputs[0].shape[1:]]
    rescale = keras.layers.Rescaling(1 / 255)

    def serve(images):
        probabilities = model(rescale(tf.cast(images, "float32")))
        return {"probabilities": probabilities, "class_id": tf.cast(tf.argmax(probabilities, -1), tf.int64)}

    def scaled(scaled_images):
        return {"probabilities": model(scaled_images)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", serve, [tf.TensorSpec(shape, tf.uint8, name="images")])
    archive.add_endpoint("scaled", scaled, [tf.TensorSpec(shape, tf.float32, name="scaled_images")])
    archive.write_out(str(export_dir), verbose=False)
""",
        "tf.Module and tf.saved_model.save, tracking the TF variables too": """def export_two_signatures(model, export_dir):
    shape = [None, *model.input_shape[1:]]

    class Server(tf.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model
            self.tf_variables = [v.value for v in model.variables]  # what the graph reads

        @tf.function(input_signature=[tf.TensorSpec(shape, tf.uint8, name="images")])
        def serve_raw(self, images):
            probabilities = self.model(tf.cast(images, tf.float32) * (1.0 / 255))
            return {"probabilities": probabilities, "class_id": tf.argmax(probabilities, axis=-1)}

        @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name="scaled_images")])
        def serve_scaled(self, scaled_images):
            return {"probabilities": self.model(scaled_images)}

    server = Server(model)
    signatures = {"serving_default": server.serve_raw, "scaled": server.serve_scaled}
    tf.saved_model.save(server, str(export_dir), signatures=signatures)
""",
    },
    "ex_01_describe": {
        "parses saved_model.pb (-1 becomes None)": """from tensorflow.core.protobuf import saved_model_pb2


def describe_signature(export_dir, signature_name="serving_default"):
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((Path(export_dir) / "saved_model.pb").read_bytes())
    (meta_graph,) = [m for m in saved.meta_graphs if "serve" in m.meta_info_def.tags]
    signature = meta_graph.signature_def[signature_name]

    def describe(infos):
        return {
            name: (
                tf.as_dtype(info.dtype).name,
                tuple(d.size if d.size >= 0 else None for d in info.tensor_shape.dim),
            )
            for name, info in infos.items()
        }

    return {"inputs": describe(signature.inputs), "outputs": describe(signature.outputs)}
""",
        "output_dtypes and output_shapes, tuple(TensorShape)": """def describe_signature(export_dir, signature_name="serving_default"):
    function = tf.saved_model.load(str(export_dir)).signatures[signature_name]
    inputs = {}
    for name, spec in function.structured_input_signature[1].items():
        inputs[name] = (spec.dtype.name, tuple(spec.shape))
    outputs = {}
    for name in function.output_dtypes:
        outputs[name] = (function.output_dtypes[name].name, tuple(function.output_shapes[name]))
    return {"inputs": inputs, "outputs": outputs}
""",
        "TF1 loader's signature_def in a session": """def describe_signature(export_dir, signature_name="serving_default"):
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(export_dir))
    signature = meta_graph.signature_def[signature_name]
    result = {}
    for side, infos in (("inputs", signature.inputs), ("outputs", signature.outputs)):
        shapes = {name: tf.TensorShape(info.tensor_shape) for name, info in infos.items()}
        result[side] = {
            name: (tf.dtypes.as_dtype(info.dtype).name, tuple(shapes[name].as_list()))
            for name, info in infos.items()
        }
    return result
""",
    },
    "ex_01_reproduce": {
        "NumPy scaling, first value when there is no probabilities": """def predict_with_savedmodel(export_dir, images):
    signature = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    name, spec = next(iter(signature.structured_input_signature[1].items()))
    if spec.dtype == tf.float32:
        images = images.astype(np.float32) / 255.0
    outputs = signature(**{name: tf.convert_to_tensor(images, dtype=spec.dtype)})
    if "probabilities" in outputs:
        return outputs["probabilities"].numpy()
    return np.asarray(next(iter(outputs.values())))
""",
        "convert_image_dtype to whatever dtype the signature wants": """def predict_with_savedmodel(export_dir, images):
    loaded = tf.saved_model.load(str(export_dir))
    signature = loaded.signatures["serving_default"]
    [(name, spec)] = signature.structured_input_signature[1].items()
    batch = tf.image.convert_image_dtype(tf.constant(images), spec.dtype)  # uint8 stays, floats scale
    outputs = signature(**{name: batch})
    (key,) = ["probabilities"] if "probabilities" in outputs else list(outputs)
    return outputs[key].numpy()
""",
        "keras.layers.TFSMLayer, spec read with is_floating": """def predict_with_savedmodel(export_dir, images):
    spec = list(
        tf.saved_model.load(str(export_dir))
        .signatures["serving_default"]
        .structured_input_signature[1]
        .values()
    )[0]
    layer = keras.layers.TFSMLayer(str(export_dir), call_endpoint="serving_default")
    batch = data.scale(images) if spec.dtype.is_floating else images
    outputs = layer(tf.constant(batch, dtype=spec.dtype))
    if isinstance(outputs, dict):
        outputs = outputs.get("probabilities", list(outputs.values())[0])
    return keras.ops.convert_to_numpy(outputs)
""",
    },
    "quiz_01_1": {"upper case": 'quiz_01_1 = "C"\n', "in parentheses": 'quiz_01_1 = "(c)"\n'},
    "quiz_01_2": {"upper case": 'quiz_01_2 = "A"\n', "with spaces": 'quiz_01_2 = " a "\n'},
    "quiz_01_3": {
        "upper case": 'quiz_01_3 = "B"\n',
        "parentheses and space": 'quiz_01_3 = "(b) "\n',
    },
}

WRONG = {
    "ex_01_export": {
        "naive tf.Module + tf.saved_model.save (TF Serving cannot load it)": """def export_two_signatures(model, export_dir):
    shape = [None, *model.input_shape[1:]]

    class Server(tf.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        @tf.function(input_signature=[tf.TensorSpec(shape, tf.uint8, name="images")])
        def serve_raw(self, images):
            probabilities = self.model(tf.cast(images, tf.float32) / 255.0)
            return {"probabilities": probabilities, "class_id": tf.argmax(probabilities, axis=-1)}

        @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name="scaled_images")])
        def serve_scaled(self, scaled_images):
            return {"probabilities": self.model(scaled_images)}

    server = Server(model)
    signatures = {"serving_default": server.serve_raw, "scaled": server.serve_scaled}
    tf.saved_model.save(server, str(export_dir), signatures=signatures)
""",
        "tf.saved_model.save(model) with the Keras model as root": """def export_two_signatures(model, export_dir):
    shape = [None, *model.input_shape[1:]]

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.uint8, name="images")])
    def serve_raw(images):
        probabilities = model(tf.cast(images, tf.float32) / 255.0)
        return {"probabilities": probabilities, "class_id": tf.argmax(probabilities, axis=-1)}

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name="scaled_images")])
    def serve_scaled(scaled_images):
        return {"probabilities": model(scaled_images)}

    signatures = {"serving_default": serve_raw, "scaled": serve_scaled}
    tf.saved_model.save(model, str(export_dir), signatures=signatures)
""",
        "raw signature forgets to scale": _archive(raw="model(tf.cast(images, tf.float32))"),
        "scaled signature divides by 255 again": _archive(
            scaled='{"probabilities": model(scaled_images / 255.0)}'
        ),
        "serving_default takes float32, as model.export does": _archive(
            raw="model(images)", raw_spec='tf.TensorSpec(shape, tf.float32, name="images")'
        ),
        "class_id as int32": _archive(
            class_id="tf.argmax(probabilities, axis=-1, output_type=tf.int32)"
        ),
        "flattened input [None, 64]": _archive(
            shape="[None, 64]",
            raw="model(tf.reshape(tf.cast(images, tf.float32) / 255.0, [-1, 8, 8]))",
            scaled='{"probabilities": model(tf.reshape(scaled_images, [-1, 8, 8]))}',
        ),
        "fixed batch of one": _archive(shape="[1, *model.input_shape[1:]]"),
        "scaled signature's input called images": _archive(
            scaled_spec='tf.TensorSpec(shape, tf.float32, name="images")'
        ),
        "scaled signature returns a bare tensor (output_0)": _archive(
            scaled="model(scaled_images)"
        ),
        "no class_id output": _archive(raw_out='{"probabilities": probabilities}'),
        "endpoints raw and scaled, scaled first: serving_default aliases scaled": """def export_two_signatures(model, export_dir):
    shape = [None, *model.input_shape[1:]]

    def serve_raw(images):
        probabilities = model(tf.cast(images, tf.float32) / 255.0)
        return {"probabilities": probabilities, "class_id": tf.argmax(probabilities, axis=-1)}

    def serve_scaled(scaled_images):
        return {"probabilities": model(scaled_images)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("scaled", serve_scaled, [tf.TensorSpec(shape, tf.float32, name="scaled_images")])
    archive.add_endpoint("raw", serve_raw, [tf.TensorSpec(shape, tf.uint8, name="images")])
    archive.write_out(str(export_dir), verbose=False)
""",
        "model.export only: no scaled signature": """def export_two_signatures(model, export_dir):
    model.export(str(export_dir), verbose=False)
""",
    },
    "ex_01_describe": {
        "shapes keep -1 for unknown sizes": """from tensorflow.core.protobuf import saved_model_pb2


def describe_signature(export_dir, signature_name="serving_default"):
    saved = saved_model_pb2.SavedModel.FromString((Path(export_dir) / "saved_model.pb").read_bytes())
    signature = saved.meta_graphs[0].signature_def[signature_name]

    def describe(infos):
        return {
            name: (tf.as_dtype(info.dtype).name, tuple(d.size for d in info.tensor_shape.dim))
            for name, info in infos.items()
        }

    return {"inputs": describe(signature.inputs), "outputs": describe(signature.outputs)}
""",
        "shapes as lists": """def describe_signature(export_dir, signature_name="serving_default"):
    signature = tf.saved_model.load(str(export_dir)).signatures[signature_name]

    def describe(specs):
        return {name: (spec.dtype.name, spec.shape.as_list()) for name, spec in specs.items()}

    return {
        "inputs": describe(signature.structured_input_signature[1]),
        "outputs": describe(signature.structured_outputs),
    }
""",
        "tf.DType objects instead of their names": """def describe_signature(export_dir, signature_name="serving_default"):
    signature = tf.saved_model.load(str(export_dir)).signatures[signature_name]

    def describe(specs):
        return {name: (spec.dtype, tuple(spec.shape.as_list())) for name, spec in specs.items()}

    return {
        "inputs": describe(signature.structured_input_signature[1]),
        "outputs": describe(signature.structured_outputs),
    }
""",
        "NumPy dtype names (object for strings)": """def describe_signature(export_dir, signature_name="serving_default"):
    signature = tf.saved_model.load(str(export_dir)).signatures[signature_name]

    def describe(specs):
        return {
            name: (np.dtype(spec.dtype.as_numpy_dtype).name, tuple(spec.shape.as_list()))
            for name, spec in specs.items()
        }

    return {
        "inputs": describe(signature.structured_input_signature[1]),
        "outputs": describe(signature.structured_outputs),
    }
""",
        "ignores signature_name": """def describe_signature(export_dir, signature_name="serving_default"):
    signature = tf.saved_model.load(str(export_dir)).signatures["serving_default"]

    def describe(specs):
        return {name: (spec.dtype.name, tuple(spec.shape.as_list())) for name, spec in specs.items()}

    return {
        "inputs": describe(signature.structured_input_signature[1]),
        "outputs": describe(signature.structured_outputs),
    }
""",
        "inputs and outputs swapped": """def describe_signature(export_dir, signature_name="serving_default"):
    signature = tf.saved_model.load(str(export_dir)).signatures[signature_name]

    def describe(specs):
        return {name: (spec.dtype.name, tuple(spec.shape.as_list())) for name, spec in specs.items()}

    return {
        "inputs": describe(signature.structured_outputs),
        "outputs": describe(signature.structured_input_signature[1]),
    }
""",
    },
    "ex_01_reproduce": {
        "always scales, even for the uint8 signature": """def predict_with_savedmodel(export_dir, images):
    signature = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    ((name, spec),) = signature.structured_input_signature[1].items()
    outputs = signature(**{name: tf.cast(data.scale(images), spec.dtype)})
    return (outputs["probabilities"] if "probabilities" in outputs else outputs.popitem()[1]).numpy()
""",
        "never scales: 0..255 floats into the float32 signature": """def predict_with_savedmodel(export_dir, images):
    signature = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    ((name, spec),) = signature.structured_input_signature[1].items()
    outputs = signature(**{name: tf.constant(images, dtype=spec.dtype)})
    return (outputs["probabilities"] if "probabilities" in outputs else outputs.popitem()[1]).numpy()
""",
        "input name hard-coded as images": """def predict_with_savedmodel(export_dir, images):
    signature = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    spec = signature.structured_input_signature[1]["images"]
    batch = images if spec.dtype == tf.uint8 else data.scale(images)
    outputs = signature(images=tf.constant(batch, dtype=spec.dtype))
    return (outputs["probabilities"] if "probabilities" in outputs else outputs.popitem()[1]).numpy()
""",
        "uses the Keras model in memory, not the SavedModel": """def predict_with_savedmodel(export_dir, images):
    return model(data.scale(images)).numpy()
""",
        "returns a tf.Tensor": """def predict_with_savedmodel(export_dir, images):
    signature = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    ((name, spec),) = signature.structured_input_signature[1].items()
    batch = images if spec.dtype == tf.uint8 else data.scale(images)
    outputs = signature(**{name: tf.constant(batch, dtype=spec.dtype)})
    return outputs["probabilities"] if "probabilities" in outputs else outputs.popitem()[1]
""",
        "takes the first output, whatever it is": """def predict_with_savedmodel(export_dir, images):
    signature = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    ((name, spec),) = signature.structured_input_signature[1].items()
    batch = images if spec.dtype == tf.uint8 else data.scale(images)
    outputs = signature(**{name: tf.constant(batch, dtype=spec.dtype)})
    return sorted(outputs.items())[0][1].numpy()
""",
        "returns class ids": """def predict_with_savedmodel(export_dir, images):
    signature = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    ((name, spec),) = signature.structured_input_signature[1].items()
    batch = images if spec.dtype == tf.uint8 else data.scale(images)
    outputs = signature(**{name: tf.constant(batch, dtype=spec.dtype)})
    probabilities = outputs["probabilities"] if "probabilities" in outputs else outputs.popitem()[1]
    return probabilities.numpy().argmax(axis=-1)
""",
    },
    "quiz_01_1": {"a": 'quiz_01_1 = "a"\n', "b": 'quiz_01_1 = "b"\n', "d": 'quiz_01_1 = "D"\n'},
    "quiz_01_2": {"b": 'quiz_01_2 = "b"\n', "c": 'quiz_01_2 = "c"\n', "d": 'quiz_01_2 = "(d)"\n'},
    "quiz_01_3": {"a": 'quiz_01_3 = "a"\n', "c": 'quiz_01_3 = "c"\n', "d": 'quiz_01_3 = "d"\n'},
}

# exact text in a markdown cell -> (results.json -> number, low, high): the number the prose claims
CLAIMS = {
    # section 3: saved_model.pb vs variables/ of keras_export (the same in fast and full mode)
    "about the same size": (
        lambda results: (
            results["keras_export_kb"]["graph"] / results["keras_export_kb"]["variables"]
        ),
        0.5,
        2.0,
    ),
    "tens of kilobytes": (
        lambda results: min(
            results["keras_export_kb"]["graph"], results["keras_export_kb"]["variables"]
        ),
        10,
        99,
    ),
    "about twice the model's weights": (
        lambda results: (
            results["keras_export_kb"]["variables"] / results["keras_export_kb"]["weights"]
        ),
        1.8,
        2.3,
    ),
    # section 7: version 2 (hidden layer twice as wide) against version 1
    "about twice as large as version 1's": (
        lambda results: (
            results["version_kb"]["2"]["variables"] / results["version_kb"]["1"]["variables"]
        ),
        1.8,
        2.2,
    ),
    "is the same size": (
        lambda results: results["version_kb"]["2"]["graph"] / results["version_kb"]["1"]["graph"],
        0.95,
        1.05,
    ),
}
