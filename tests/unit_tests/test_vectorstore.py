"""HybridVectorStore: LangChain's VectorStore suite, and LangChain's indexing API on both legs."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import HashEmbeddings
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.indexing import InMemoryRecordManager, index
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from langchain_hybrid import ConfigError, HybridRetriever, InvalidDocumentsError
from langchain_hybrid.stores import StoreConfig
from langchain_hybrid.vectorstore import HybridVectorStore


def _store(collection_name: str, embedding: Embeddings | None = None) -> HybridVectorStore:
    retriever = HybridRetriever.from_documents(
        [],
        embedding=embedding or HashEmbeddings(),
        store_config=StoreConfig(mode="ephemeral", collection=collection_name),
    )
    return HybridVectorStore(retriever)


class TestHybridVectorStoreStandard(VectorStoreIntegrationTests):
    """langchain-tests' vector-store suite: add, idempotent ids, delete, get_by_ids, async."""

    @pytest.fixture
    def vectorstore(self, collection_name: str) -> VectorStore:
        return _store(collection_name, self.get_embeddings())


def _docs(version: int) -> list[Document]:
    edition = {1: "draft", 2: "final"}
    return [
        Document(page_content=f"router manual page {i} {edition[version]}", metadata={"source": s})
        for i, s in enumerate(["a.md", "a.md", "b.md"])
    ]


def _legs(store: HybridVectorStore) -> tuple[list[str], int]:
    return sorted(store.retriever.bm25.ids), store.retriever.store.count()


def test_indexing_api_incremental_cleanup_reaches_both_legs(collection_name: str) -> None:
    store = _store(collection_name)
    records = InMemoryRecordManager(namespace=f"hybrid/{collection_name}")
    records.create_schema()
    first = index(
        _docs(1),
        records,
        store,
        cleanup="incremental",
        source_id_key="source",
        key_encoder="sha256",
    )
    assert first == {"num_added": 3, "num_updated": 0, "num_skipped": 0, "num_deleted": 0}
    ids, count = _legs(store)
    assert len(ids) == count == 3
    again = index(
        _docs(1),
        records,
        store,
        cleanup="incremental",
        source_id_key="source",
        key_encoder="sha256",
    )
    assert again["num_skipped"] == 3
    assert again["num_added"] == 0
    # a.md changes (both chunks re-added, old ones deleted); b.md is not re-indexed: kept
    changed = [d for d in _docs(2) if d.metadata["source"] == "a.md"]
    third = index(
        changed, records, store, cleanup="incremental", source_id_key="source", key_encoder="sha256"
    )
    assert third["num_added"] == 2
    assert third["num_deleted"] == 2
    ids_after, count_after = _legs(store)
    assert count_after == len(ids_after) == 3
    assert len(set(ids_after) & set(ids)) == 1, "only b.md's chunk keeps its id"
    texts = sorted(d.page_content for d in store.get_by_ids(ids_after))
    assert texts == [
        "router manual page 0 final",
        "router manual page 1 final",
        "router manual page 2 draft",
    ]
    hits = store.similarity_search("draft", k=3)
    assert hits[0].page_content == "router manual page 2 draft"
    assert store.retriever.search_leg("bm25", "draft", k=3)[0].id == hits[0].id
    assert len(store.retriever.search_leg("bm25", "draft", k=3)) == 1, "old drafts are gone"


def test_search_returns_stored_metadata_and_the_fused_score(collection_name: str) -> None:
    store = _store(collection_name)
    store.add_texts(["red apples", "green pears"], [{"c": "red"}, {"c": "green"}], ids=["a", "b"])
    [(doc, score)] = store.similarity_search_with_score("apples", k=1)
    assert doc.id == "a"
    assert doc.metadata == {"c": "red"}
    assert score > 0
    assert [d.id for d in store.similarity_search("apples pears", k=2, filter={"c": "green"})] == [
        "b"
    ]
    hit = store.retriever.invoke("apples", k=1)[0]
    assert hit.metadata["hybrid_score"] == score


def test_adapter_rejects_what_it_cannot_do(collection_name: str) -> None:
    with pytest.raises(ConfigError, match="wraps a HybridRetriever"):
        HybridVectorStore(object())  # type: ignore[arg-type]
    store = _store(collection_name)
    with pytest.raises(InvalidDocumentsError, match="ids to delete"):
        store.delete(None)


def test_from_texts_builds_and_wraps(collection_name: str) -> None:
    options: dict[str, Any] = {
        "store_config": StoreConfig(mode="ephemeral", collection=collection_name)
    }
    store = HybridVectorStore.from_texts(["x y", "z"], HashEmbeddings(), ids=["1", "2"], **options)
    assert isinstance(store.retriever, HybridRetriever)
    assert sorted(d.id for d in store.get_by_ids(["1", "2", "3"])) == ["1", "2"]
