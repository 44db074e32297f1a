"""Every chart the chapters draw, with one consistent look."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import (
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
    ScalarFormatter,
)

from scalelab.tables import Table


def _with_source(fig: Figure, source: str) -> Figure:
    """Name the server that produced the figure's numbers under its title, then lay it out."""
    if source:
        title = fig.get_suptitle()
        line = source if source.startswith(("server", "no server")) else f"server: {source}"
        fig.suptitle(f"{title}\n{line}" if title else line, fontsize=10)
    fig.tight_layout()
    return fig


def _lines(rows: Sequence[dict[str, Any]], by: str, x: str, columns: dict[Axes, str]) -> None:
    """On each axis, one line per value of `by`: that axis's column against `x`, sorted by `x`."""
    for label in dict.fromkeys(row[by] for row in rows):
        mine = sorted((r for r in rows if r[by] == label), key=lambda r: r[x])
        for ax, column in columns.items():
            ax.plot([r[x] for r in mine], [r[column] for r in mine], marker="o", label=label)


def show_digits(
    images: np.ndarray,
    labels: Sequence[int],
    predictions: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    n: int = 12,
) -> Figure:
    """A row of images titled with their label (and prediction; wrong ones in red)."""
    n = min(n, len(images))
    fig, axes = plt.subplots(1, n, figsize=(1.1 * n, 1.6), squeeze=False)
    names = class_names or [str(i) for i in range(int(max(labels[:n])) + 1)]
    for i, ax in enumerate(axes[0]):
        ax.imshow(images[i], cmap="binary")
        ax.set_axis_off()
        title = f"{names[labels[i]]}"
        color = "black"
        if predictions is not None:
            title = f"{names[labels[i]]}→{names[predictions[i]]}"
            color = "black" if predictions[i] == labels[i] else "red"
        ax.set_title(title, fontsize=9, color=color)
    fig.suptitle("label→prediction" if predictions is not None else "label", fontsize=9, y=0.98)
    fig.tight_layout()
    return fig


def training_curves(history: dict[str, list[float]]) -> Figure:
    """Loss and accuracy per epoch, training vs validation."""
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(9, 3))
    for key, values in history.items():
        ax = acc_ax if "acc" in key else loss_ax
        ax.plot(range(1, len(values) + 1), values, label=key, marker=".")
    for ax, title in ((loss_ax, "loss"), (acc_ax, "accuracy")):
        ax.set(xlabel="epoch", title=title)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def file_sizes(files: Sequence[tuple[str, int]], title: str = "Files in the SavedModel") -> Figure:
    """Horizontal bars of file sizes in KiB, largest at the top."""
    ordered = sorted(files, key=lambda item: item[1])
    names = [name for name, _ in ordered]
    kib = [size / 1024 for _, size in ordered]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1))
    bars = ax.barh(names, kib, color="tab:blue")
    labels = [f"{size / 1024:,.1f} KiB" if size >= 1024 else f"{size} B" for _, size in ordered]
    ax.bar_label(bars, labels=labels, padding=3, fontsize=8)
    ax.set(xlabel="size (KiB)", title=title)
    ax.set_xlim(0, max(kib) * 1.3)
    fig.tight_layout()
    return fig


def latency_over_time(
    samples: Sequence[Any], marker: float | None = None, marker_label: str = "", source: str = ""
) -> Figure:
    """Each request's latency against when it started, coloured by what it returned (a version)."""
    fig, ax = plt.subplots(figsize=(9, 3.2))
    answers = sorted({s.result for s in samples if s.error is None}, key=str)
    for answer in answers:
        points = [
            (s.start, s.latency * 1000) for s in samples if s.error is None and s.result == answer
        ]
        starts, latencies_ms = zip(*points, strict=True)
        ax.scatter(starts, latencies_ms, s=8, label=f"answered by version {answer}")
    failed = [(s.start, s.latency * 1000) for s in samples if s.error is not None]
    if failed:
        starts, latencies_ms = zip(*failed, strict=True)
        ax.scatter(starts, latencies_ms, s=30, marker="x", color="red", label="failed")
    if marker is not None:
        ax.axvline(marker, color="gray", linestyle="--", label=marker_label or None)
    ax.set(xlabel="time since the load started (s)", ylabel="latency (ms)", yscale="log")
    latencies = [s.latency * 1000 for s in samples]
    if latencies:  # labelled 1-2-5 ticks, one at or beyond each end: never a lone tick
        ticks = _one_two_five(min(latencies), max(latencies))
        ax.set_ylim(ticks[0] / 1.15, ticks[-1] * 1.15)
        ax.set_yticks(ticks, labels=[f"{tick:g}" for tick in ticks])
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_title("Request latency over time")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    return _with_source(fig, source)


