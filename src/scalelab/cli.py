"""The project's one command line: `scalelab COMMAND ...` or `python -m scalelab COMMAND ...`.

`serve` runs the local TF Serving stand-in (tensorflow_model_server's flags); `cluster` runs one
task of Chapter 5's training or Chapter 6's search with the reference programs (what k8s/ runs);
`grading` is the instructor's workflow over nbgrader; `bench` runs one benchmark by name. Each
command imports its mechanism only when it runs, so `scalelab serve` starts as fast as the server
can; no mechanism imports this module.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the command; its exit code."""
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["serve"]:  # TF Serving's own flags (--port=8500 ...), not argparse's
        return _serve(words[1:])
    args = _parser().parse_args(words)
    return int(args.run(args) or 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scalelab", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "serve", help="the local TF Serving stand-in (tensorflow_model_server's flags; --help)"
    )
    _cluster_commands(commands.add_parser("cluster", help="one task of a cluster job"))
    _grading_commands(commands.add_parser("grading", help="the instructor's workflow"))
    _bench_commands(commands.add_parser("bench", help="one benchmark (not a test)"))
    return parser


def _serve(flags: list[str]) -> int:
    from scalelab.processes.children import skip_imports

    skip_imports()  # the server never uses scikit-learn, SciPy or matplotlib: it starts sooner
    from scalelab.serving.local import model_server

    return model_server.serve(flags)


# --- cluster: one task's part, with the reference programs ------------------------------------


def _cluster_commands(parser: argparse.ArgumentParser) -> None:
    tasks = parser.add_subparsers(dest="task", required=True, metavar="TASK")
    train = tasks.add_parser("train", help="this task's part of a training job (Chapter 5)")
    train.add_argument("strategy", choices=("mwms", "ps"))
    train.add_argument("--epochs", type=int, default=2, help="mwms: epochs")
    train.add_argument("--steps-per-epoch", type=int, default=20, help="mwms: steps per epoch")
    train.add_argument("--global-batch", type=int, default=64, help="mwms: examples per step")
    train.add_argument("--checkpoint-dir", help="mwms: shared folder to resume from (a volume)")
    train.add_argument("--pause", type=float, default=0.0, help="mwms: seconds after each epoch")
    train.add_argument("--steps", type=int, default=40, help="ps: steps to schedule")
    train.add_argument("--batch", type=int, default=32, help="ps: examples per step")
    train.set_defaults(run=_train)
    tune = tasks.add_parser("tune", help="this task's part of a hyperparameter search (Ch. 6)")
    tune.add_argument("--directory", required=True, help="the search's folder (shared)")
    tune.add_argument("--tuner", choices=("random", "bayesian", "hyperband"), default="random")
    tune.add_argument("--trials", type=int, default=6, help="max trials (random, bayesian)")
    tune.add_argument("--epochs", type=int, default=3, help="epochs per trial (Hyperband: max)")
    tune.set_defaults(run=_tune)


def _train(args: argparse.Namespace) -> None:
    """Run Chapter 5's reference program as this task (TF_CONFIG) and save its result."""
    import tempfile

    from scalelab.processes.children import skip_imports

    skip_imports(["matplotlib"])  # a task needs scikit-learn (digits), no plots
    from scalelab.answers import ch05
    from scalelab.processes.programs import write_result
    from scalelab.training import distribute

    if args.strategy == "ps":
        write_result(ch05.ps_coordinator(args.steps, args.batch))
        return
    folder = args.checkpoint_dir or str(Path(tempfile.mkdtemp(prefix="mwms-")) / "chief")
    result = ch05.mwms_worker(
        args.epochs, args.steps_per_epoch, args.global_batch, folder, args.pause
    )
    write_result({**result, "weights": distribute.digest(result.pop("weights"))})


def _tune(args: argparse.Namespace) -> None:
    """One task of a search with Chapter 6's reference functions: with a chief in TF_CONFIG the
    chief runs the oracle and each worker asks it for trials; without one, it searches alone."""
    from scalelab.processes.children import skip_imports

    skip_imports(["matplotlib"])
    from scalelab.processes.programs import write_result
    from scalelab.training import tuning

    write_result(
        tuning.search_task(
            args.tuner, args.directory, args.trials, args.epochs, functions="scalelab.answers.ch06"
        )
    )


# --- grading: the instructor's workflow ------------------------------------------------------


def _grading_commands(parser: argparse.ArgumentParser) -> None:
    steps = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    chapter_help = "e.g. 01_savedmodel (default: every chapter)"
    steps.add_parser("release", help="notebooks/ from solutions/").add_argument(
        "chapter", nargs="?", help=chapter_help
    )
    steps.add_parser("roster", help="add students from a CSV").add_argument("csv", type=Path)
    collect = steps.add_parser("collect", help="file submissions from a folder or zip files")
    collect.add_argument("chapter")
    collect.add_argument("source", type=Path, help="a folder, a zip, or a folder of zips")
    for name, text in [("autograde", "grade submissions"), ("grade", "all steps for a chapter")]:
        step = steps.add_parser(name, help=text)
        step.add_argument("chapter", nargs=None if name == "grade" else "?", help=chapter_help)
        step.add_argument("-j", "--workers", type=int, default=2, help="notebooks graded at once")
        step.add_argument(
            "--scheduler",
            help="grade on a Dask cluster: its scheduler's address (tcp://host:8786) or file",
        )
        step.add_argument("--sandbox", choices=["auto", "docker", "local"], default="auto")
        step.add_argument("--image", help="the sandbox's image (default: the course image)")
        step.add_argument("--cell-timeout", type=int, help="seconds per cell (config: 120)")
        step.add_argument("--notebook-timeout", type=int, help="seconds per notebook (400)")
        if name == "grade":
            step.add_argument("--roster", type=Path, help="CSV of students to import first")
            step.add_argument("--submissions", type=Path, help="folder or zip to collect from")
    job = steps.add_parser("k8s-job", help="a Kubernetes Indexed Job grading a chapter")
    job.add_argument("chapter")
    job.add_argument("volume", type=Path, help="the shared volume's folder, as mounted here")
    job.add_argument("--image", default="scalelab-lab:0.1.0", help="the course image")
    job.add_argument("--claim", default="grading", help="the volume's PersistentVolumeClaim")
    job.add_argument("--parallelism", type=int, default=4, help="pods at once")
    finish = steps.add_parser("k8s-collect", help="record what the Job graded, then as grade")
    finish.add_argument("chapter")
    finish.add_argument("volume", type=Path)
    for name, text in [("feedback", "HTML feedback"), ("summary", "summary and plot")]:
        steps.add_parser(name, help=text).add_argument("chapter", nargs="?", help=chapter_help)
    steps.add_parser("export", help="grader/grades.csv from the gradebook")
    copy = steps.add_parser("student-copy", help="what students get, without answers")
    copy.add_argument("destination", type=Path, help="a new folder")
    copy.add_argument("--image", help="also build the course's Docker image from it, as this tag")
    for step in steps.choices.values():
        step.set_defaults(run=_grading)
    inside = steps.add_parser("sandbox-run", help="inside a sandbox: execute one notebook")
    inside.add_argument("notebook", type=Path)
    inside.add_argument("--timeout", type=int, default=300, help="seconds per cell")
    inside.add_argument("--notebook-timeout", type=int, default=900)
    inside.add_argument("--max-output-bytes", type=int, default=2_000_000)
    inside.add_argument("--iopub-timeout", type=int, default=4, help="seconds for late outputs")
    inside.set_defaults(run=_sandbox_run)
    pod = steps.add_parser("run-index", help="in a Job's pod: grade the student of its index")
    pod.add_argument("folder", type=Path, help="the chapter's folder on the shared volume")
    pod.add_argument("--index", type=int, help="default: $JOB_COMPLETION_INDEX")
    pod.set_defaults(run=_grading)


def _grading(args: argparse.Namespace) -> int:
    from scalelab import grading

    try:
        _grading_step(args)
    except grading.GradingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _sandbox_run(args: argparse.Namespace) -> None:
    """Inside the sandbox: the executed notebook on stdout, each problem on stderr."""
    from scalelab.grading.preprocessors.guardedexecute import execute_here

    execute_here(
        args.notebook,
        args.timeout,
        args.notebook_timeout,
        args.max_output_bytes,
        args.iopub_timeout,
    )


def _grading_step(args: argparse.Namespace) -> None:
    from scalelab import grading
    from scalelab.grading import student_copy, submissions

    root = grading.find_course_root()
    names = [args.chapter] if getattr(args, "chapter", None) else grading.chapters(root)
    if args.step == "release":
        for path in grading.release(root, args.chapter):
            print(f"released {path.relative_to(root)}")
        found = grading.leaks(root)
        if found:
            raise grading.GradingError("solution text leaked into notebooks/:\n" + "\n".join(found))
    elif args.step == "roster":
        print(f"{len(grading.import_roster(root, args.csv))} students in the gradebook")
    elif args.step == "collect":
        students = grading.gradebook_students(root)
        notes = submissions.collect(root, args.chapter, args.source, students)
        for student, said in notes.items():
            print(f"{student}: " + ("; ".join(said) or "collected"))
    elif args.step in ("autograde", "grade"):
        image = grading.choose_sandbox(args.sandbox, args.image or grading.SANDBOX_IMAGE)
        timeouts = {
            key: value
            for key, value in [
                ("timeout", args.cell_timeout),
                ("notebook_timeout", args.notebook_timeout),
                # how long a stopped cell's last outputs may lag: no longer than a cell
                ("iopub_timeout", args.cell_timeout and min(30, args.cell_timeout)),
            ]
            if value
        }
        if args.step == "grade":
            if args.roster:
                grading.import_roster(root, args.roster)
            if args.submissions:
                submissions.collect(
                    root, args.chapter, args.submissions, grading.gradebook_students(root)
                )
        percents: dict[str, list[float]] = {}
        for name in names:
            percents |= grading.grade(
                root,
                name,
                grading.students(root, name),
                args.workers,
                image,
                timeouts,
                args.scheduler,
            )
        plot = grading.save_plot(root, percents)
        print(f"grades in {root / 'grader' / 'grades.csv'}, plot in {plot}")
    elif args.step == "k8s-job":
        import yaml

        from scalelab.grading import kubernetes

        students = kubernetes.prepare(
            root, args.chapter, grading.students(root, args.chapter), args.volume
        )
        if not students:
            print(f"nothing to grade in {args.chapter}: every submission is graded as handed in")
            return
        manifest = kubernetes.job(
            args.chapter, len(students), args.image, args.claim, args.parallelism
        )
        path = args.volume / args.chapter / "job.yaml"
        path.write_text(yaml.safe_dump(manifest, sort_keys=False))
        name = manifest["metadata"]["name"]
        count = f"{len(students)} submission" + ("s" if len(students) != 1 else "")
        print(f"{count} of {args.chapter} ready in {path.parent}; then:")
        print(f"  kubectl apply -f {path}")
        print(f"  kubectl wait --for=condition=complete --timeout=2h job/{name}")
        print(f"  scalelab grading k8s-collect {args.chapter} {args.volume}")
    elif args.step == "run-index":
        from scalelab.grading import kubernetes

        outcome = kubernetes.run_index(args.folder, args.index)
        print(f"{outcome.student}: {outcome.why or 'graded'} in {outcome.seconds:.0f} s")
    elif args.step == "k8s-collect":
        from scalelab.grading import kubernetes

        students = grading.students(root, args.chapter)
        graded = kubernetes.collect(root, args.chapter, args.volume, students)
        plot = grading.save_plot(root, grading.finish(root, args.chapter, students, graded))
        print(f"grades in {root / 'grader' / 'grades.csv'}, plot in {plot}")
    elif args.step == "summary":
        percents = {}
        for name in names:
            text, percents[name] = grading.summarize(root, name, grading.students(root, name))
            print(text)
        print(f"plot in {grading.save_plot(root, percents)}")
    elif args.step == "feedback":
        for name in names:
            grading.nbgrader(root, "generate_feedback", name, "--force")
        print(f"feedback (hidden tests removed) in {root / 'grader' / 'feedback'}")
    elif args.step == "export":
        grading.nbgrader(root, "export", "--to", str(root / "grader" / "grades.csv"))
        print(f"grades written to {root / 'grader' / 'grades.csv'}")
    else:
        copied = student_copy.student_copy(root, args.destination)
        print(f"student copy in {copied} (left out: {', '.join(student_copy.LEFT_OUT)})")
        if args.image:
            student_copy.build_image(copied, args.image)


# --- bench: one benchmark by name -----------------------------------------------------------


def _bench_commands(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("benchmark", choices=list(BENCHMARKS))
    parser.add_argument("--requests", type=int, default=300, help="rest-vs-grpc: per measurement")
    parser.add_argument("--backend", default=None, help="docker, binary or local (default: auto)")
    parser.add_argument("--mbit", type=float, default=100.0, help="throttled link: Mbit/s")
    parser.add_argument("--rtt", type=float, default=20.0, help="throttled link: RTT in ms")
    parser.add_argument("--steps", type=int, default=200, help="strategies: timed steps")
    parser.add_argument("--global-batch", type=int, default=64, help="strategies: per step")
    parser.add_argument("--trials", type=int, default=12, help="tuning: trials per search")
    parser.add_argument("--submissions", type=_count, default=30, help="grading: per chapter")
    parser.add_argument("--chapters", nargs="*", help="grading, memory: chapters (default: all)")
    parser.add_argument("--full", action="store_true", help="memory: learner mode, not fast mode")
    parser.add_argument("--workers", type=_count, default=2, help="grading: parallel notebooks")
    parser.add_argument("--rounds", type=_count, default=1, help="grading: rounds, ways in turn")
    parser.set_defaults(run=_bench)


def _count(text: str) -> int:
    """A whole number of 1 or more, or argparse's error saying so."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"give a whole number of 1 or more, not {text!r}")
    return int(text)


def _bench(args: argparse.Namespace) -> None:
    from scalelab import course

    course.quiet_tensorflow()  # before anything imports TensorFlow
    print("\n".join(BENCHMARKS[args.benchmark](args)))


def _rest_vs_grpc(args: argparse.Namespace) -> list[str]:
    from scalelab.bench import rest_vs_grpc

    return rest_vs_grpc.report(args.requests, args.backend, args.mbit, args.rtt)


def _tflite(args: argparse.Namespace) -> list[str]:
    from scalelab.bench import tflite

    return tflite.tflite_vs_keras()


def _strategies(args: argparse.Namespace) -> list[str]:
    from scalelab.bench import strategies

    return [strategies.format_table(strategies.bench(args.steps, args.global_batch))]


def _tuning(args: argparse.Namespace) -> list[str]:
    from scalelab.bench import tuning

    return tuning.tuning_speedup(args.trials)


def _grading_bench(args: argparse.Namespace) -> list[str]:
    from scalelab import grading
    from scalelab.bench import grading as grading_bench

    root = grading.find_course_root()
    chapters = args.chapters or grading.chapters(root)
    return grading_bench.grading_throughput(
        root, chapters, args.submissions, args.workers, args.rounds
    )


def _memory(args: argparse.Namespace) -> list[str]:
    from scalelab import grading
    from scalelab.bench import memory

    root = grading.find_course_root()
    lines: list[str] = []
    for chapter in args.chapters or grading.chapters(root):
        lines += memory.peak_memory(root, chapter, fast=not args.full)
    return lines


BENCHMARKS: dict[str, Callable[[argparse.Namespace], list[str]]] = {
    "rest-vs-grpc": _rest_vs_grpc,  # Chapters 2-3: latency, throughput, bytes; on a slow link
    "tflite": _tflite,  # Chapter 4: int8 (PTQ, QAT) against float and Keras
    "strategies": _strategies,  # Chapter 5: steps/s of each tf.distribute strategy
    "tuning": _tuning,  # Chapter 6: trials/min in 1 process, chief + 1 and + 2 workers
    "grading": _grading_bench,  # autograded submissions/min, one at a time and in parallel
    "memory": _memory,  # a chapter's peak memory, kernel and children
}
