"""Charts as inline SVG, drawn on the server.

No chart library and no script: the page's CSP stays strict, the chart prints, and it works
without JavaScript. Colours come from CSS classes (`s0`..`s4`, see admin.css); every chart
carries a <title> and its figures as a table for screen readers (`table()`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 28


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]


def _ceiling(value: float) -> float:
    """A round top for the y axis (1, 2, 5 x 10^n)."""
    if value <= 0:
        return 1
    step = 1.0
    while step * 10 <= value:
        step *= 10
    for factor in (1, 2, 5, 10):
        if step * factor >= value:
            return step * factor
    return step * 10


def _number(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def _frame(title: str, labels: Sequence[str], top: float) -> list[str]:
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for i in range(5):
        y = TOP + inner_h - inner_h * i / 4
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_number(top * i / 4)}</text>'
        )
    parts.append(
        f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" '
        f'y1="{TOP + inner_h}" y2="{TOP + inner_h}"/>'
    )
    if labels:
        every = max(1, len(labels) // 8)
        for i, label in enumerate(labels):
            if i % every:
                continue
            x = LEFT + (inner_w * (i + 0.5) / len(labels))
            parts.append(
                f'<text x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle">{escape(label)}</text>'
            )
    return parts


def line_chart(title: str, labels: Sequence[str], series: Sequence[Series]) -> Markup:
    """One line per series over the same labels (e.g. days)."""
    top = _ceiling(max((max(s.values, default=0) for s in series), default=0))
    parts = _frame(title, labels, top)
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = max(len(labels), 1)
    for index, s in enumerate(series):
        points = " ".join(
            f"{LEFT + inner_w * (i + 0.5) / n:.1f},{TOP + inner_h - inner_h * v / top:.1f}"
            for i, v in enumerate(s.values)
        )
        parts.append(
            f'<polyline class="series s{index % 5}" points="{points}">'
            f"<title>{escape(s.name)}</title></polyline>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every text in it went through escape)


def bar_chart(title: str, labels: Sequence[str], series: Sequence[Series]) -> Markup:
    """Grouped bars: for each label, one bar per series."""
    top = _ceiling(max((max(s.values, default=0) for s in series), default=0))
    parts = _frame(title, labels, top)
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = max(len(labels), 1)
    slot = inner_w / n
    width = slot * 0.8 / max(len(series), 1)
    for index, s in enumerate(series):
        for i, v in enumerate(s.values):
            h = inner_h * v / top
            x = LEFT + slot * i + slot * 0.1 + width * index
            parts.append(
                f'<rect class="s{index % 5}" x="{x:.1f}" y="{TOP + inner_h - h:.1f}" '
                f'width="{width:.1f}" height="{h:.1f}"><title>{escape(s.name)}, '
                f"{escape(labels[i] if i < len(labels) else '')}: {_number(v)}</title></rect>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every text in it went through escape)


def legend(series: Sequence[Series]) -> Markup:
    items = "".join(
        f'<li><span class="key k{i % 5}"></span>{escape(s.name)}</li>' for i, s in enumerate(series)
    )
    return Markup(f'<ul class="legend">{items}</ul>')  # noqa: S704 (names escaped)


def table(caption: str, labels: Sequence[str], series: Sequence[Series]) -> Markup:
    """The chart's figures, for screen readers and for copying (inside a <details>)."""
    head = "".join(f'<th class="num">{escape(s.name)}</th>' for s in series)
    rows = "".join(
        f"<tr><td>{escape(label)}</td>"
        + "".join(
            f'<td class="num">{_number(s.values[i]) if i < len(s.values) else ""}</td>'
            for s in series
        )
        + "</tr>"
        for i, label in enumerate(labels)
    )
    html = (
        f'<details><summary>{escape(caption)} (table)</summary><div class="table-wrap">'
        f'<table class="list"><thead><tr><th></th>{head}</tr></thead><tbody>{rows}</tbody>'
        "</table></div></details>"
    )
    return Markup(html)  # noqa: S704 (every text in it went through escape)