def _one_two_five(low: float, high: float) -> list[float]:
    """The 1-2-5 steps (..., 1, 2, 5, 10, 20, ...) from the largest at or below `low` to the
    smallest at or above `high`: at least two, for a log axis spanning low..high."""
    low = max(low, 1e-3)
    high = max(high, low * 1.01)
    first, last = int(np.floor(np.log10(low))), int(np.ceil(np.log10(high)))
    steps = [m * 10.0**e for e in range(first, last + 1) for m in (1, 2, 5)]
    bottom = max(step for step in steps if step <= low * (1 + 1e-9))
    top = min(step for step in steps if step >= high * (1 - 1e-9))
    return [step for step in steps if bottom <= step <= top]


def traffic_split(hits_by_label: dict[str, np.ndarray], source: str = "") -> Figure:
    """Requests each label served, annotated with the share it got right."""
    labels = list(hits_by_label)
    counts = [len(hits_by_label[label]) for label in labels]
    fig, ax = plt.subplots(figsize=(5, 3))
    bars = ax.bar(labels, counts, color=["tab:blue", "tab:orange", "tab:green"][: len(labels)])
    notes = [
        f"{len(h)} requests\n{np.mean(h):.0%} correct" if len(h) else "no requests"
        for h in hits_by_label.values()
    ]
    ax.bar_label(bars, labels=notes, padding=3, fontsize=8)
    ax.set(ylabel="requests", title="Traffic split by version label")
    ax.set_ylim(0, max(counts) * 1.35 + 1)
    return _with_source(fig, source)


def table(rows: Sequence[dict[str, Any]]) -> Table:
    """Show rows of results as a table (HTML in a notebook, aligned text in a terminal)."""
    return Table(rows)


def latency_distributions(
    latencies_by_name: dict[str, Sequence[float]], source: str = ""
) -> Figure:
    """Cumulative distribution of latencies (given in seconds) per protocol, log x.

    `source` names the server that answered (e.g. bench.describe_server(server)).
    """
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for name, latencies in latencies_by_name.items():
        values = np.sort(np.asarray(latencies) * 1000)
        ax.plot(
            values, np.linspace(0, 1, len(values)), label=f"{name} (p50 {np.median(values):.2f} ms)"
        )
    ax.set(xscale="log", xlabel="latency (ms)", ylabel="share of requests at most this slow")
    ax.set_title("Latency distribution, one instance per request")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _with_source(fig, source)


def batch_sweep(rows: Sequence[dict[str, Any]], title: str = "", source: str = "") -> Figure:
    """Throughput (instances/s) and p50 latency against batch size, one line per protocol."""
    fig, (speed_ax, latency_ax) = plt.subplots(1, 2, figsize=(10, 3.4))
    _lines(rows, "protocol", "batch size", {speed_ax: "instances/s", latency_ax: "p50 ms"})
    speed_ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="instances/s")
    latency_ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="p50 latency (ms)")
    speed_ax.set_title("Throughput")
    latency_ax.set_title("Latency per request")
    for ax in (speed_ax, latency_ax):
        ax.grid(alpha=0.3, which="both")
    speed_ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _with_source(fig, source)


