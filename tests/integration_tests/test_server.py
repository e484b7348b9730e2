"""Client-server: HybridRetriever against a real `chroma run` server, including an outage."""

from __future__ import annotations

from pathlib import Path

import chromadb
import pytest
from chromadb.config import Settings
from conftest import ChromaServer
from helpers import HashEmbeddings
from langchain_chroma import Chroma
from langchain_core.documents import Document

from langchain_hybrid import (
    HybridRetriever,
    StoreConfig,
    StoreUnavailableError,
)
from langchain_hybrid.stores import ChromaStore
from langchain_hybrid.vectorstore_cache import CachedVectorStore, chroma_staleness_check

pytestmark = pytest.mark.server

DOCS = [
    Document(id=f"d{i}", page_content=text, metadata={"topic": topic})
    for i, (text, topic) in enumerate(
        [
            ("The NX-220 router reports error E-4471 after a failed update", "network"),
            ("Mesh wifi nodes should sit in open hallways", "network"),
            ("Espresso wants a fine grind and a hot group head", "coffee"),
            ("Cold brew steeps overnight in the fridge", "coffee"),
            ("Sirius is the brightest star of the night sky", "astronomy"),
            ("Jupiter's moons were first seen by Galileo", "astronomy"),
        ]
    )
]


def _config(server: ChromaServer, collection: str = "kb-server") -> StoreConfig:
    return StoreConfig(
        mode="http", host="127.0.0.1", port=server.port, collection=collection, timeout_seconds=5
    )


def test_hybrid_search_over_http(chroma_server: ChromaServer, tmp_path: Path) -> None:
    retriever = HybridRetriever.from_documents(
        DOCS,
        embedding=HashEmbeddings(),
        store_config=_config(chroma_server),
        bm25_path=tmp_path / "bm25",
        k=3,
    )
    assert retriever.store.heartbeat() > 0
    top = retriever.invoke("router error E-4471")[0]
    assert top.id == "d0"
    assert top.metadata["bm25_rank"] == 1
    assert top.metadata["vector_rank"] == 1
    filtered = retriever.invoke("sky star moons", filter={"topic": "astronomy"}, k=5)
    assert {d.id for d in filtered} == {"d4", "d5"}

    # a second client (another process would see the same) reopens without re-embedding
    embedding = HashEmbeddings()
    again = HybridRetriever.from_store(
        ChromaStore(_config(chroma_server)), embedding, bm25_path=tmp_path / "bm25"
    )
    assert [d.id for d in again.invoke("router error E-4471", k=3)] == [
        d.id for d in retriever.invoke("router error E-4471")
    ]
    assert embedding.embedded_documents == 0


def test_outage_degrades_to_bm25_fails_writes_loudly_and_recovers(
    chroma_server: ChromaServer, tmp_path: Path
) -> None:
    retriever = HybridRetriever.from_documents(
        DOCS,
        embedding=HashEmbeddings(),
        store_config=_config(chroma_server),
        bm25_path=tmp_path / "bm25",
        k=3,
    )
    chroma_server.stop()

    docs = retriever.invoke("espresso grind")
    assert docs[0].id == "d2"
    assert all(d.metadata["degraded"] == "vector" for d in docs)

    before = (len(retriever.bm25), retriever.bm25.generation)
    with pytest.raises(StoreUnavailableError):
        retriever.add_documents([Document(id="new", page_content="Moka pot coffee")])
    with pytest.raises(StoreUnavailableError):
        retriever.delete(["d0"])
    assert (len(retriever.bm25), retriever.bm25.generation) == before
    assert "new" not in retriever.bm25

    chroma_server.start()
    recovered = retriever.invoke("espresso grind")
    assert "degraded" not in recovered[0].metadata
    assert recovered[0].metadata["vector_rank"] is not None
    assert retriever.store.count() == len(DOCS)  # nothing lost, nothing half-written
    ids = retriever.add_documents([Document(id="new", page_content="Moka pot coffee")])
    assert ids == ["new"]
    assert retriever.store.count() == len(retriever.bm25) == len(DOCS) + 1


def test_unreachable_server_is_a_typed_error(tmp_path: Path) -> None:
    server = ChromaServer(tmp_path / "never-started")  # a free port nobody listens on
    with pytest.raises(StoreUnavailableError, match=r"127\.0\.0\.1"):
        ChromaStore(_config(server))


def test_cached_vector_store_over_http_goes_by_the_retrievers_change_signal(
    chroma_server: ChromaServer, tmp_path: Path
) -> None:
    retriever = HybridRetriever.from_documents(
        DOCS, embedding=HashEmbeddings(), store_config=_config(chroma_server), bm25_path=tmp_path
    )
    client = chromadb.HttpClient(
        host="127.0.0.1", port=chroma_server.port, settings=Settings(anonymized_telemetry=False)
    )
    chroma = Chroma(collection_name="kb-server", client=client, embedding_function=HashEmbeddings())
    check = chroma_staleness_check(chroma)
    assert check() == (retriever.index.write_generation(), len(DOCS))
    store = CachedVectorStore(chroma, staleness_check=check, check_interval_seconds=0)
    assert store.similarity_search("Sirius brightest star", k=1)[0].id == "d4"
    assert store.similarity_search("Sirius brightest star", k=1)[0].id == "d4"
    assert store.cache_stats()["hits"] == 1
    retriever.add_documents([Document(id="d3", page_content="Sirius brightest star")])
    assert check() == (retriever.index.write_generation(), len(DOCS))  # count-neutral: generation
    assert store.similarity_search("Sirius brightest star", k=1)[0].id == "d3"
