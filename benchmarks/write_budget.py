"""The write budget: a one-document add / delete through the retriever vs straight into Chroma.

Issue 11, requirement 4: a one-document ``add_documents`` or ``delete`` through the retriever
should cost at most 2x the same write made straight into Chroma (same collection, same vector).
This script measures both, interleaved round by round in one run, on a persistent collection of
``N`` documents with 64-d :class:`tests.helpers.HashEmbeddings` vectors, and splits the
retriever's write into its parts: the write protocol alone (the generation markers), the data
write and the BM25 update + save.

Usage (collections are built once under ``--data`` and reused; 100k takes a few minutes)::

    .venv/bin/python benchmarks/write_budget.py --sizes 10000,100000 --rounds 40

Runs outside pytest on purpose: it needs a large persistent collection and reports ratios, and
the suite must stay fast.
"""

from __future__ import annotations

import argparse
import functools
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from langchain_core.documents import Document

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langchain_hybrid.retrievers import HybridRetriever
from langchain_hybrid.stores import ChromaStore, StoreConfig
from tests.helpers import HashEmbeddings

DIM = 64
_WORDS = [f"w{i}" for i in range(5000)]


def _text(rng: random.Random) -> str:
    return " ".join(rng.choices(_WORDS, k=rng.randint(20, 60)))


def build(path: Path, n: int) -> StoreConfig:
    """A persistent collection of ``n`` documents at ``path`` (built once, then reused)."""
    config = StoreConfig(mode="persistent", path=str(path), collection="budget")
    marker = path / f".built-{n}"
    if marker.exists():
        return config
    store = ChromaStore(config)
    rng = random.Random(7)
    emb = HashEmbeddings(DIM)
    step = 2000
    for start in range(0, n, step):
        texts = [_text(rng) for _ in range(start, min(n, start + step))]
        ids = [f"d{i}" for i in range(start, start + len(texts))]
        store.collection.upsert(
            ids=ids,
            documents=texts,
            embeddings=emb.embed_documents(texts),
            metadatas=[{"n": i} for i in range(start, start + len(texts))],
        )
    marker.touch()
    return config


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def measure(config: StoreConfig, rounds: int) -> dict[str, float]:
    """Median milliseconds of each write, over ``rounds`` interleaved rounds."""
    retriever = HybridRetriever.from_store(
        ChromaStore(config, create_if_missing=False),
        HashEmbeddings(DIM),
        bm25_path=Path(config.path) / "bm25" / "budget",
        cache=False,
        refresh_interval_seconds=None,
    )
    collection = retriever.store.collection
    text = "a new document about write budgets and generation markers"
    vector = HashEmbeddings(DIM).embed_documents([text])[0]
    protocol = _protocol(retriever)
    store = retriever.store
    times: dict[str, list[float]] = {
        k: [] for k in ("chroma_upsert", "chroma_delete", "add", "delete", "protocol", "legacy")
    }
    for r in range(rounds + 3):
        direct, ours = f"direct-{r}", f"ours-{r}"
        document = Document(page_content=text, metadata={"n": -1})
        t = {
            "chroma_upsert": _timed(
                functools.partial(
                    collection.upsert,
                    ids=[direct],
                    documents=[text],
                    embeddings=[vector],
                    metadatas=[{"n": -1}],
                )
            ),
            "add": _timed(functools.partial(retriever.add_documents, [document], ids=[ours])),
            "chroma_delete": _timed(functools.partial(collection.delete, ids=[direct])),
            "delete": _timed(functools.partial(retriever.delete, [ours])),
            "protocol": _timed(protocol),
            "legacy": _timed(lambda: (store.begin_write(), store.end_write())),
        }
        if r >= 3:  # warm-up rounds
            for key, value in t.items():
                times[key].append(value)
    return {k: statistics.median(v) for k, v in times.items()}


def _protocol(retriever: HybridRetriever) -> Callable[[], object]:
    """The generation markers of one write alone (begin, end), as this tree's writer does them."""
    index = getattr(retriever, "index", None)
    if index is not None:  # HybridIndex: begin marker, then the end marker (no data, no save)
        lean_index = index

        def lean() -> None:
            with lean_index.write_guard():
                write = lean_index._begin()
                lean_index.store.end_write(at_least=write.generation)

        return lean
    store = retriever.store

    def legacy() -> None:
        store.begin_write()
        store.end_write()

    return legacy


def main() -> None:
    """Build (once) and measure each size; print a table of medians and ratios."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--data", default="/tmp/write-budget")  # noqa: S108 - a scratch default
    args = parser.parse_args()
    for n in map(int, args.sizes.split(",")):
        config = build(Path(args.data) / str(n), n)
        m = measure(config, args.rounds)
        up, de = m["chroma_upsert"], m["chroma_delete"]
        add = (
            f"  retriever add {m['add']:.1f} ms (x{m['add'] / up:.2f} of the upsert), "
            f"delete {m['delete']:.1f} ms (x{m['delete'] / de:.2f} of the delete)"
        )
        protocol = (
            f"  protocol of this tree {m['protocol']:.1f} ms ({m['protocol'] / m['add']:.0%} of an "
            f"add, {m['protocol'] / m['delete']:.0%} of a delete); the legacy protocol "
            f"(collection-metadata markers) {m['legacy']:.1f} ms"
        )
        lines = [f"n={n}: chroma upsert {up:.1f} ms, delete {de:.1f} ms", add, protocol]
        sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