def payload_per_instance(rows: Sequence[dict[str, Any]], source: str = "") -> Figure:
    """Bytes sent per instance against batch size, one line per encoding."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    _lines(rows, "encoding", "batch size", {ax: "bytes/instance"})
    ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="request bytes per instance")
    ax.set_xticks(sorted({r["batch size"] for r in rows}))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_title("What one instance costs on the wire")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _with_source(fig, source)


def concurrency_sweep(rows: Sequence[dict[str, Any]], source: str = "") -> Figure:
    """Throughput and p50 latency against the number of concurrent clients, per protocol."""
    fig, (speed_ax, latency_ax) = plt.subplots(1, 2, figsize=(10, 3.2))
    _lines(rows, "protocol", "clients", {speed_ax: "requests/s", latency_ax: "p50 ms"})
    speed_ax.set(xlabel="concurrent clients", ylabel="requests/s", title="Throughput")
    latency_ax.set(xlabel="concurrent clients", ylabel="p50 latency (ms)", title="Latency")
    for ax in (speed_ax, latency_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    speed_ax.legend(fontsize=8)
    return _with_source(fig, source)


STEPS = ("encode ms", "transfer ms", "server ms", "decode ms")
STEP_COLORS = ("tab:blue", "tab:gray", "tab:red", "tab:cyan")


def time_breakdown(rows: Sequence[dict[str, Any]], source: str = "") -> Figure:
    """Where one request's time goes: stacked bars per protocol, one panel per batch size.

    Rows are bench.time_breakdown()'s: client encode, transfer, server, client decode (ms).
    """
    sizes = sorted({r["batch size"] for r in rows})
    protocols = list(dict.fromkeys(r["protocol"] for r in rows))
    fig, axes = plt.subplots(
        1, len(sizes), figsize=(3.6 * len(sizes) + 1, 0.45 * len(protocols) + 1.6), squeeze=False
    )
    for ax, size in zip(axes[0], sizes, strict=True):
        mine = {r["protocol"]: r for r in rows if r["batch size"] == size}
        names = [p for p in protocols if p in mine][::-1]  # first protocol on top
        left = np.zeros(len(names))
        for step, color in zip(STEPS, STEP_COLORS, strict=True):
            widths = np.array([mine[n][step] for n in names], dtype=float)
            ax.barh(names, widths, left=left, color=color, label=step.replace(" ms", ""))
            left += np.nan_to_num(widths)
        for y, total in enumerate(left):
            ax.annotate(f"{total:.1f} ms", (total, y), xytext=(3, 0), textcoords="offset points",
                        va="center", fontsize=7)  # fmt: skip
        ax.set_xlim(0, max(left.max(), 1e-3) * 1.3)
        ax.set(title=f"batch {size}", xlabel="ms per request")
        ax.grid(alpha=0.3, axis="x")
    for ax in axes[0][1:]:
        ax.tick_params(labelleft=False)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(STEPS), fontsize=8, frameon=False)
    fig.suptitle("Where the time of one request goes (client encode, transfer, server, decode)")
    _with_source(fig, source)
    fig.subplots_adjust(bottom=fig.subplotpars.bottom + 0.1)  # room for the legend
    return fig


def link_comparison(
    rows: Sequence[dict[str, Any]],
    source: str = "",
    title: str = "Throughput on loopback and through a throttled link (one client)",
) -> Figure:
    """Instances/s per protocol on each link (bars), one panel per batch size, log scale.

    Rows are bench.through_links()'s; each group is annotated with gRPC's speed over REST row's.
    """
    sizes = sorted({r["batch size"] for r in rows})
    links = list(dict.fromkeys(r["link"] for r in rows))
    protocols = list(dict.fromkeys(r["protocol"] for r in rows))
    fig, axes = plt.subplots(1, len(sizes), figsize=(3.8 * len(sizes) + 1, 3.6), squeeze=False)
    width = 0.8 / len(protocols)
    for ax, size in zip(axes[0], sizes, strict=True):
        speed = {
            (r["link"], r["protocol"]): r["instances/s"] for r in rows if r["batch size"] == size
        }
        for i, protocol in enumerate(protocols):
            values = [speed.get((link, protocol), np.nan) for link in links]
            ax.bar(np.arange(len(links)) + (i - (len(protocols) - 1) / 2) * width, values, width,
                   label=protocol)  # fmt: skip
        for x, link in enumerate(links):
            grpc, rest = speed.get((link, "gRPC")), speed.get((link, "REST row"))
            if grpc and rest:
                top = max(v for (lk, _), v in speed.items() if lk == link)
                ax.annotate(f"gRPC {grpc / rest:.1f}×", (x, top), xytext=(0, 3),
                            textcoords="offset points", ha="center", fontsize=7)  # fmt: skip
        ax.set_xticks(range(len(links)), [link.replace(", ", "\n") for link in links], fontsize=7)
        ax.set(yscale="log", title=f"batch {size}", ylabel="instances/s")
        low, high = ax.get_ylim()
        ax.set_ylim(low, high * 2)  # room for the ratios
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.grid(alpha=0.3, axis="y", which="both")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title)
    return _with_source(fig, source)


def op_counts(before: dict[str, int], after: dict[str, int], top: int = 14) -> Figure:
    """Op types in the SavedModel (left) and operators in the TFLite model (right)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, counts, title in ((left, before, "SavedModel graph"), (right, after, "TFLite model")):
        items = sorted(counts.items(), key=lambda item: item[1])[-top:]
        ax.barh([name for name, _ in items], [count for _, count in items], color="tab:blue")
        ax.set(title=f"{title}: {sum(counts.values())} ops", xlabel="count")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    return fig


