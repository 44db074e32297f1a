"""scalelab: the small library behind the course notebooks.

Modules, one concern each: `course` (notebook setup), `data`, `models`, `savedmodel`, `plots`,
`serving` (TF Serving backends), `bench` (load and timing), `tflite` and `qat` (LiteRT and
quantization), `cluster` and `distribute` (local tf.distribute clusters), `grading` (nbgrader).
Importing the package never imports TensorFlow, so `course.setup()` can quiet it first.
"""

__version__ = "0.1.0"
