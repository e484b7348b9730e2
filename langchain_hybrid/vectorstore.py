"""HybridVectorStore: a retriever's two legs seen as one LangChain ``VectorStore``.

For code that takes a ``VectorStore``: LangChain's indexing API (``index()`` with a
``RecordManager``: add, skip unchanged, delete what a source no longer holds, in both legs),
``as_retriever()`` users and tools that list or delete by id. Every write goes through the
retriever's own write path, so the BM25 and vector legs stay in step; searches are hybrid.

Setup:
    Part of the core install.

    ```bash
    pip install -e .
    ```

Instantiate:
    ```python
    from langchain_hybrid import HybridRetriever, HybridVectorStore

    retriever = HybridRetriever.from_documents([], persist_directory="./index")
    store = HybridVectorStore(retriever)
    ```

Usage with LangChain's indexing API:
    ```python
    from langchain_core.indexing import InMemoryRecordManager, index

    records = InMemoryRecordManager(namespace="hybrid/kb")
    records.create_schema()
    index(docs, records, store, cleanup="incremental", source_id_key="source")
    ```
"""

from __future__ import annotations

__all__ = ["HybridVectorStore"]

from collections.abc import Iterable, Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from langchain_hybrid.errors import ConfigError, InvalidDocumentsError
from langchain_hybrid.retrievers import LEGS, HybridRetriever

_FUSION_KEYS = frozenset(
    {"hybrid_score", "degraded", *(f"{leg}_{what}" for leg in LEGS for what in ("rank", "score"))}
)
"""Metadata the retriever adds to each hit; a vector store returns stored metadata only."""


class HybridVectorStore(VectorStore):
    """A ``VectorStore`` over a :class:`HybridRetriever`: writes reach both legs.

    ``add_documents`` / ``add_texts`` / ``delete`` / ``get_by_ids`` call the retriever's own
    methods (one embedding per text, both legs, the writer lock and write generation);
    ``similarity_search`` is the retriever's hybrid search (per-call ``k`` and ``filter``).
    Keyword arguments LangChain's callers add (``batch_size`` from ``index()``) are accepted and
    ignored: the store batches writes itself.
    """

    def __init__(self, retriever: HybridRetriever) -> None:
        """Wrap ``retriever``; raises ``ConfigError`` if it is not a :class:`HybridRetriever`."""
        if not isinstance(retriever, HybridRetriever):
            msg = f"HybridVectorStore wraps a HybridRetriever, got {type(retriever).__name__}"
            raise ConfigError(msg)
        self.retriever = retriever

    @property
    def embeddings(self) -> Embeddings:
        """The retriever's embedding model."""
        return self.retriever.embedding

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Add or replace documents in both legs; ids from ``ids=`` or the documents."""
        return self.retriever.add_documents(documents, ids=kwargs.get("ids"))

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Add or replace texts in both legs."""
        texts = list(texts)
        metadatas = metadatas or [{} for _ in texts]
        documents = [
            Document(page_content=text, metadata=dict(metadata))
            for text, metadata in zip(texts, metadatas, strict=True)
        ]
        return self.retriever.add_documents(documents, ids=ids)

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete documents by id from both legs (unknown ids are ignored).

        Raises:
            InvalidDocumentsError: ``ids`` is ``None`` (deleting everything is not offered).
        """
        if ids is None:
            msg = "HybridVectorStore.delete takes the ids to delete"
            raise InvalidDocumentsError(msg)
        self.retriever.delete(ids)
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The stored documents with these ids (unknown ids are left out)."""
        return self.retriever.get_by_ids(ids)

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        """Hybrid search: the fused top ``k`` (``filter=`` applies to both legs).

        Documents carry their stored metadata only; the fusion details (``hybrid_score``, ranks
        and scores per leg) are in :meth:`similarity_search_with_score` and the retriever.
        """
        return [doc for doc, _ in self.similarity_search_with_score(query, k, **kwargs)]

    def similarity_search_with_score(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Hybrid search with each document's fused score (higher is better)."""
        options: dict[str, Any] = {"k": k}
        if kwargs.get("filter") is not None:
            options["filter"] = kwargs["filter"]
        out = []
        for hit in self.retriever.invoke(query, **options):
            score = float(hit.metadata.get("hybrid_score", 0.0))
            metadata = {key: v for key, v in hit.metadata.items() if key not in _FUSION_KEYS}
            out.append(
                (Document(id=hit.id, page_content=hit.page_content, metadata=metadata), score)
            )
        return out

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> HybridVectorStore:
        """Build a retriever from texts (``HybridRetriever.from_texts`` arguments) and wrap it."""
        retriever = HybridRetriever.from_texts(texts, embedding, metadatas, ids=ids, **kwargs)
        return cls(retriever)