def size_accuracy(
    rows: Sequence[dict[str, Any]], baseline: str = "TFLite float", points: float = 1.0
) -> Figure:
    """Accuracy against file size (log scale) per variant: the `baseline` row as a dashed line,
    the band `points` accuracy points below it, each point labelled with its size ratio."""
    base = next(r for r in rows if r["variant"] == baseline)
    base_pct = 100 * base["accuracy"]
    fig, ax = plt.subplots(figsize=(8.5, 4.2))
    ax.axhline(base_pct, color="black", linestyle="--", linewidth=1)
    ax.axhspan(base_pct - points, base_pct, color="tab:green", alpha=0.12,
               label=f"at most {points:g} point below {baseline}")  # fmt: skip
    for i, row in enumerate(sorted(rows, key=lambda r: r["KB"])):
        pct = 100 * row["accuracy"]
        is_base = row["variant"] == baseline
        style = {"marker": "*", "s": 160, "color": "black"} if is_base else {"s": 60}
        ax.scatter(row["KB"], pct, zorder=3, **style)
        ratio = base["KB"] / row["KB"]
        size = f"{ratio:.1f}× smaller" if ratio >= 1 else f"{1 / ratio:.1f}× larger"
        size = "baseline" if is_base else size
        above = i % 2 == 0  # alternate, so neighbours' labels do not overlap
        ax.annotate(f"{row['variant']}\n{row['KB']:,.0f} KB, {size}\n{pct:.1f}%",
                    (row["KB"], pct), xytext=(0, 10 if above else -10), fontsize=7.5,
                    textcoords="offset points", ha="center",
                    va="bottom" if above else "top")  # fmt: skip
    accuracies = [100 * r["accuracy"] for r in rows]
    ax.set_ylim(min(*accuracies, base_pct - points) - 2 * points,
                max(*accuracies, base_pct) + 2 * points)  # fmt: skip
    sizes = [r["KB"] for r in rows]
    ax.set_xscale("log")
    ax.set_xlim(min(sizes) / 1.6, max(sizes) * 1.6)
    ax.xaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set(xlabel="file size (KB, log scale): smaller is to the left", ylabel="test accuracy (%)")
    ax.set_title(f"Size vs accuracy: dashed line = {baseline}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def quantization_accuracy(rows: Sequence[dict[str, Any]], baseline: str = "float") -> Figure:
    """Test accuracy of each quantized variant as bars, the `baseline` row as a dashed line."""
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(rows) + 1.2))
    names = [r["model"] for r in rows][::-1]
    accuracies = [r["accuracy"] for r in rows][::-1]
    colors = ["tab:gray" if n == baseline else "tab:blue" for n in names]
    bars = ax.barh(names, accuracies, color=colors)
    ax.bar_label(bars, labels=[f"{a:.3f}" for a in accuracies], padding=3, fontsize=8)
    base = next(r["accuracy"] for r in rows if r["model"] == baseline)
    ax.axvline(base, color="black", linestyle="--", linewidth=1)
    ax.set(xlabel="test accuracy", title="Same small model, quantized four ways")
    ax.set_xlim(0, 1.12)
    fig.tight_layout()
    return fig


def seconds_per_epoch(rows: Sequence[dict[str, Any]]) -> Figure:
    """Time per epoch for each strategy, annotated with its final accuracy."""
    fig, ax = plt.subplots(figsize=(7, 3))
    bars = ax.barh([r["strategy"] for r in rows], [r["s/epoch"] for r in rows], color="tab:blue")
    ax.bar_label(
        bars, labels=[f"accuracy {r['final accuracy']:.3f}" for r in rows], padding=3, fontsize=8
    )
    ax.set(xlabel="seconds per epoch", title="Same model, same data, per strategy")
    ax.set_xlim(0, max(r["s/epoch"] for r in rows) * 1.5)
    fig.tight_layout()
    return fig


