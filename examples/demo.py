"""Hybrid search over this repository's docs and the demo corpus, with the embedded defaults.

What it shows:
    * building a persistent index (embedded Chroma + the BM25 files) in ``./demo-index`` with
      the default offline embedding (all-MiniLM-L6-v2 via :class:`MiniLMEmbeddings`), in
      batches with a progress bar;
    * reopening it on the next run with :meth:`HybridRetriever.load`: only documents whose id is
      not yet in the index are embedded, and chunks that no longer exist are deleted;
    * hybrid queries, each printed as a table that shows where each leg ranked each result, so
      you can see BM25 catch exact codes and the vector leg catch paraphrases;
    * hit@5 over every query in ``examples/data/queries.jsonl``: hybrid vs BM25 only
      (``weights=(1, 0)``) vs vector only (``weights=(0, 1)``).

Corpus: ``README.md`` and ``docs/*.md`` split into ~800-character chunks with
``RecursiveCharacterTextSplitter``, plus the 300 passages of ``examples/data/passages.jsonl``
(title + text as content, their metadata kept).

Run (from the repository root)::

    make demo                                  # = python examples/demo.py
    python examples/demo.py --index /tmp/idx   # somewhere else
    python examples/demo.py --query "reset the connection pool"

The model files are found via ``LANGCHAIN_HYBRID_MODEL_DIR`` or Chroma's cache (see
:func:`langchain_hybrid.embeddings.resolve_model_dir`). The first run embeds ~330 documents
(about 20 s on two cores); later runs embed nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import sys
import textwrap
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from langchain_core.documents import Document
from langchain_text_splitters import RecursiveCharacterTextSplitter
from tqdm import tqdm

from langchain_hybrid import HybridRetriever, IndexNotBuiltError, MiniLMEmbeddings

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "data"
COLLECTION = "demo"
BATCH_SIZE = 32
K = 5
# A query looks like an "exact code" query when it holds a token mixing letters with digits,
# underscores or dots (error codes, flags, versions, identifiers) or an all-caps token.
CODE_TOKEN = re.compile(r"\b(?=[\w.-]*\d)(?=[\w.-]*[A-Za-z])[\w.-]{3,}\b|\b\w+_\w+\b|\b[A-Z]{3,}\b")
# Shown by default: exact codes (E-4471, C-203), a code inside a sentence, two paraphrases.
SAMPLES = ("q01", "q06", "q21", "q11", "q19")
HEADING = re.compile(r"^#{1,6}\s+(.+)$", re.MULTILINE)


# ---------------------------------------------------------------------------- corpus
def doc_chunks(root: Path = ROOT) -> list[Document]:
    """README.md and docs/*.md, split into ~800-character chunks.

    Each chunk's id holds a hash of its text, so an edited file yields new ids (embedded on
    the next run) and its old chunks become stale (deleted on the next run).
    """
    splitter = RecursiveCharacterTextSplitter(chunk_size=800, chunk_overlap=80)
    files = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    chunks = []
    for file in files:
        if not file.is_file():
            continue
        source = file.relative_to(root).as_posix()
        title = source
        for i, text in enumerate(splitter.split_text(file.read_text(encoding="utf-8"))):
            headings = HEADING.findall(text)
            title = headings[0].strip() if headings else title
            digest = hashlib.sha256(text.encode()).hexdigest()[:8]
            chunks.append(
                Document(
                    id=f"{source.removesuffix('.md')}#{i}:{digest}",
                    page_content=text,
                    metadata={"source": source, "title": title, "chunk": i},
                )
            )
    return chunks


def corpus_line(chunks: Sequence[Document], rows: Sequence[Document]) -> str:
    """What the demo indexes, naming the files the chunks really came from."""
    files = sorted({str(c.metadata["source"]) for c in chunks})
    return (
        f"corpus: {len(chunks)} chunks of {', '.join(files) or 'no files'} + {len(rows)} passages"
    )


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def passages(path: Path = DATA / "passages.jsonl") -> list[Document]:
    """The demo passages (BEIR layout): title + text as content, metadata kept."""
    return [
        Document(
            id=row["_id"],
            page_content=f"{row['title']}\n\n{row['text']}",
            metadata={"title": row["title"], **row.get("metadata", {})},
        )
        for row in read_jsonl(path)
    ]


# ---------------------------------------------------------------------------- indexing
def open_index(index: Path, embedding: MiniLMEmbeddings) -> HybridRetriever:
    """Reopen the persisted index, or create an empty one on the first run."""
    try:
        retriever = HybridRetriever.load(index, collection_name=COLLECTION, embedding=embedding)
    except IndexNotBuiltError:
        print(f"no index in {index} yet: creating collection {COLLECTION!r}")
        return HybridRetriever.from_documents(
            [], embedding, persist_directory=index, collection_name=COLLECTION
        )
    print(f"reopened {index} (collection {COLLECTION!r}, {len(retriever.bm25)} documents)")
    return retriever


def sync_index(retriever: HybridRetriever, documents: Sequence[Document]) -> None:
    """Embed and add the documents the index lacks; delete the ones no longer in the corpus."""
    wanted = {str(d.id) for d in documents}
    missing = [d for d in documents if d.id not in retriever.bm25]
    stale = [doc_id for doc_id in retriever.bm25.ids if doc_id not in wanted]
    if stale:
        retriever.delete(stale)
    start = time.perf_counter()
    with tqdm(total=len(missing), desc="embedding", unit="doc", disable=not missing) as bar:
        for i in range(0, len(missing), BATCH_SIZE):
            batch = missing[i : i + BATCH_SIZE]
            retriever.add_documents(batch)  # embeds the batch, writes Chroma and BM25
            bar.update(len(batch))
    elapsed = time.perf_counter() - start
    present = len(documents) - len(missing)
    removed = f", removed {len(stale)} stale" if stale else ""
    took = f" in {elapsed:.1f} s" if missing else ""
    print(f"indexed {len(missing)} new documents ({present} already present{removed}){took}")


# ---------------------------------------------------------------------------- queries
def is_code_query(text: str) -> bool:
    return bool(CODE_TOKEN.search(text))


def sample_queries(queries: Sequence[dict[str, Any]], n_code: int = 3, n_para: int = 2) -> list:
    """The queries named in SAMPLES, else the first exact-code and paraphrase queries."""
    by_id = {q["_id"]: q for q in queries}
    if all(i in by_id for i in SAMPLES):
        return [by_id[i] for i in SAMPLES]
    code = [q for q in queries if is_code_query(q["text"])][:n_code]
    para = [q for q in queries if not is_code_query(q["text"])][:n_para]
    return code + para


def found_by(metadata: dict[str, Any]) -> str:
    bm25, vector = metadata["bm25_rank"], metadata["vector_rank"]
    if bm25 is not None and vector is not None:
        return "both"
    return "bm25" if bm25 is not None else "vector"


def cell(value: int | None) -> str:
    return "-" if value is None else str(value)


def at(rank: int | None) -> str:
    return "not found" if rank is None else f"#{rank}"


def short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def snippet(doc: Document, width: int) -> str:
    text = doc.page_content
    title = str(doc.metadata.get("title", ""))
    if title and text.startswith(title):
        text = text[len(title) :]
    return textwrap.shorten(" ".join(text.split()), width=width, placeholder="...")


def print_results(query: str, hits: Sequence[Document], relevant: Iterable[str] = ()) -> None:
    """One query's results as a table: fused score, each leg's rank, which leg found it."""
    relevant = set(relevant)
    kind = "exact code" if is_code_query(query) else "paraphrase"
    wanted = f"; relevant: {', '.join(sorted(relevant))}" if relevant else ""
    print(f'\nquery: "{query}"  ({kind}{wanted})')
    header = (
        f"  {'#':>2}  {'hybrid':>7}  {'bm25':>4}  {'vector':>6}  {'found by':<8}  "
        f"{'id':<18}  {'title (source)':<34}  snippet"
    )
    print(header)
    print("  " + "-" * (len(header) + 41))
    for rank, doc in enumerate(hits[:K], start=1):
        meta = doc.metadata
        mark = "*" if doc.id in relevant else " "
        title = f"{meta.get('title', '')} ({meta.get('source', '?')})"
        print(
            f"  {rank:>2}  {meta['hybrid_score']:>7.4f}  {cell(meta['bm25_rank']):>4}  "
            f"{cell(meta['vector_rank']):>6}  {found_by(meta):<8}  "
            f"{short(str(doc.id), 17) + mark:<18}  "
            f"{textwrap.shorten(title, 34, placeholder='...'):<34}  {snippet(doc, 48)}"
        )
    ranks = {str(d.id): (i, d.metadata) for i, d in enumerate(hits, start=1)}
    for doc_id in sorted(relevant):
        if doc_id not in ranks:
            print(f"  relevant {doc_id}: not in either leg's top candidates")
            continue
        i, meta = ranks[doc_id]
        print(
            f"  relevant {doc_id}: hybrid #{i}, bm25 {at(meta['bm25_rank'])}, "
            f"vector {at(meta['vector_rank'])}"
        )


def search(retriever: HybridRetriever, query: str, relevant: Iterable[str] = ()) -> None:
    # Ask for every fused candidate, so the lines under the table can place each relevant
    # passage in both legs even when it is not in the top K.
    hits = retriever.invoke(query, k=2 * retriever.fetch_k)
    print_results(query, hits, relevant)


def hit_at_k(
    retriever: HybridRetriever, queries: Sequence[dict[str, Any]], k: int = K
) -> dict[str, float]:
    """Share of queries with a relevant passage in the top ``k``, for hybrid and each leg alone.

    With a weight of 0, a leg still returns its candidates (with a fused score of 0) after the
    other leg's: they are left out, so "bm25 only" is exactly BM25's own top ``k``.
    """
    setups = {"hybrid": (retriever.weights, None), "bm25 only": ((1, 0), "bm25_rank")}
    setups["vector only"] = ((0, 1), "vector_rank")
    hits = dict.fromkeys(setups, 0)
    for q in queries:
        relevant = set(q["relevant"])
        for name, (weights, leg) in setups.items():
            docs = retriever.invoke(q["text"], k=2 * k, weights=weights)
            top = [d.id for d in docs if leg is None or d.metadata[leg] is not None][:k]
            hits[name] += bool(relevant.intersection(top))
    return {name: n / len(queries) for name, n in hits.items()}


# ---------------------------------------------------------------------------- main
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("demo-index"), help="index directory")
    parser.add_argument(
        "--query", action="append", help="run this query instead of the samples (repeatable)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    chunks, rows = doc_chunks(), passages()
    corpus = chunks + rows
    print(corpus_line(chunks, rows))
    embedding = MiniLMEmbeddings()
    retriever = open_index(args.index, embedding)
    sync_index(retriever, corpus)

    if args.query:
        for query in args.query:
            search(retriever, query)
        return
    queries = read_jsonl(DATA / "queries.jsonl")
    for q in sample_queries(queries):
        search(retriever, q["text"], q["relevant"])
    start = time.perf_counter()
    scores = hit_at_k(retriever, queries)
    summary = " | ".join(f"{name} {value:.2f}" for name, value in scores.items())
    took = time.perf_counter() - start
    print(f"\nhit@{K} over {len(queries)} queries: {summary}  ({took:.1f} s)")


if __name__ == "__main__":
    main(sys.argv[1:])
