"""The verifier benchmark's report: the table, the ratios the verifier is held to (issue
17), and the plot as an SVG written here (no plotting library needed for two bar charts).

Per target the median over rounds; each ratio is taken within a round, then the median.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape
from statistics import median
from typing import Protocol


class Row(Protocol):
    key: str
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int

    @property
    def per_cpu_second(self) -> float | None: ...


Rounds = Sequence[Sequence[Row]]

#: (label, numerator, denominator, what: rps | p99 | cpu, comparison, bound). A ratio is
#: printed when both of its targets ran; a bound of 0 means "for information".
RATIOS: tuple[tuple[str, str, str, str, str, float], ...] = (
    ("c/a  cached path vs nginx floor", "c", "a", "rps", ">=", 0.5),
    ("c/b  cached path vs bare uvicorn app", "c", "b", "rps", ">=", 1.7),
    ("p99(c)/p99(b)", "c", "b", "p99", "<=", 1.0),
    ("c/o  req per CPU-s vs oauth2-proxy cookie", "c", "o", "cpu", ">=", 4.0),
    ("d/e  cold path vs seed verifier", "d", "e", "rps", ">=", 3.0),
    ("c/e  cached path vs seed verifier", "c", "e", "rps", ">=", 8.0),
    ("c/b  req per CPU-s vs bare uvicorn app", "c", "b", "cpu", "", 0),
    ("d/e  req per CPU-s, cold path vs seed", "d", "e", "cpu", "", 0),
    ("c/o  throughput vs oauth2-proxy cookie", "c", "o", "rps", "", 0),
    ("c/r  throughput vs oauth2-proxy Redis", "c", "r", "rps", "", 0),
    ("k/c  cookie vs bearer", "k", "c", "rps", "", 0),
    ("u/b  under uvicorn vs bare uvicorn app", "u", "b", "rps", "", 0),
    ("c/u  own server vs under uvicorn", "c", "u", "rps", "", 0),
    ("u/o  req per CPU-s, uvicorn vs oauth2-proxy", "u", "o", "cpu", "", 0),
    ("w/c  2 workers vs 1", "w", "c", "rps", "", 0),
    ("n/a  nginx auth process vs nginx floor", "n", "a", "rps", "", 0),
    ("c/n  cached path vs nginx auth process", "c", "n", "rps", "", 0),
    ("b/n  bare uvicorn app vs nginx auth process", "b", "n", "rps", "", 0),
)


def table(rounds: Rounds) -> None:
    names = [r.name for r in rounds[0]]
    print(f"{'target (median of rounds)':<40}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'req/CPU-s':>11}{'non-2xx':>9}")  # fmt: skip
    for i, name in enumerate(names):
        runs = [results[i] for results in rounds]
        efficiency = [r.per_cpu_second for r in runs if r.per_cpu_second is not None]
        per_cpu = f"{median(efficiency):>11.0f}" if efficiency else f"{'-':>11}"
        print(f"{runs[0].key} {name:<38}{median(r.rps for r in runs):>9.0f}"
              f"{median(r.p50_ms for r in runs):>9.2f}{median(r.p99_ms for r in runs):>9.2f}"
              f"{per_cpu}{sum(r.non_2xx for r in runs):>9}")  # fmt: skip
    by_round = [{r.key: r for r in results} for results in rounds]
    print(f"\n{'ratio':<44}{'median':>8}  {'target':<8}{'':<8}per round")
    for label, top, bottom, what, op, bound in RATIOS:
        if not {top, bottom} <= by_round[0].keys():
            continue
        values = [_value(by[top], what) / _value(by[bottom], what) for by in by_round]
        value = median(values)
        if op:
            ok = value >= bound if op == ">=" else value <= bound
            target, mark = f"{op} {bound:g}", "ok" if ok else "MISSED"
        else:
            target, mark = "(info)", ""
        each = " ".join(f"{v:.2f}" for v in values)
        print(f"{label:<44}{value:>8.2f}  {target:<8}{mark:<8}{each}")
    if any(r.non_2xx for results in rounds for r in results):
        print("\nwarning: some answers were not 2xx; the numbers are not comparable")


def _value(row: Row, what: str) -> float:
    if what == "rps":
        return row.rps
    if what == "p99":
        return row.p99_ms
    return row.per_cpu_second or float("nan")


def svg(rounds: Rounds, connections: int) -> str:
    """Two horizontal bar charts side by side: req/s and p99 per target (medians)."""
    names = [f"{r.key} {r.name}" for r in rounds[0]]
    columns = list(zip(*rounds, strict=True))
    rps = [median(r.rps for r in column) for column in columns]
    p99 = [median(r.p99_ms for r in column) for column in columns]
    row_h, top, label_w, bar_w, gap = 22, 48, 300, 260, 90
    height = top + row_h * len(names) + 30
    width = label_w + 2 * bar_w + gap + 80  # room for the longest value label
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="18" font-size="14" font-weight="bold">verifier benchmark: nginx'
        f" auth_request, wrk {connections} connections, median of {len(rounds)} round(s)</text>",
        f'<text x="{label_w}" y="38" font-weight="bold">requests/s (higher is better)</text>',
        f'<text x="{label_w + bar_w + gap}" y="38" font-weight="bold">p99 ms (lower is better)'
        "</text>",
    ]
    for column, (values, unit) in enumerate(((rps, "{:.0f}"), (p99, "{:.2f}"))):
        left = label_w + column * (bar_w + gap)
        out += _bars(values, unit, left, top, row_h, bar_w, names)
    for i, name in enumerate(names):
        y = top + i * row_h + 14
        out.append(f'<text x="10" y="{y}">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _bars(
    values: list[float], unit: str, left: int, top: int, row_h: int, bar_w: int,
    names: list[str],
) -> list[str]:  # fmt: skip
    peak = max(values) or 1.0
    colour: Callable[[str], str] = lambda name: (  # noqa: E731
        "#d9822b" if "oauth2-proxy" in name else "#2b6cb0" if "verifier" in name else "#888888"
    )
    out = []
    for i, (value, name) in enumerate(zip(values, names, strict=True)):
        y = top + i * row_h + 3
        length = max(1.0, bar_w * value / peak)
        out.append(f'<rect x="{left}" y="{y}" width="{length:.1f}" height="{row_h - 6}" '
                   f'fill="{colour(name)}"/>')  # fmt: skip
        out.append(f'<text x="{left + length + 4:.1f}" y="{y + 12}">{unit.format(value)}</text>')
    return out
