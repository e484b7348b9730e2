r"""Tokenizer throughput on a BEIR corpus: the previous default tokenizer against the current one.

Usage::

    .venv/bin/python benchmarks/tokenize_speed.py /work/shared/data/scifact/corpus.jsonl
    .venv/bin/python benchmarks/tokenize_speed.py /work/shared/data/scifact/corpus.jsonl \
        --qrels /work/shared/data/scifact/qrels/test.tsv   # and BM25-only quality of each

Each document is ``title + " " + text``. The previous default (``(?u)\b\w\w+\b`` on the
casefolded, NFKC-normalised, accent-stripped text, English stopwords, Snowball stemming) is
reproduced here as it was, so both run in the same process on the same texts. Each tokenizer
gets a warm-up pass (it fills the stem cache, as a long-running indexer's would be), then
``--rounds`` timed passes, interleaved; the best pass of each is reported, with the ratio, in
wall time and in CPU time of this process (the steadier figure on a shared machine).

With ``--qrels`` (BEIR layout: ``queries.jsonl`` beside the corpus), each tokenizer also gets a
BM25-only index (default ``k1``/``b``) and its nDCG@10 and recall@100 on those judgements; the
previous tokenizer is then ``token_pattern: '(?u)\b\w\w+\b'`` (release 1's rules as settings).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

import Stemmer

from langchain_hybrid._stopwords import ENGLISH_STOP_WORDS
from langchain_hybrid._tokenize import Tokenizer, TokenizerConfig
from langchain_hybrid.bm25 import BM25Index, BM25Params

RELEASE_1 = r"(?u)\b\w\w+\b"


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


def _pass(tokenize: Callable[[str], list[str]], texts: list[str]) -> tuple[float, float, int]:
    wall, cpu = time.perf_counter(), time.process_time()
    tokens = sum(len(tokenize(t)) for t in texts)
    return time.perf_counter() - wall, time.process_time() - cpu, tokens


def _ndcg10(ranked: list[str], relevant: dict[str, int]) -> float:
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted(relevant.values(), reverse=True)[:10]
    return dcg / sum(r / math.log2(i + 2) for i, r in enumerate(ideal))


def quality(corpus: Path, qrels_path: Path) -> list[str]:
    """BM25-only nDCG@10 and recall@100 with release 1's tokenizer and the current one."""
    with corpus.open(encoding="utf-8") as f:
        docs = [json.loads(line) for line in f]
    with (corpus.parent / "queries.jsonl").open(encoding="utf-8") as f:
        queries = {q["_id"]: q["text"] for q in map(json.loads, f)}
    qrels: dict[str, dict[str, int]] = {}
    with qrels_path.open(encoding="utf-8") as f:
        for line in list(f)[1:]:
            query, doc, score = line.rstrip("\n").split("\t")
            if int(score) > 0:
                qrels.setdefault(query, {})[doc] = int(score)
    lines = []
    for name, config in [
        ("previous", TokenizerConfig(token_pattern=RELEASE_1)),
        ("current", TokenizerConfig()),
    ]:
        index = BM25Index(BM25Params(tokenizer=config))
        index.add([d["_id"] for d in docs], [f"{d.get('title', '')} {d['text']}" for d in docs])
        ndcg, recall = [], []
        for query, relevant in qrels.items():
            ranked = [hit.id for hit in index.search(queries[query], 100)]
            ndcg.append(_ndcg10(ranked, relevant))
            recall.append(len(set(ranked) & set(relevant)) / len(relevant))
        lines.append(
            f"{name:9s} BM25 only: nDCG@10 {sum(ndcg) / len(ndcg):.4f}  "
            f"recall@100 {sum(recall) / len(recall):.4f}  ({len(qrels)} queries)"
        )
    return lines


def main() -> int:
    """Time both tokenizers and print docs/s, tokens/s and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path, help="a BEIR corpus.jsonl")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--qrels", type=Path, help="a BEIR qrels .tsv: also measure BM25 quality")
    args = parser.parse_args()
    with args.corpus.open(encoding="utf-8") as f:
        texts = [f"{d.get('title', '')} {d.get('text', '')}" for d in map(json.loads, f)]
    chars = sum(map(len, texts))
    tokenizers = {"previous": previous_default(), "current": Tokenizer()}
    best: dict[str, float] = {}
    best_cpu: dict[str, float] = {}
    counts: dict[str, int] = {}
    for tokenize in tokenizers.values():
        _pass(tokenize, texts)  # warm-up: stem caches
    for _ in range(args.rounds):
        for name, tokenize in tokenizers.items():
            seconds, cpu, counts[name] = _pass(tokenize, texts)
            best[name] = min(best.get(name, float("inf")), seconds)
            best_cpu[name] = min(best_cpu.get(name, float("inf")), cpu)
    lines = [f"{len(texts)} documents, {chars / 1e6:.1f} M characters, best of {args.rounds}"]
    lines.extend(
        f"{name:9s} {seconds:6.3f} s  {len(texts) / seconds:8.0f} docs/s  "
        f"{counts[name] / seconds / 1e6:5.2f} M tokens/s  {counts[name]} tokens  "
        f"(CPU {best_cpu[name]:.3f} s)"
        for name, seconds in best.items()
    )
    lines.append(
        f"current / previous: wall {best['current'] / best['previous']:.2f}x, "
        f"CPU {best_cpu['current'] / best_cpu['previous']:.2f}x"
    )
    if args.qrels is not None:
        lines.extend(quality(args.corpus, args.qrels))
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
