r"""Fusion latency: a previous ``fusion.py`` (a git revision) against the current one, interleaved.

Usage::

    .venv/bin/python benchmarks/fusion_speed.py            # against 3c4167e (before issue 19)
    .venv/bin/python benchmarks/fusion_speed.py --rev main --rounds 30

The previous module is read with ``git show REV:langchain_hybrid/fusion.py`` and loaded beside
the current one, so both run in the same process on the same inputs: 200 generated queries
(seed 19), each a BM25 leg (a :class:`LegRun` with floor 0, depth 50 and its population; a
fifth of them complete, i.e. shorter than 50) and a vector leg (50 cosine-like scores, cut),
sharing about a third of their ids, as the retriever fuses them.

Per method, two comparisons, each timed per call (``perf_counter_ns``), the variants alternating
call by call (A B B A ...) over ``--rounds`` passes of the 200 queries:

* ``retriever``: what ``HybridRetriever`` calls per query: the previous revision's checked
  ``fuse(method, ...)`` and its first :data:`KEPT` documents against the current
  ``FUSION_METHODS[method](..., limit=KEPT)`` (the retriever keeps ``rerank_k``, which is ``k``
  without a reranker: 10 by default; a ``group_by`` search takes the whole list);
* ``method``: the method function of each revision, called directly (no checks in either),
  the whole fused list.

Every output of the current module is checked bit for bit against the previous one (and the
limited one against the head of the previous one's). Prints
p50 and p95 (microseconds) and the ratio of p50s (current / previous; below 1 is faster).
The machine may be shared: the ratios within one run are the figure, not the absolute times.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from langchain_hybrid import fusion

ROOT = Path(__file__).resolve().parent.parent
QUERIES = 200
DEPTH = 50
KEPT = 10


def load_previous(rev: str) -> types.ModuleType:
    """The ``fusion`` module as it was at ``rev``, loaded under another name."""
    source = subprocess.run(  # noqa: S603  # a fixed git command, rev given by the user
        ["git", "show", f"{rev}:langchain_hybrid/fusion.py"],  # noqa: S607
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    module = types.ModuleType("fusion_previous")
    module.__file__ = f"{rev}:langchain_hybrid/fusion.py"
    sys.modules[module.__name__] = module  # dataclass/NamedTuple machinery looks it up
    exec(compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102
    return module


def generate(rng: random.Random) -> list[list[fusion.LegRun]]:
    """Two legs per query, shaped as the retriever's (see the module docstring)."""
    cases = []
    pool = [f"doc{i:05d}" for i in range(5000)]
    for _ in range(QUERIES):
        shared = rng.sample(pool, 40)
        bm25_ids = shared[:17] + rng.sample(pool, 40)
        vector_ids = shared[17:] + rng.sample(pool, 40)
        n_bm25 = DEPTH if rng.random() < 0.8 else 1 + int(rng.random() * (DEPTH - 1))
        bm25_ids = list(dict.fromkeys(bm25_ids))[:n_bm25]
        vector_ids = list(dict.fromkeys(vector_ids))[:DEPTH]
        bm25_scores = sorted((round(rng.random() * 25, 3) for _ in bm25_ids), reverse=True)
        vector_scores = sorted((0.2 + rng.random() * 0.6 for _ in vector_ids), reverse=True)
        size = 5000
        total = sum(bm25_scores) + rng.random() * 500
        total_sq = sum(s * s for s in bm25_scores) + rng.random() * 2000
        bm25 = fusion.LegRun(
            list(zip(bm25_ids, bm25_scores, strict=True)),
            DEPTH,
            0.0,
            fusion.Population(size, total, total_sq),
        )
        vector = fusion.LegRun(list(zip(vector_ids, vector_scores, strict=True)), DEPTH)
        cases.append([bm25, vector])
    return cases


def _as_previous(previous: types.ModuleType, legs: Sequence[fusion.LegRun]) -> list[Any]:
    """The same legs as the previous module's own LegRun and Population types."""
    out = []
    for leg in legs:
        population = None
        if leg.population is not None:
            population = previous.Population(*leg.population)
        out.append(previous.LegRun(leg.hits, leg.depth, leg.floor, population))
    return out


def timed(variants: dict[str, Callable[[int], list[Any]]], rounds: int) -> dict[str, list[float]]:
    """Per-call microseconds of each variant, alternating call by call (A B, then B A)."""
    names = list(variants)
    samples: dict[str, list[float]] = {name: [] for name in names}
    clock = time.perf_counter_ns
    for round_number in range(rounds):
        for i in range(QUERIES):
            order = names if (round_number + i) % 2 == 0 else names[::-1]
            for name in order:
                function = variants[name]
                start = clock()
                function(i)
                samples[name].append((clock() - start) / 1000)
    return samples


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def _print(line: str) -> None:
    sys.stdout.write(line + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and print one row per method and comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="3c4167e", help="the previous revision (git)")
    parser.add_argument("--rounds", type=int, default=20, help="passes over the 200 queries")
    args = parser.parse_args(argv)
    previous = load_previous(args.rev)
    cases = generate(random.Random(19))  # benchmark data, not secrets
    old_cases = [_as_previous(previous, legs) for legs in cases]
    weights = (0.5, 0.5)
    _print(f"previous: {args.rev}, current: working tree; {QUERIES} queries x {args.rounds}")
    _print(
        f"{'method':<16}{'comparison':<11}{'prev p50':>9}{'cur p50':>9}{'prev p95':>9}"
        f"{'cur p95':>9}{'p50 ratio':>10}"
    )
    for method in sorted(fusion.FUSION_METHODS):
        current = fusion.FUSION_METHODS[method]
        old_method = previous.FUSION_METHODS[method]
        for i, legs in enumerate(cases):
            new = current(legs, weights, rrf_k=60.0)
            old = previous.fuse(method, old_cases[i], weights, rrf_k=60.0)
            head = current(legs, weights, rrf_k=60.0, limit=KEPT)
            exact = [(f.id, f.score.hex()) for f in old]
            if [(f.id, f.score.hex()) for f in new] != exact or [
                (f.id, f.score.hex()) for f in head
            ] != exact[:KEPT]:
                _print(f"{method}: query {i} differs from {args.rev}")
                return 1
        comparisons: dict[str, dict[str, Callable[[int], list[Any]]]] = {
            "retriever": {
                "previous": lambda i, m=method: previous.fuse(m, old_cases[i], weights, rrf_k=60.0)[
                    :KEPT
                ],
                "current": lambda i, f=current: f(cases[i], weights, rrf_k=60.0, limit=KEPT),
            },
            "method": {
                "previous": lambda i, f=old_method: f(old_cases[i], weights, rrf_k=60.0),
                "current": lambda i, f=current: f(cases[i], weights, rrf_k=60.0),
            },
        }
        for label, variants in comparisons.items():
            samples = timed(variants, args.rounds)
            p50 = {name: statistics.median(values) for name, values in samples.items()}
            p95 = {name: _p(values, 0.95) for name, values in samples.items()}
            _print(
                f"{method:<16}{label:<11}{p50['previous']:>9.1f}{p50['current']:>9.1f}"
                f"{p95['previous']:>9.1f}{p95['current']:>9.1f}"
                f"{p50['current'] / p50['previous']:>10.3f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
