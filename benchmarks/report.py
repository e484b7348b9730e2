"""Print a pytest-benchmark JSON file as a Markdown table, with the targets checked.

Usage::

    pytest benchmarks -p no:cacheprovider --benchmark-json out.json
    python benchmarks/report.py out.json [--check]

One row per benchmark: group, name, documents, timed rounds, p50/p95/p99 in milliseconds
(from the ``extra_info`` our ``conftest.py`` hook adds, else computed from the raw per-round
data in the file) and the p50 ratio to the group's baseline (``extra_info["role"] ==
"baseline"``). Then every target a benchmark declares in ``extra_info["targets"]``
(``{"vs": name, "max_ratio": x}`` or ``{"vs": name, "min_speedup": x}``, by p50), with PASS or
FAIL; ``--check`` exits with status 1 if any non-informational target fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

PERCENTILES = (50, 95, 99)


def percentiles(entry: dict[str, Any]) -> dict[int, float] | None:
    """p50/p95/p99 in ms of one benchmark entry (``None`` if the file has no timings)."""
    extra = entry.get("extra_info", {})
    if all(f"p{p}_ms" in extra for p in PERCENTILES):
        return {p: float(extra[f"p{p}_ms"]) for p in PERCENTILES}
    data = entry.get("stats", {}).get("data")
    if not data:
        return None
    values = np.percentile(np.asarray(data, dtype=np.float64) * 1e3, PERCENTILES)
    return {p: float(v) for p, v in zip(PERCENTILES, values, strict=True)}


def short(name: str) -> str:
    """The benchmark's name without the ``test_`` prefix."""
    return name.removeprefix("test_")


def fmt_ms(value: float) -> str:
    """Milliseconds with three significant decimals where they matter."""
    return f"{value:.3f}" if value < 100 else f"{value:.1f}"


def fmt_ratio(ratio: float) -> str:
    """``0.0021x (476x faster)`` below 0.1, else ``0.36x`` / ``1.05x``."""
    if ratio < 1:
        return f"{ratio:.4f}x ({1 / ratio:.0f}x faster)" if ratio < 0.1 else f"{ratio:.2f}x"
    return f"{ratio:.2f}x"


def build_report(doc: dict[str, Any]) -> tuple[str, bool]:
    """The Markdown report of a pytest-benchmark JSON document, and whether targets pass."""
    entries = doc.get("benchmarks", [])
    timings = {(e["group"], e["name"]): percentiles(e) for e in entries}
    baselines = {
        e["group"]: e["name"] for e in entries if e.get("extra_info", {}).get("role") == "baseline"
    }
    lines = [
        "| group | benchmark | docs | rounds | p50 ms | p95 ms | p99 ms | p50 vs baseline |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for e in sorted(entries, key=lambda e: (e["group"] or "", e["name"])):
        group, name, extra = e["group"], e["name"], e.get("extra_info", {})
        timing = timings[group, name]
        rounds = extra.get("rounds_timed", e.get("stats", {}).get("rounds", ""))
        if timing is None:
            cells = ["-", "-", "-", "-"]
        else:
            base = timings.get((group, baselines.get(group, "")))
            if name == baselines.get(group):
                versus = "baseline"
            elif base:
                versus = fmt_ratio(timing[50] / base[50])
            else:
                versus = "-"
            cells = [*(fmt_ms(timing[p]) for p in PERCENTILES), versus]
        lines.append(
            f"| {group} | {short(name)} | {extra.get('docs', '')} | {rounds} | "
            + " | ".join(cells)
            + " |"
        )
    target_lines, ok = _targets(entries, timings)
    if target_lines:
        lines += ["", "Targets (p50):", "", *target_lines]
    machine = doc.get("machine_info", {})
    cpu = machine.get("cpu", {}).get("brand_raw", "?")
    footer = (
        f"{doc.get('datetime', '?')}, Python {machine.get('python_version', '?')}, {cpu}, "
        f"pytest-benchmark {doc.get('version', '?')}"
    )
    lines += ["", footer]
    return "\n".join(lines), ok


def _targets(
    entries: list[dict[str, Any]], timings: dict[tuple[str, str], dict[int, float] | None]
) -> tuple[list[str], bool]:
    lines: list[str] = []
    ok = True
    for e in entries:
        for target in e.get("extra_info", {}).get("targets", []):
            ours = timings.get((e["group"], e["name"]))
            other = timings.get((e["group"], target["vs"]))
            label = f"{short(e['name'])} vs {short(target['vs'])}"
            if ours is None or other is None:
                lines.append(f"- {label}: not measured")
                continue
            ratio = ours[50] / other[50]
            if "max_ratio" in target:
                passed = ratio <= target["max_ratio"]
                wanted = f"<= {target['max_ratio']}x"
                got = f"{ratio:.2f}x"
            else:
                passed = 1 / ratio >= target["min_speedup"]
                wanted = f">= {target['min_speedup']}x faster"
                got = f"{1 / ratio:.0f}x faster"
            informational = bool(target.get("informational"))
            verdict = (
                ("met" if passed else "missed") if informational else ("PASS" if passed else "FAIL")
            )
            note = " (informational)" if informational else ""
            lines.append(f"- {label}: {got}, target {wanted}: **{verdict}**{note}")
            ok = ok and (passed or informational)
    return lines, ok


def main(argv: list[str] | None = None) -> int:
    """Print the report; with ``--check``, return 1 if a target fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json_file", type=Path, help="a --benchmark-json output file")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target fails")
    args = parser.parse_args(argv)
    report, ok = build_report(json.loads(args.json_file.read_text(encoding="utf-8")))
    sys.stdout.write(report + "\n")
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
