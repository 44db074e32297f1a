"""Every chart the chapters draw, with one consistent look."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


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