def scaling(rows: Sequence[dict[str, Any]]) -> Figure:
    """Examples/s against the number of workers, with the ideal linear line."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    workers = [r["workers"] for r in rows]
    speed = [r["examples/s"] for r in rows]
    ax.plot(workers, speed, marker="o", label="measured")
    ax.plot(
        workers, [speed[0] * w / workers[0] for w in workers], "--", color="gray", label="ideal"
    )
    ax.set(xlabel="workers", ylabel="examples/s", title="MultiWorkerMirroredStrategy scaling")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def search_progress(runs: dict[str, Sequence[dict[str, Any]]]) -> Figure:
    """One column per search: each trial's score (dot area ~ epochs) and the best so far,
    against trial number (top) and seconds since the search started (bottom), on shared axes."""
    fig, axes = plt.subplots(
        2, len(runs), figsize=(3.4 * len(runs), 5.6), sharey=True, sharex="row", squeeze=False
    )
    for column, (name, log) in enumerate(runs.items()):
        done = sorted((r for r in log if r["ended"] is not None), key=lambda r: r["ended"])
        start = min(r["started"] for r in log)
        scores = [r["score"] or 0.0 for r in done]
        best = np.maximum.accumulate(scores)
        sizes = [12 * (r["epochs"] or 1) for r in done]
        for row, x in enumerate(
            (np.arange(1, len(done) + 1), np.array([r["ended"] - start for r in done]))
        ):
            ax = axes[row, column]
            ax.scatter(x, scores, s=sizes, alpha=0.5, label="trial (area ~ epochs)")
            ax.step(x, best, where="post", color="tab:red", label="best so far")
            ax.grid(alpha=0.3)
            ax.set_xlabel("trial (in order of ending)" if row == 0 else "seconds since start")
        axes[0, column].set_title(name)
        axes[0, column].xaxis.set_major_locator(MaxNLocator(integer=True))
    for row in range(2):
        axes[row, 0].set_ylabel("validation accuracy")
    axes[0, 0].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def trial_timeline(
    runs: Sequence[dict[str, Any]],
    title: str = "Who ran which trial",
    killed_at: float | None = None,
) -> Figure:
    """A bar per trial run on its worker's row, labelled with trial id and score. A run whose worker
    died is red up to `killed_at`, then hatched while the oracle still holds its trial."""
    workers = sorted({r["worker"] for r in runs})
    start = min(r["started"] for r in runs)
    now = max(r["ended"] or r["started"] for r in runs)
    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.55 * len(workers)))

    def bar(row: int, left: float, right: float, label: str, **style: Any) -> None:
        ax.barh(row, right - left, left=left - start, height=0.6, **style)
        held = bool(style.get("hatch"))  # a white box keeps the label readable over the hatching
        box = {"facecolor": "white", "edgecolor": "none", "pad": 1} if held else None
        ax.text((left + right) / 2 - start, row, label, ha="center", va="center", fontsize=8,
                color="tab:red" if held else "white", bbox=box)  # fmt: skip

    for run in runs:
        row = workers.index(run["worker"])
        if run["ended"] is not None:
            label = (
                f"{run['trial']}: {run['score']:.2f}" if run["score"] is not None else run["trial"]
            )
            bar(row, run["started"], run["ended"], label, color="tab:blue", edgecolor="white")
            continue
        died = killed_at or run["started"]
        later = [r["started"] for r in runs if r["worker"] == run["worker"] and r["started"] > died]
        bar(row, run["started"], died, "killed", color="tab:red", edgecolor="white")
        bar(row, died, min(later, default=now), f"trial {run['trial']} held by the dead worker",
            color="white", edgecolor="tab:red", hatch="//")  # fmt: skip
    ax.set_yticks(range(len(workers)), workers)
    ax.set(xlabel="seconds since the first trial started", title=title)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def score_distribution(percent_by_chapter: Mapping[str, Sequence[float]]) -> Figure:
    """The instructor's view: how many students scored what, one panel per chapter."""
    count = max(1, len(percent_by_chapter))
    fig, axes = plt.subplots(1, count, figsize=(3.2 * count, 3), sharey=True, squeeze=False)
    bins = np.linspace(0, 100, 11)
    for ax, (chapter, percents) in zip(axes[0], percent_by_chapter.items(), strict=False):
        ax.hist(percents, bins=bins, color="tab:blue", edgecolor="white")
        mean = float(np.mean(percents)) if len(percents) else 0.0
        ax.set_title(f"{chapter}\n{len(percents)} students, mean {mean:.0f}%", fontsize=9)
        ax.set_xlabel("autograded score (%)")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0][0].set_ylabel("students")
    fig.suptitle("Score distribution per chapter")
    fig.tight_layout()
    return fig


