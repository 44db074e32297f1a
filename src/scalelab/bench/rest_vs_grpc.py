"""REST against gRPC on the digits model: the batch-size sweep, where one request's time goes,
and the same comparison through a throttled link."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from scalelab.clients import timing
from scalelab.clients.driver import run_load
from scalelab.clients.rest_grpc import by_name, describe_server


def rest_vs_grpc(
    rest_url: str,
    grpc_target: str,
    model: str,
    images: np.ndarray,
    batch_sizes: Sequence[int] = (1, 16, 64, 256, 1024),
    requests: int = 100,
) -> list[dict[str, Any]]:
    """Throughput and latency of each protocol at each batch size, one row per measurement."""
    rows = []
    for batch_size in batch_sizes:
        batch = np.resize(images, (batch_size, *images.shape[1:]))
        count = max(10, requests // max(1, batch_size // 64))
        for name, client in by_name(rest_url, grpc_target, model).items():
            send = lambda c=client, b=batch: c.predict(b)  # noqa: E731
            row = run_load(send, requests=count, instances=batch_size)
            rows.append({"protocol": name, **row})
    return rows


def ratio(rows: Sequence[dict[str, Any]], batch_size: int, column: str = "instances/s") -> float:
    """gRPC's `column` divided by REST row's at `batch_size`, from rest_vs_grpc()'s rows."""
    value: dict[str, float] = {
        r["protocol"]: r[column] for r in rows if r["batch size"] == batch_size
    }
    return value["gRPC"] / value["REST row"]


def report(
    requests: int = 300, backend: str | None = None, mbit: float = 100.0, rtt: float = 20.0
) -> list[str]:
    """The whole comparison on a server of `backend` (default: auto), as lines of text."""
    import functools
    import tempfile
    from pathlib import Path

    from scalelab import data, models, plots, savedmodel, serving

    digits = data.load("digits")
    model, _ = models.train_classifier(digits, epochs=2)
    link = (mbit, rtt)
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch) / "digits"
        savedmodel.export_classifier(model, base / "0001", digits.class_names)
        with serving.start(base, "digits", backend=backend) as server:
            clients = by_name(server.rest_url, server.grpc_target, "digits", ["REST row", "gRPC"])
            one = digits.x_test[:1]
            # twice: the first round warms the server up, the second is measured
            for _ in range(2):
                single = [
                    {"protocol": name, **run_load(functools.partial(c.predict, one), requests=500)}
                    for name, c in clients.items()
                ]
            rows = rest_vs_grpc(
                server.rest_url, server.grpc_target, "digits", digits.x_test, requests=requests
            )
            sizes = sorted({1, 256, max(r["batch size"] for r in rows)})
            steps = timing.time_breakdown(
                server.rest_url, server.grpc_target, "digits", digits.x_test, sizes
            )
            measured = timing.measure_link(*link)
            linked = timing.through_links(
                server.rest_url, server.grpc_target, "digits", digits.x_test,
                links=[link], batch_sizes=sizes, requests=40,
            )  # fmt: skip
            source = describe_server(server)
    columns = ["protocol", "batch size", "p50 ms", "p99 ms", "instances/s", "bytes sent/instance"]
    lines = [f"server: {source}; model: digits (8x8 uint8 images)"]
    lines.append(str(plots.table([{c: r[c] for c in columns} for r in single + rows])))
    lines.append("\nwhere one request's time goes (medians, ms; server = round trip - transfer):")
    columns = ["protocol", "batch size", *timing.STEP_COLUMNS, "total ms", "request bytes"]
    lines.append(str(plots.table([{c: r[c] for c in columns} for r in steps])))
    for row in steps:
        if row["protocol"] == "REST row":
            lines.append(
                f"server share of REST row latency at batch {row['batch size']}: "
                f"{100 * row['server share']:.0f}% ({row['server ms']:.2f} of "
                f"{row['total ms']:.2f} ms)"
            )
    label = linked[0]["link"]
    lines.append(
        f"\nthrottled link asked: {label}; measured: {measured['rtt ms']} ms for a small "
        f"request, {measured['Mbit/s']} Mbit/s for a 1 MB upload"
    )
    largest = max(r["batch size"] for r in rows)
    lines.append(
        f"single instance p50: REST {single[0]['p50 ms']} ms, gRPC {single[1]['p50 ms']} ms"
    )
    for size in sizes[1:]:
        loop = f"loopback {ratio(rows, size):.2f}"
        through = timing.link_ratios(linked, label, size)
        lines.append(
            f"batch {size}: gRPC/REST throughput {loop}, {label} "
            f"{through['gRPC/REST row']:.2f}; REST gzip/REST row on the link "
            f"{through['REST gzip/REST row']:.2f}"
        )
    if 256 in {r["batch size"] for r in rows} and largest != 256:
        lines.append(f"gRPC/REST throughput ratio at batch 256: {ratio(rows, 256):.2f}")
    lines.append(f"gRPC/REST throughput ratio at batch {largest}: {ratio(rows, largest):.2f}")
    return lines
