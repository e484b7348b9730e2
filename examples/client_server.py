"""Client-server mode: Chroma runs as a server (``chroma run``), the retriever connects over HTTP.

What it shows:
    * starting ``chroma run --path DIR --host 127.0.0.1 --port PORT`` on a free loopback port
      (in production the server runs on its own, e.g. in a container);
    * ``HybridRetriever.from_config({"store": {"mode": "http", ...}, "bm25": {"path": ...}})``:
      vectors, texts and metadata live in the server, the BM25 index in a local directory;
    * a second client opening the same collection: its BM25 index is loaded from that
      directory (or, without one, rebuilt from the documents in Chroma; nothing is embedded);
    * stopping the server in a ``finally`` block.

Everything is written to a temporary directory that is removed at the end.

Run (from the repository root)::

    python examples/client_server.py
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langchain_core.documents import Document

from langchain_hybrid import HybridRetriever, MiniLMEmbeddings

DATA = Path(__file__).resolve().parent / "data"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def chroma_server(path: Path, port: int, timeout: float = 60.0) -> Iterator[subprocess.Popen]:
    """Run ``chroma run`` (the executable installed beside this Python) until the block ends."""
    chroma = shutil.which("chroma", path=str(Path(sys.executable).parent)) or "chroma"
    log_path = path.parent / "chroma.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - fixed arguments, our own executable
            [chroma, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                msg = f"chroma run exited with {process.returncode}:\n{log_path.read_text()}"
                raise RuntimeError(msg)
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    msg = f"chroma run did not listen on port {port} within {timeout:.0f} s"
                    raise RuntimeError(msg) from None
                time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        print(f"chroma server stopped (exit code {process.returncode})")


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
    with tempfile.TemporaryDirectory(prefix="hybrid-server-", ignore_cleanup_errors=True) as tmp:
        data_dir = Path(tmp) / "chroma"
        data_dir.mkdir()
        port = free_port()
        start = time.perf_counter()
        with chroma_server(data_dir, port):
            print(f"chroma run listening on 127.0.0.1:{port} ({time.perf_counter() - start:.1f} s)")
            config: dict[str, Any] = {
                "store": {
                    "mode": "http",
                    "host": "127.0.0.1",
                    "port": port,
                    "collection": "demo",
                    "path": tmp,  # this app's local data directory: bm25.path must be inside
                },
                "bm25": {"path": str(Path(tmp) / "bm25")},
            }
            embedding = MiniLMEmbeddings()
            retriever = HybridRetriever.from_config(config, embedding, k=3)
            retriever.store.heartbeat()
            docs = load_docs()
            retriever.add_documents(docs)
            print(f"added {len(docs)} documents; the server holds {retriever.store.count()}")

            query = docs[1].metadata["title"]
            print(f'query "{query}":')
            for doc in retriever.invoke(query):
                meta = doc.metadata
                print(
                    f"  {doc.id:<10} {meta['hybrid_score']:.4f}  bm25#{meta['bm25_rank']} "
                    f"vector#{meta['vector_rank']}  {meta.get('title', '')}"
                )

            # Another client (or process) on the same server and BM25 directory.
            other = HybridRetriever.from_config(config, embedding, k=1)
            top = other.invoke(query)[0]
            print(f"second client: {len(other.bm25)} documents in BM25, top result {top.id}")


if __name__ == "__main__":
    main()