def answering_versions(runs: Mapping[str, Sequence[dict[str, Any]]]) -> Figure:
    """One panel per run: the version each replica answered with, call by call, over time."""
    fig, axes = plt.subplots(len(runs), 1, figsize=(9, 1.2 + 1.4 * len(runs)), squeeze=False)
    for ax, (title, rows) in zip(axes[:, 0], runs.items(), strict=True):
        versions = sorted({r["version"] for r in rows if r["version"] is not None})
        replicas = sorted({r["replica"] for r in rows})
        for version in versions:
            points = [(r["seconds"], r["replica"]) for r in rows if r["version"] == version]
            seconds, replica = zip(*points, strict=True)
            ax.scatter(seconds, replica, s=10, label=f"version {version}")
        failed = [(r["seconds"], r["replica"]) for r in rows if r["version"] is None]
        if failed:
            seconds, replica = zip(*failed, strict=True)
            ax.scatter(seconds, replica, s=30, marker="x", color="red", label="failed")
        ax.set_yticks(replicas, [f"replica {r}" for r in replicas])
        ax.set_ylim(min(replicas) - 0.6, max(replicas) + 0.6)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, axis="x")
        ax.legend(loc="center right", fontsize=8)
    axes[-1, 0].set_xlabel("seconds since the version was published")
    fig.tight_layout()
    return fig


def per_replica(rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str = "") -> Figure:
    """A bar chart per column: each replica's value (rows have "replica" and the columns)."""
    fig, axes = plt.subplots(1, len(columns), figsize=(3.2 * len(columns), 2.8), squeeze=False)
    names = [str(row["replica"]) for row in rows]
    for ax, column in zip(axes[0], columns, strict=True):
        bars = ax.bar(names, [row[column] for row in rows], color="tab:blue")
        ax.bar_label(bars, fmt="%.4g", fontsize=8)
        ax.set(title=column, xlabel="replica")
        ax.margins(y=0.2)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def autoscaling(
    traffic: np.ndarray,
    capacity: float,
    runs: Mapping[str, Mapping[str, np.ndarray]],
    zoom: tuple[float, float] = (18.75, 19.75),
) -> Figure:
    """Offered load against the ready capacity of each autoscaler run, minute by minute: the
    whole day above, the hours in `zoom` below with the load beyond capacity shaded."""
    fig, (day, close) = plt.subplots(2, 1, figsize=(9, 6))
    hours = np.arange(len(traffic)) / 60
    shown = (hours >= zoom[0]) & (hours <= zoom[1])
    for ax, keep in ((day, slice(None)), (close, shown)):
        ax.plot(hours[keep], traffic[keep], color="black", linewidth=1, label="offered load")
        for label, run in runs.items():
            ready = run["ready"][keep] * capacity
            line = ax.step(
                hours[keep], ready, where="post", linewidth=1.2, label=f"capacity, {label}"
            )
            if ax is close:
                load = traffic[keep]
                ax.fill_between(hours[keep], ready, load, where=load > ready, step="post",
                                color=line[0].get_color(), alpha=0.3)  # fmt: skip
        ax.set(ylabel="requests/s")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    day.set(
        xlabel="hour of the day", title="Offered load and the capacity the autoscaler had ready"
    )
    close.set(xlabel=f"hour of the day ({zoom[0]:g} to {zoom[1]:g}); shaded: load beyond capacity")
    fig.tight_layout()
    return fig


def load_runs(rows: Sequence[dict[str, Any]]) -> Figure:
    """Load-test runs side by side: requests answered each second (left), p50 and p99 (right)."""
    fig, (rate, tails) = plt.subplots(1, 2, figsize=(10, 3.2), width_ratios=[3, 2])
    names = [str(row["setup"]) for row in rows]
    for row in rows:
        per_second = row["requests per second"]
        rate.plot(range(len(per_second)), per_second, marker="o", label=row["setup"])
    rate.set(xlabel="second of the run", ylabel="requests answered", title="Throughput")
    rate.set_ylim(bottom=0)
    rate.legend(fontsize=8)
    rate.grid(alpha=0.3)
    x = np.arange(len(rows))
    for offset, column in ((-0.2, "p50 ms"), (0.2, "p99 ms")):
        bars = tails.bar(x + offset, [row[column] for row in rows], width=0.4, label=column)
        tails.bar_label(bars, fmt="%.3g", fontsize=8)
    labels = [name.replace(", ", "\n").replace(" through", "\nthrough") for name in names]
    tails.set_xticks(x, labels)
    tails.tick_params(axis="x", labelsize=8)
    tails.set(ylabel="ms", title="Latency")
    tails.margins(y=0.2)
    tails.legend(fontsize=8)
    fig.tight_layout()
    return fig
