"""scalelab: the small library behind the course notebooks, one folder or module per concern.

- `cli`: the one command line (`scalelab ...`, `python -m scalelab ...`); nothing imports it.
- `course`, `data`, `models`, `savedmodel`, `tflite`, `plots`, `tables`: what notebooks import.
- `processes/`: the one way to start a Python child, a learner's function as a program, clusters.
- `training/`: plumbing around the learner's programs: `distribute`, `tuning`, `qat`.
- `serving/`: model servers, every backend with the same five functions; `local/` the stand-in.
- `clients/`: REST and gRPC clients, the load driver, timing, a throttled proxy, scripted servers.
- `grading/`: the nbgrader workflow, its preprocessors, the sandbox, submissions, student copy.
- `bench/`: the benchmarks, each a function behind `scalelab bench NAME`.
- `answers/`: reference answers per chapter; callers pass them, mechanisms never import them.

Importing the package never imports TensorFlow, so `course.setup()` can quiet it first.
"""

__version__ = "0.1.0"
