"""Notebook setup shared by every chapter: fast mode, quiet TensorFlow, seeds, recorded results."""

from __future__ import annotations

import json
import logging
import os
import random
import warnings
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

from scalelab.processes.children import native_stderr_silenced

RESULTS_FILE = "results.json"
T = TypeVar("T")

# Every size a chapter scales with fast mode, as (fast, full): tuned here, one line per notebook.
SIZES: dict[str, dict[str, tuple[Any, Any]]] = {
    "01_savedmodel": {"epochs": (5, 20)},
    "02_tf_serving": {
        "epochs": (4, 20),
        "seconds_after_deploy": (1.5, 3.0),
        "canary_requests": (100, 400),
        "batching_requests": (200, 1000),
        "lone_requests": (40, 200),
        "warmup_repeats": (3, 7),
    },
    "03_rest_vs_grpc": {
        "requests": (20, 300),
        "concurrency_requests": (400, 1200),
        "epochs": (3, 10),
        "payload_batches": ((1, 4), (1, 4, 16)),
        "digit_batches": ([1, 16, 256, 1024], [1, 4, 16, 64, 256, 1024]),
        "photo_batches": ([1, 2], [1, 4, 16]),
        "photo_requests": (3, 20),
        "breakdown_repeats": (5, 20),
        "links": ([None, (20, 40)], [None, (100, 20), (10, 40)]),
        "link_batches": ([1, 1024], [1, 256, 1024]),
        "link_requests": (6, 30),
        "photo_link_requests": (2, 10),
        "encode_repeats": (5, 9),
    },
    "04_tflite": {"epochs": (5, 20), "qat_epochs": (1, 3)},
    "05_distribution": {"epochs": (5, 10), "steps": (10, 50)},
    "06_tuning": {"trials": (3, 20), "epochs": (3, 9), "distributed_trials": (4, 20)},
    "07_serving_at_scale": {
        "epochs": (3, 10),
        "rollout_seconds": (4.0, 8.0),
        "calls": (20, 60),
        "users": (8, 16),
        "load_seconds": (4, 15),
        "failure_seconds": (3, 6),
    },
}


# Chapter 5's biggest cluster peaks at 2.1 GB with the kernel (`scalelab bench memory`).
SMALL_MEMORY_MB = 3000


def memory_limit_mb() -> float | None:
    """This container's memory limit in MB (cgroup v2, then v1); None where there is none."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:  # v1 writes a huge number for "no limit"
            return int(text) / 2**20
    return None


def small_memory() -> bool:
    """True under 3 GB of memory (Binder gives 1-2 GB), or where SCALELAB_SMALL_MEMORY=1."""
    if "SCALELAB_SMALL_MEMORY" in os.environ:
        return os.environ["SCALELAB_SMALL_MEMORY"] == "1"
    limit = memory_limit_mb()
    return limit is not None and limit < SMALL_MEMORY_MB


def grading() -> bool:
    """True while nbgrader executes the notebook (autograde or validate)."""
    return bool(os.environ.get("NBGRADER_EXECUTION"))


def fast_mode(asked: bool = False) -> bool:
    """Whether this run is in fast mode, the one place that decides: when asked for (the
    notebook's FAST parameter, which papermill sets) or while nbgrader grades, because nbgrader
    runs notebooks without parameters."""
    return bool(asked) or grading()


def setup(chapter: str, fast: bool = False, seed: int = 42) -> SimpleNamespace:
    """Quiet TensorFlow, seed every generator, and return the chapter's sizes for this run.

    The sizes are fast or full as fast_mode(fast) decides (their `fast` says which), printed as
    one line and returned by name: `SIZES = course.setup("01_savedmodel", FAST)`.
    """
    if chapter not in SIZES:
        raise KeyError(f"no sizes for chapter {chapter!r}; chapters: {', '.join(SIZES)}")
    tf = quiet_tensorflow()
    import numpy as np

    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)
    fast = fast_mode(fast)
    chosen = {name: pair[0 if fast else 1] for name, pair in SIZES[chapter].items()}
    print(
        f"scalelab: fast mode {'on' if fast else 'off'}, seed {seed}, TensorFlow {tf.__version__}"
        "; sizes: " + ", ".join(f"{k}={v}" for k, v in chosen.items())
    )
    return SimpleNamespace(fast=fast, **chosen)


def answer(
    student: Callable[[], Callable[..., Any]], reference: Callable[..., Any]
) -> Callable[..., Any]:
    """The student's function (looked up by `student()`), or the library's reference if it fails.

    Later cells call exercise answers through this, so a missing or broken answer costs only
    its own exercise: the call falls back to `reference` and says so once.
    """
    warned: list[Exception] = []

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return student()(*args, **kwargs)
        except Exception as error:  # a stub raises NotImplementedError, a wrong answer anything
            if not warned:
                warned.append(error)
                print(_fallback_note(reference, error))
            return reference(*args, **kwargs)

    return call


def answer_value(student: Callable[[], Any], reference: Callable[[], Any]) -> Any:
    """The value an exercise produced (`student()`), or the reference's if it is missing."""
    try:
        return student()
    except Exception as error:  # NameError when the exercise cell did not run to its end
        print(_fallback_note(reference, error))
        return reference()


def run_program(
    student: Callable[[], Callable[..., Any]],
    reference: Callable[..., Any],
    run: Callable[[Callable[..., Any]], T],
) -> T:
    """run(the student's program), or run(reference) if it is missing or its run fails.

    For exercises whose answer is a program other processes run (a cluster task, a child
    process): a stuck learner still sees the rest of the chapter, and is told why and where.
    """
    try:
        return run(student())
    except Exception as error:  # NameError when unanswered; a ClusterError naming the task
        print(_fallback_note(reference, error))
        return run(reference)


def _fallback_note(reference: Callable[..., Any], error: Exception) -> str:
    name = getattr(reference, "__qualname__", "the reference")
    return (
        f"note: your answer is missing or raised {type(error).__name__} ({error}); "
        f"this cell uses scalelab's reference ({name}) so the rest of the notebook still runs."
    )


def quiet_tensorflow() -> Any:
    """Import TensorFlow with its logs kept off stderr, and return the module.

    nbgrader scores a test cell 0 if it writes anything to stderr, and TensorFlow's C++ and
    Python loggers both do by default.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    with native_stderr_silenced():  # start-up lines C++ prints before its logging is set up
        import tensorflow as tf
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)
    tf.get_logger().setLevel(logging.ERROR)
    tf.autograph.set_verbosity(0)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(tensorflow|keras)")
    warnings.filterwarnings("ignore", category=UserWarning, module=r"keras")
    return tf


def record(key: str, value: Any, path: str | Path = RESULTS_FILE) -> None:
    """Store one result in the notebook's results.json, which CI reads after executing it."""
    path = Path(path)
    results = json.loads(path.read_text()) if path.exists() else {}
    results[key] = _plain(value)
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


def _plain(value: Any) -> Any:
    """Turn NumPy scalars and arrays into JSON-ready Python values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
