"""Print a pytest-benchmark JSON file as Markdown tables, with the targets checked.

Usage::

    pytest benchmarks -p no:cacheprovider --benchmark-json out.json
    python benchmarks/report.py out.json [--check]

Sections (each only when the file has benchmarks for it, so a partial run reports what ran):

* one row per latency benchmark: group, name, documents, timed rounds, p50/p95/p99 in
  milliseconds (from the ``extra_info`` our ``conftest.py`` hook adds, else computed from the
  raw per-round data in the file) and the p50 ratio to the group's baseline
  (``extra_info["role"] == "baseline"``);
* scale (``test_bench_scale.py``): a pivot of p50 ms, one row per document count, one column
  per component: BM25 leg, vector leg (ids and scores, as the hybrid runs them), fusion alone
  (z-score, the hybrid's default), the vector-only retriever, hybrid uncached, hybrid cached,
  LangChain's stock ``EnsembleRetriever``, and hybrid uncached / vector leg (issue 11: 1.2x); a
  benchmark that did not run (e.g. skipped by ``BENCH_SCALE_VECTOR_MAX``) shows ``-``;
* throughput (``test_bench_throughput.py``, any benchmark with ``extra_info["qps"]``): queries
  per second and per-query latency by thread count; these are left out of the first table,
  whose p50 would be the wall time of the whole run;
* interleaved ratios (``test_bench_pipeline.py``, any benchmark with
  ``extra_info["p50_ratio_to_plain"]``): variants timed query by query in one loop, their p50
  and its ratio to plain hybrid; also left out of the first table;
* writes (``test_bench_writes.py``, ``extra_info["writes"]``): one row per document count with
  the one-document add and delete through the retriever against the same write straight into
  Chroma (and the BM25 part alone), a new process's open + first query against raw Chroma's,
  peak RSS of a serving process against raw Chroma + bm25s, our BM25 leg against bm25s, and
  BM25 query p99 during a merge, the hybrid answer against the vector leg alone (with the final
  k's texts read from the BM25 files, and from Chroma; beside it the retriever answering from
  its vector leg alone, ``weights=[0, 1]``); issue 11's targets checked per row;
* every target a benchmark declares in ``extra_info["targets"]`` (``{"vs": name,
  "max_ratio": x}`` or ``{"vs": name, "min_speedup": x}``, by p50), with PASS or FAIL;
  ``--check`` exits with status 1 if any non-informational target fails;
* a footer: this machine's core count (``os.cpu_count()``), platform and date, then the
  run's own record (date, Python, CPU and its core count, pytest-benchmark version).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import sys
from collections.abc import Callable
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


def natural(text: str) -> tuple[tuple[int, str, int], ...]:
    """A sort key that orders the numbers inside ``text`` by value: scale-300 < scale-1000."""
    return tuple(
        (0, "", int(part)) if part.isdigit() else (1, part, 0)
        for part in re.split(r"(\d+)", text)
        if part
    )


def is_throughput(entry: dict[str, Any]) -> bool:
    """A throughput benchmark: its figure is ``extra_info["qps"]``, not a latency."""
    return "qps" in entry.get("extra_info", {})


def is_interleaved(entry: dict[str, Any]) -> bool:
    """A loop timing several variants in turn: its figures are in ``extra_info``."""
    return "p50_ratio_to_plain" in entry.get("extra_info", {})


def interleaved_table(entries: list[dict[str, Any]]) -> list[str]:
    """p50 and its ratio to plain hybrid per variant, from interleaved loops; empty without."""
    runs = [e for e in entries if is_interleaved(e)]
    if not runs:
        return []
    lines = [
        "Query stages, timed interleaved (`test_bench_pipeline.py`)",
        "",
        "| group | variant | docs | queries | p50 ms | p50 vs plain |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for e in sorted(runs, key=lambda e: natural(e["group"] or "")):
        extra = e["extra_info"]
        for variant, ratio in extra["p50_ratio_to_plain"].items():
            p50 = extra.get("p50_ms_by_variant", {}).get(variant)
            lines.append(
                f"| {e['group'] or ''} | {variant} | {_cell(extra.get('docs'))} | "
                f"{_cell(extra.get('queries'))} | {_cell(p50, lambda v: fmt_ms(float(v)))} | "
                f"{float(ratio):.2f}x |"
            )
    return lines


def _cell(value: object, fmt: Callable[[Any], str] = str) -> str:
    return "-" if value is None or value == "" else fmt(value)


# ---------------------------------------------------------------------- scale pivot
Matcher = Callable[[str, dict[str, Any]], bool]


def _scale_test(test: str, **wanted: str) -> Matcher:
    """Match ``test`` with parameters ``wanted`` (from ``params``, else the name's id parts)."""

    def matches(name: str, params: dict[str, Any]) -> bool:
        base, _, ids = name.partition("[")
        parts = set(ids.rstrip("]").split("-"))
        return base == test and all(
            params.get(k) == v if k in params else v in parts for k, v in wanted.items()
        )

    return matches


SCALE_COLUMNS: tuple[tuple[str, Matcher], ...] = (
    ("BM25 leg", _scale_test("test_scale_leg", leg="bm25")),
    ("vector leg", _scale_test("test_scale_leg", leg="vector")),
    ("fusion alone (zscore)", _scale_test("test_scale_fusion", method="zscore")),
    ("vector-only retriever", _scale_test("test_scale_vector_only")),
    ("hybrid uncached", _scale_test("test_scale_hybrid_uncached")),
    ("hybrid cached", _scale_test("test_scale_hybrid_cached")),
    ("LangChain stock", _scale_test("test_scale_langchain_ensemble")),
)
"""The pivot's columns: a label and which ``test_bench_scale.py`` benchmark fills it."""


def _docs(entry: dict[str, Any]) -> int | None:
    docs = entry.get("extra_info", {}).get("docs", (entry.get("params") or {}).get("n_docs"))
    return docs if isinstance(docs, int) else None


def scale_pivot(entries: list[dict[str, Any]]) -> list[str]:
    """p50 ms by document count (rows) and component (columns); empty without scale data."""
    cells: dict[int, dict[str, float]] = {}
    for e in entries:
        if not (e.get("group") or "").startswith("scale-") or is_throughput(e):
            continue
        docs, timing = _docs(e), percentiles(e)
        column = next(
            (label for label, match in SCALE_COLUMNS if match(e["name"], e.get("params") or {})),
            None,
        )
        if docs is None:
            continue
        row = cells.setdefault(docs, {})  # a scale that ran gets a row, even if all "-"
        if timing is not None and column is not None:
            row[column] = timing[50]
    if not cells:
        return []
    labels = [label for label, _ in SCALE_COLUMNS]
    lines = [
        (
            "Scale: p50 ms per query (`test_bench_scale.py`; `-`: not run); the last column is "
            "issue 11's query target (<= 1.2x)"
        ),
        "",
        "| docs | " + " | ".join(labels) + " | hybrid uncached / vector leg |",
        "| ---: |" + " ---: |" * (len(labels) + 1),
    ]
    for docs in sorted(cells):
        row = cells[docs]
        shown = [fmt_ms(row[label]) if label in row else "-" for label in labels]
        hybrid, vector = row.get("hybrid uncached"), row.get("vector leg")
        shown.append(f"{hybrid / vector:.2f}x" if hybrid and vector else "-")
        lines.append(f"| {docs:,} | " + " | ".join(shown) + " |")
    return lines


# ---------------------------------------------------------------------- throughput
def throughput_table(entries: list[dict[str, Any]]) -> list[str]:
    """Queries per second and per-query latency by thread count; empty without such data."""
    runs = [e for e in entries if is_throughput(e)]
    if not runs:
        return []
    lines = [
        "Throughput: one retriever, queries split between threads (`test_bench_throughput.py`)",
        "",
        (
            "| group | threads | docs | queries | QPS | vs 1 thread "
            "| latency p50 ms | p95 ms | p99 ms |"
        ),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def order(e: dict[str, Any]) -> tuple[str, float, str]:  # by group, then thread count
        threads = e.get("extra_info", {}).get("threads")
        return (e["group"] or "", threads if isinstance(threads, int) else math.inf, e["name"])

    for e in sorted(runs, key=order):
        extra = e.get("extra_info", {})
        cells = [
            e["group"] or "",
            _cell(extra.get("threads")),
            _cell(extra.get("docs")),
            _cell(extra.get("queries")),
            _cell(extra.get("qps"), lambda v: f"{float(v):.1f}"),
            _cell(extra.get("qps_vs_1_thread"), lambda v: f"{float(v):.2f}x"),
            *(
                _cell(extra.get(f"latency_p{p}_ms"), lambda v: fmt_ms(float(v)))
                for p in PERCENTILES
            ),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


WRITE_TARGETS = {
    "add": 2.0,
    "delete": 2.0,
    "open": 2.0,
    "rss": 1.3,
    "bm25_query": 1.5,
    "hybrid": 1.2,
}


def writes_table(entries: list[dict[str, Any]]) -> tuple[list[str], bool]:
    """Cost growth of writes, open and memory by size (``extra_info["writes"]``), and targets."""
    rows = sorted(
        (e["extra_info"]["writes"] for e in entries if "writes" in e.get("extra_info", {})),
        key=lambda w: w["docs"],
    )
    if not rows:
        return [], True
    lines = [
        "Writes, open and memory by size (p50 ms; ours / raw Chroma = ratio; BM25 share of ours):",
        "",
        (
            "| docs | add 1 doc | delete 1 doc | open + first query | peak RSS MB "
            "(ours / Chroma + bm25s) | BM25 leg vs bm25s | BM25 query p99, quiet / during merge "
            "(merge s) | hybrid vs vector leg (texts from BM25 files; from Chroma) |"
        ),
        "| ---: | --- | --- | --- | --- | --- | --- | --- |",
    ]
    ok = True
    for w in rows:
        cells = [f"{w['docs']:,}"]
        cells += [
            f"{w[f'{what}_ms']:.1f} / {w[f'chroma_{what}_ms']:.1f} = "
            f"{w[f'{what}_ratio']:.2f}x (BM25 {w[f'bm25_{what}_ms']:.1f}, "
            f"{w[f'{what}_bm25_share']:.0%})"
            for what in ("add", "delete")
        ]
        cells += [
            f"{w['open_ms']:.0f} / {w['chroma_open_ms']:.0f} = {w['open_ratio']:.2f}x",
            (
                f"{w['rss_mb']:.0f} / ({w['chroma_rss_mb']:.0f} + {w['bm25s_rss_mb']:.0f}) = "
                f"{w['rss_ratio']:.2f}x"
            ),
            f"{w['bm25_query_ms']:.2f} / {w['bm25s_query_ms']:.2f} = {w['bm25_query_ratio']:.2f}x",
            f"{w['query_p99_ms']:.2f} / {w['merge_query_p99_ms']:.1f} ({w['merge_s']:.1f})",
            (
                f"{w['hybrid_query_ms']:.2f} / {w['vector_leg_ms']:.2f} = "
                f"{w['hybrid_ratio']:.2f}x (vector-only retriever "
                f"{w.get('vector_only_ms', math.nan):.2f} = "
                f"{w.get('vector_only_ratio', math.nan):.2f}x); "
                f"{w['hybrid_chroma_texts_ms']:.2f} ms = {w['hybrid_chroma_texts_ratio']:.2f}x "
                f"(RSS {w['rss_chroma_texts_mb']:.0f} MB)"
            ),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Issue 11 targets:", ""]
    for w in rows:
        for what, limit in WRITE_TARGETS.items():
            ratio = w[f"{what}_ratio"]
            passed = ratio <= limit
            ok = ok and passed
            lines.append(
                f"- {w['docs']:,} docs, {what}: {ratio:.2f}x, target <= {limit}x: "
                f"**{'PASS' if passed else 'FAIL'}**"
            )
    return lines, ok


def footer(doc: dict[str, Any]) -> list[str]:
    """This machine (cores, platform, date), then the benchmark run's own record."""
    machine = doc.get("machine_info", {})
    cpu = machine.get("cpu", {})
    cores = f", {cpu['count']} cores" if cpu.get("count") else ""
    return [
        (
            f"Machine: {os.cpu_count() or '?'} cores (os.cpu_count()), {platform.platform()}, "
            f"report of {dt.datetime.now(dt.timezone.utc).date().isoformat()}"
        ),
        "",
        (
            f"Run: {doc.get('datetime', '?')}, Python {machine.get('python_version', '?')}, "
            f"{cpu.get('brand_raw', '?')}{cores}, pytest-benchmark {doc.get('version', '?')}"
        ),
    ]


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
    latency = [
        e
        for e in entries
        if not is_throughput(e)
        and not is_interleaved(e)
        and "writes" not in e.get("extra_info", {})
    ]
    for e in sorted(latency, key=lambda e: (natural(e["group"] or ""), natural(e["name"]))):
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
            f"| {group or ''} | {short(name)} | {extra.get('docs', '')} | {rounds} | "
            + " | ".join(cells)
            + " |"
        )
    if not latency:
        lines = []
    for section in (scale_pivot(entries), throughput_table(entries), interleaved_table(entries)):
        if section:
            lines += ["", *section] if lines else section
    write_lines, writes_ok = writes_table(entries)
    if write_lines:
        lines += ["", *write_lines] if lines else write_lines
    target_lines, ok = _targets(entries, timings)
    ok = ok and writes_ok
    if target_lines:
        lines += ["", "Targets (p50):", "", *target_lines]
    lines += ["", *footer(doc)] if lines else footer(doc)
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
        paired = e.get("extra_info", {}).get("paired")
        if paired:
            passed = paired["ratio_p50"] <= paired["max_ratio"]
            lines.append(
                f"- {short(e['name'])} vs {short(paired['vs'])}, interleaved in "
                f"{paired['pairs']} pairs: {paired['ours_us_p50']:.1f} vs "
                f"{paired['floor_us_p50']:.1f} us = {paired['ratio_p50']:.2f}x, target <= "
                f"{paired['max_ratio']}x: **{'PASS' if passed else 'FAIL'}**"
            )
            ok = ok and passed
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
