"""Trace a hybrid query with a callback handler: the parent run and its two leg runs.

What it shows:
    * each :class:`HybridRetriever` call is one retriever run, and each leg (``bm25`` and
      ``vector``) is a child retriever run of it (``parent_run_id`` set), so LangSmith,
      Langfuse or any callback handler sees the legs nested, with their own latencies;
    * a small ``BaseCallbackHandler`` that prints each run's start and end as an indented
      tree, with the latency and the number of documents;
    * the same nesting with ``ainvoke``.

The legs run concurrently, so their start/end lines interleave; the handler is thread-safe.

Run (from the repository root)::

    python examples/callbacks.py
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document

from langchain_hybrid import HybridRetriever, MiniLMEmbeddings

DATA = Path(__file__).resolve().parent / "data"


class PrintingHandler(BaseCallbackHandler):
    """Prints retriever runs as a tree: name, short run id, parent, latency, documents."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[UUID, tuple[str, int, float]] = {}  # run -> (name, depth, start)

    def on_retriever_start(
        self,
        serialized: dict[str, Any] | None,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        with self._lock:
            name = kwargs.get("name") or "retriever"
            depth = self._runs[parent_run_id][1] + 1 if parent_run_id in self._runs else 0
            self._runs[run_id] = (name, depth, time.perf_counter())
            parent = f" parent={str(parent_run_id)[-8:]}" if parent_run_id else ""
            print(f"{'  ' * depth}start {name:<16} run={str(run_id)[-8:]}{parent}  {query!r}")

    def on_retriever_end(
        self, documents: Sequence[Document], *, run_id: UUID, **kwargs: Any
    ) -> None:
        with self._lock:
            name, depth, start = self._runs.pop(run_id, ("?", 0, time.perf_counter()))
            ms = (time.perf_counter() - start) * 1000
            print(
                f"{'  ' * depth}end   {name:<16} run={str(run_id)[-8:]}  "
                f"{ms:7.1f} ms  {len(documents)} docs"
            )

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            name, depth, _ = self._runs.pop(run_id, ("?", 0, 0.0))
            print(f"{'  ' * depth}error {name:<16} run={str(run_id)[-8:]}  {error!r}")


def load_docs(n: int = 40) -> list[Document]:
    with (DATA / "passages.jsonl").open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()][:n]
    return [
        Document(
            id=r["_id"],
            page_content=f"{r['title']}\n\n{r['text']}",
            metadata={"title": r["title"], **r.get("metadata", {})},
        )
        for r in rows
    ]


def main() -> None:
    docs = load_docs()
    # cache=False: this example repeats its query, and a cache hit runs no legs to show
    retriever = HybridRetriever.from_documents(docs, MiniLMEmbeddings(), k=3, cache=False)
    query = docs[0].metadata["title"]
    handler = PrintingHandler()

    print("invoke:")
    retriever.invoke(query, config={"callbacks": [handler]})
    print("\nainvoke:")
    asyncio.run(retriever.ainvoke(query, config={"callbacks": [handler]}))


if __name__ == "__main__":
    main()
