"""scalelab: the small library behind the course notebooks.

Modules, one concern each: `course` (notebook setup), `data`, `models`, `savedmodel`, `plots`,
`serving` (TF Serving backends), `bench` (load and timing), `grading` (nbgrader workflow).
Importing the package never imports TensorFlow, so `course.setup()` can quiet it first.
"""

__version__ = "0.1.0"
