"""Tokenizer throughput on a BEIR corpus: the previous default tokenizer against the current one.

Usage::

    .venv/bin/python benchmarks/tokenize_speed.py /work/shared/data/scifact/corpus.jsonl

Each document is ``title + " " + text``. The previous default (``(?u)\\b\\w\\w+\\b`` on the
casefolded, NFKC-normalised, accent-stripped text, English stopwords, Snowball stemming) is
reproduced here as it was, so both run in the same process on the same texts. Each tokenizer
gets a warm-up pass (it fills the stem cache, as a long-running indexer's would be), then
``--rounds`` timed passes, interleaved; the best pass of each is reported, with the ratio.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

import Stemmer
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from langchain_hybrid._tokenize import Tokenizer


def previous_default() -> Callable[[str], list[str]]:
    """The default tokenizer before identifiers and CJK bigrams (release 1's rules)."""
    pattern = re.compile(r"(?u)\b\w\w+\b")
    stopwords = frozenset(ENGLISH_STOP_WORDS)
    stemmer = Stemmer.Stemmer("english")
    cache: dict[str, str] = {}

    def tokenize(text: str) -> list[str]:
        text = unicodedata.normalize("NFKC", text)
        if not text.isascii():
            text = "".join(
                c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
            )
        words = [w for w in pattern.findall(text.casefold()) if w not in stopwords]
        found = [cache.get(w) for w in words]
        missing = [w for w, s in zip(words, found, strict=True) if s is None]
        if missing:
            cache.update(zip(missing, stemmer.stemWords(missing), strict=True))
            return [cache[w] for w in words]
        return found  # type: ignore[return-value]

    return tokenize


def _pass(tokenize: Callable[[str], list[str]], texts: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    tokens = sum(len(tokenize(t)) for t in texts)
    return time.perf_counter() - start, tokens


def main() -> int:
    """Time both tokenizers and print docs/s, tokens/s and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path, help="a BEIR corpus.jsonl")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with args.corpus.open(encoding="utf-8") as f:
        texts = [f"{d.get('title', '')} {d.get('text', '')}" for d in map(json.loads, f)]
    chars = sum(map(len, texts))
    tokenizers = {"previous": previous_default(), "current": Tokenizer()}
    best: dict[str, float] = {}
    counts: dict[str, int] = {}
    for tokenize in tokenizers.values():
        _pass(tokenize, texts)  # warm-up: stem caches
    for _ in range(args.rounds):
        for name, tokenize in tokenizers.items():
            seconds, counts[name] = _pass(tokenize, texts)
            best[name] = min(best.get(name, float("inf")), seconds)
    lines = [f"{len(texts)} documents, {chars / 1e6:.1f} M characters, best of {args.rounds}"]
    lines.extend(
        f"{name:9s} {seconds:6.3f} s  {len(texts) / seconds:8.0f} docs/s  "
        f"{counts[name] / seconds / 1e6:5.2f} M tokens/s  {counts[name]} tokens"
        for name, seconds in best.items()
    )
    lines.append(f"current / previous time: {best['current'] / best['previous']:.2f}x")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
