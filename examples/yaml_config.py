"""Configure the retriever from a YAML file, and override one setting from the environment.

What it shows:
    * a YAML config (every key is optional; ``examples/hybrid.yaml`` lists them all with their
      defaults) loaded by :meth:`HybridRetriever.from_config`;
    * reopening the same config: the index on disk is reused, nothing is embedded again;
    * an environment override, ``LANGCHAIN_HYBRID_FUSION__K=2``, which wins over the file
      (source order: constructor arguments > environment > YAML > defaults);
    * a misspelt key is an error that names the key, the file and the line.

Everything is written to a temporary directory that is removed at the end.

Run (from the repository root)::

    python examples/yaml_config.py
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from langchain_core.documents import Document

from langchain_hybrid import ConfigError, HybridRetriever

DATA = Path(__file__).resolve().parent / "data"

CONFIG = """\
store:
  mode: persistent
  path: {index}
  collection: kb
bm25:
  k1: 1.2
  b: 0.75
fusion:
  method: rrf
  weights: [0.4, 0.6]   # (bm25, vector)
  k: 3
embedding:
  provider: minilm      # offline all-MiniLM-L6-v2
  batch_size: 16
"""


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


def show(retriever: HybridRetriever, query: str) -> None:
    hits = retriever.invoke(query)
    print(f'  query "{query}" -> {len(hits)} results (k={retriever.k})')
    for doc in hits:
        meta: dict[str, Any] = doc.metadata
        print(
            f"    {doc.id:<10} {meta['hybrid_score']:.4f}  bm25#{meta['bm25_rank']} "
            f"vector#{meta['vector_rank']}  {meta.get('title', '')}"
        )


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="hybrid-yaml-", ignore_cleanup_errors=True) as tmp:
        path = Path(tmp) / "hybrid.yaml"
        path.write_text(CONFIG.format(index=json.dumps(str(Path(tmp) / "index"))))
        print(f"config file {path}:\n{path.read_text()}")

        retriever = HybridRetriever.from_config(path)
        docs = load_docs()
        retriever.add_documents(docs)
        print(
            f"from_config: fusion={retriever.fusion} weights={retriever.weights} "
            f"k={retriever.k}; added {len(docs)} documents"
        )
        query = docs[0].metadata["title"]
        show(retriever, query)

        # The environment wins over the file; values are parsed as YAML ("2" -> 2).
        os.environ["LANGCHAIN_HYBRID_FUSION__K"] = "2"
        try:
            reopened = HybridRetriever.from_config(path)
        finally:
            del os.environ["LANGCHAIN_HYBRID_FUSION__K"]
        print(
            f"\nwith LANGCHAIN_HYBRID_FUSION__K=2: k={reopened.k}, "
            f"{len(reopened.bm25)} documents reopened from disk (none embedded again)"
        )
        show(reopened, query)

        # A typo is an error naming the key, the file and the line, not a silent default.
        bad = Path(tmp) / "typo.yaml"
        bad.write_text("fusion:\n  wieghts: [0.5, 0.5]\n")
        try:
            HybridRetriever.from_config(bad)
        except ConfigError as e:
            print(f"\nConfigError for {bad.name}: {e}")


if __name__ == "__main__":
    main()
