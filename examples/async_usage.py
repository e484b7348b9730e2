"""Async retrieval: several queries at once with ``asyncio.gather``, and a metadata filter.

What it shows:
    * ``await retriever.ainvoke(query)``: in each call the two legs run concurrently (the query
      is embedded, BM25 scored and Chroma searched without blocking the event loop), and
      several calls run concurrently with ``asyncio.gather``;
    * per-call arguments (``k=...``, ``filter=...``) work the same with ``ainvoke`` as with
      ``invoke``;
    * a Chroma-style ``$and`` filter, applied to both legs *before* top-k selection, so every
      result matches it.

The corpus is 60 passages of ``examples/data/passages.jsonl`` in an in-memory Chroma
collection, embedded with the default offline model (:class:`MiniLMEmbeddings`).

Run (from the repository root)::

    python examples/async_usage.py
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from langchain_core.documents import Document

from langchain_hybrid import HybridRetriever, MiniLMEmbeddings

DATA = Path(__file__).resolve().parent / "data"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_docs(n: int = 60) -> list[Document]:
    return [
        Document(
            id=r["_id"],
            page_content=f"{r['title']}\n\n{r['text']}",
            metadata={"title": r["title"], **r.get("metadata", {})},
        )
        for r in read_jsonl(DATA / "passages.jsonl")[:n]
    ]


def line(doc: Document) -> str:
    meta = doc.metadata
    return (
        f"    {doc.id:<10} {meta['hybrid_score']:.4f}  topic={meta.get('topic')} "
        f"year={meta.get('year')}  {meta.get('title', '')}"
    )


async def main_async() -> None:
    docs = load_docs()
    # from_documents embeds synchronously; in a server, build the index before serving.
    retriever = HybridRetriever.from_documents(docs, MiniLMEmbeddings(), k=3)
    print(f"indexed {len(docs)} passages in memory")

    queries = [d.metadata["title"] for d in docs[:4]]
    start = time.perf_counter()
    results = await asyncio.gather(*(retriever.ainvoke(q) for q in queries))
    took = (time.perf_counter() - start) * 1000
    print(f"\n{len(queries)} queries with asyncio.gather in {took:.0f} ms:")
    for query, hits in zip(queries, results, strict=True):
        print(f'  "{query}"')
        for doc in hits:
            print(line(doc))

    # A filter on the most common topic and the more recent half of its years.
    topic = Counter(d.metadata["topic"] for d in docs).most_common(1)[0][0]
    years = sorted(d.metadata["year"] for d in docs if d.metadata["topic"] == topic)
    since = years[len(years) // 2]
    where = {"$and": [{"topic": topic}, {"year": {"$gte": since}}]}
    query = f"{topic} problems"
    hits = await retriever.ainvoke(query, k=5, filter=where)
    print(f'\nfilter {json.dumps(where)}, query "{query}", k=5:')
    for doc in hits:
        print(line(doc))
    ok = all(d.metadata["topic"] == topic and d.metadata["year"] >= since for d in hits)
    print(f"  all {len(hits)} results match the filter: {ok}")


def main() -> None:
    asyncio.run(main_async())


if __name__ == "__main__":
    main()
