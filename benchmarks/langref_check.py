"""Exact matches on real text nobody planted: the topics of Python's language reference.

Python ships the topics of its language reference as ``pydoc_data.topics`` (what ``help()``
shows). This check writes each topic to ``DIR/topics/<topic>.txt``, indexes the folder with the
command line (``langchain-hybrid --path DIR/index index DIR/topics``, default settings: the
real model), picks words that occur in exactly one topic (a seeded sample,
6+ letters, no stopwords) and asks for each word in hybrid, BM25 and vector modes. A topic
"comes back first" when a chunk of its file ranks first. The check passes (exit 0) when the
hybrid mode brings the topic first at least as often as BM25 alone.

Usage:
    .. code-block:: bash

        make exact-match   # or:
        .venv/bin/python benchmarks/langref_check.py --words 30 --seed 12 [--dir DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from pydoc_data.topics import topics as PYDOC_TOPICS  # noqa: N812 - the stdlib's name
from typing import Any

from langchain_hybrid import HybridRetriever, cli
from langchain_hybrid._stopwords import ENGLISH_STOP_WORDS
from langchain_hybrid.evaluation import format_table

MODES = ("hybrid", "bm25", "vector")
DEPTH = 10
_WORD = re.compile(r"[a-z]{6,}")


def write_topics(directory: Path, topics: Mapping[str, str] = PYDOC_TOPICS) -> dict[str, str]:
    """Write one ``<topic>.txt`` per topic; returns ``topic -> text``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in topics.items():
        (directory / f"{name}.txt").write_text(text, encoding="utf-8")
    return dict(topics)


def unique_words(topics: Mapping[str, str]) -> dict[str, str]:
    """``word -> topic`` for the words (6+ letters, no stopword) found in one topic only."""
    seen: dict[str, set[str]] = {}
    for name, text in topics.items():
        for word in set(re.findall(r"[a-z]+", text.casefold())):
            seen.setdefault(word, set()).add(name)
    return {
        word: next(iter(names))
        for word, names in sorted(seen.items())
        if len(names) == 1 and _WORD.fullmatch(word) and word not in ENGLISH_STOP_WORDS
    }


def sample_words(unique: Mapping[str, str], n: int, seed: int) -> list[tuple[str, str]]:
    """A seeded sample of ``n`` ``(word, topic)`` pairs, at most one word per topic."""
    by_topic: dict[str, list[str]] = {}
    for word, topic in unique.items():
        by_topic.setdefault(topic, []).append(word)
    rng = random.Random(seed)
    chosen = rng.sample(sorted(by_topic), min(n, len(by_topic)))
    return [(rng.choice(by_topic[topic]), topic) for topic in sorted(chosen)]


def topic_of(document: Any) -> str:
    """The topic a chunk comes from (its file's stem)."""
    return Path(str(document.metadata.get("source", ""))).stem


def ranks(retriever: HybridRetriever, word: str, topic: str) -> dict[str, int | None]:
    """Rank (1-based) of the topic's first chunk for ``word`` in each mode, None past 10."""
    found: dict[str, list[str]] = {
        "hybrid": [topic_of(d) for d in retriever.invoke(word, k=DEPTH)],
    }
    for leg in ("bm25", "vector"):
        hits = retriever.search_leg(leg, word, k=DEPTH)  # type: ignore[arg-type]
        found[leg] = [topic_of(h) for h in hits]
    return {m: found[m].index(topic) + 1 if topic in found[m] else None for m in MODES}


def summary(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per mode: topics first, in the top 3, in the top 10, out of all words."""
    rows = []
    for mode in MODES:
        got = [r[mode] for r in results]
        rows.append(
            {
                "mode": mode,
                "words": len(got),
                "first": sum(1 for g in got if g == 1),
                "top3": sum(1 for g in got if g is not None and g <= 3),
                "top10": sum(1 for g in got if g is not None),
            }
        )
    return rows


def run_check(
    directory: Path, *, words: int = 30, seed: int = 12
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Write, index (CLI), sample and query; returns (per-word results, summary rows).

    Raises:
        RuntimeError: the CLI's index command failed.
    """
    topics = write_topics(directory / "topics")
    index = directory / "index"
    code = cli.main(["--path", str(index), "index", str(directory / "topics")])
    if code != 0:
        msg = f"langchain-hybrid index exited with {code}"
        raise RuntimeError(msg)
    retriever = HybridRetriever.from_config(
        {"store": {"path": str(index)}}, create_if_missing=False
    )
    results = []
    for word, topic in sample_words(unique_words(topics), words, seed):
        results.append({"word": word, "topic": topic, **ranks(retriever, word, topic)})
    return results, summary(results)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check and print its tables; 0 if hybrid is first as often as BM25 alone."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--words", type=int, default=30, help="words sampled (default 30)")
    parser.add_argument("--seed", type=int, default=12, help="sample seed (default 12)")
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="langref-") as temp:
        directory = args.dir or Path(temp)
        results, rows = run_check(directory, words=args.words, seed=args.seed)
    print(format_table(results, ("word", "topic", *MODES)))  # noqa: T201 - a report script
    print()  # noqa: T201
    print(format_table(rows, ("mode", "words", "first", "top3", "top10")))  # noqa: T201
    if args.json:
        args.json.write_text(json.dumps({"words": results, "summary": rows}, indent=2) + "\n")
    first = {r["mode"]: r["first"] for r in rows}
    verdict = "ok" if first["hybrid"] >= first["bm25"] else "FAILED"
    print(  # noqa: T201
        f"\n{verdict}: hybrid puts the topic first for {first['hybrid']} words, "
        f"BM25 alone for {first['bm25']} (of {len(results)})"
    )
    return 0 if verdict == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
