"""The README's promises: every ```python block runs as shown, and the Python API behaves as
the README says (deterministic ids, the same arguments for every factory).

Blocks run in order, each in a fresh namespace holding this documented preamble, inside a
temporary working directory that holds a copy of ``examples/hybrid.yaml`` (so paths in the
README, relative to the repository root, work there too):

* ``docs``: three ``Document``s (router error E-4471, coffee, garden), with ``source`` and
  ``year`` metadata; ``more_docs``: two more;
* ``emb``: a deterministic bag-of-words embedding (``HashEmbeddings``);
* ``retriever``: an in-memory ``HybridRetriever`` over ``docs`` with ``emb``;
* ``chain``: ``retriever`` itself (any runnable taking the question); ``q``: a question.

Blocks that call the default model get the real all-MiniLM-L6-v2 (``LANGCHAIN_HYBRID_MODEL_DIR``
points at it). A block that starts a metrics server gets ``port=0`` instead of its fixed port
(a free port), and the server is closed after the block; nothing else is changed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import HashEmbeddings
from langchain_core.documents import Document

from langchain_hybrid import ConfigError, HybridRetriever

ROOT = Path(__file__).resolve().parents[2]


def _docs() -> list[Document]:
    return [
        Document("The NX-220 router shows error E-4471 when its firmware is outdated.",
                 metadata={"source": "faq", "year": 2024}),
        Document("Espresso needs a fine grind and nine bar of pressure.",
                 metadata={"source": "blog", "year": 2023}),
        Document("Water tomatoes deeply twice a week during hot summers.",
                 metadata={"source": "faq", "year": 2025}),
    ]  # fmt: skip


# ---------------------------------------------------------------------- the Python API
def test_documents_without_ids_get_deterministic_ids(tmp_path: Path) -> None:
    """Adding the same documents twice (the quickstart run twice) replaces, never duplicates."""
    emb = HashEmbeddings()
    docs = [*_docs(), Document("The NX-220 router shows error E-4471 when its firmware is "
                               "outdated.", metadata={"source": "faq", "year": 2024})]  # fmt: skip
    first = HybridRetriever.from_documents(docs, emb, persist_directory=tmp_path / "index")
    ids = first.bm25.ids
    assert len(ids) == 4, "a repeated chunk of one source gets its own id"
    again = HybridRetriever.from_documents(docs, emb, persist_directory=tmp_path / "index")
    assert sorted(again.bm25.ids) == sorted(ids)
    assert again.store.count() == 4
    reordered = HybridRetriever.from_documents(
        [Document("A new passage.", metadata={"source": "faq"}), *docs[::-1]],
        emb,
        persist_directory=tmp_path / "index",
    )
    assert reordered.store.count() == 5, "reordering or adding documents keeps the other ids"
    explicit = Document("kept as given", id="my-id")
    assert reordered.add_documents([explicit]) == ["my-id"]


@pytest.mark.parametrize(
    "extra",
    [
        {"cache": False},
        {"cache": True, "k": 2},
        {"bm25_params": None, "fetch_k": 10},
    ],
)
def test_every_factory_takes_the_same_arguments(tmp_path: Path, extra: dict[str, object]) -> None:
    emb = HashEmbeddings()
    config = {"store": {"path": str(tmp_path / "index"), "collection": "kb"}}
    built = HybridRetriever.from_documents(
        _docs(), emb, persist_directory=tmp_path / "index", collection_name="kb", **extra
    )
    loaded = HybridRetriever.load(tmp_path / "index", collection_name="kb", embedding=emb, **extra)
    configured = HybridRetriever.from_config(config, emb, **extra)
    for retriever in (built, loaded, configured):
        assert (retriever.cache is None) == (extra.get("cache") is False)
        assert retriever.k == extra.get("k", 4)
        assert len(retriever.invoke("router error E-4471")) == min(retriever.k, 3)


def test_an_unknown_factory_argument_is_a_config_error(tmp_path: Path) -> None:
    config = {"store": {"path": str(tmp_path / "index"), "collection": "kb"}}
    with pytest.raises(ConfigError, match="chache"):
        HybridRetriever.from_config(config, HashEmbeddings(), chache=False)
    assert not (tmp_path / "index").exists(), "a rejected argument creates nothing"
