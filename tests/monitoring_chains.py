"""The monitoring tests' corpus, LCEL chains, fixtures and CLI workspace.

Shared by test_metrics, test_health and test_exporters, which import the fixtures
(``embedding``, ``retriever``, ``in_tmp``) by name: pytest finds a fixture by the name a test
module holds, so these stay out of every other module's way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from helpers import HashEmbeddings
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda

from langchain_hybrid import HybridRetriever, RetrievalMetricsHandler, cli

TEXTS = [
    ("net-1", "The NX-220 router shows error E-4471 when its firmware is outdated", "faq"),
    ("net-2", "Reset the router by holding the button for ten seconds", "handbook"),
    ("net-3", "Mesh networks extend wifi coverage across large houses", "blog"),
    ("gar-1", "Water tomatoes deeply twice a week during hot summers", "handbook"),
    ("gar-2", "Prune roses in late winter before new growth starts", "blog"),
    ("cof-1", "Espresso needs a fine grind and nine bar of pressure", "blog"),
    ("cof-2", "A french press brews coffee with a coarse grind", "faq"),
    ("cof-3", "Cold brew coffee steeps for twelve hours in cold water", "handbook"),
    ("py-1", "Use functools.lru_cache to memoize pure python functions", "faq"),
    ("py-2", "Python generators yield values lazily one at a time", "blog"),
]
QUERIES = ["router error", "coffee grind", "python cache", "roses winter", "wifi mesh", "tomatoes"]
HYBRID = "HybridRetriever"
BAD_FILTER = {"source": {"$regex": "faq"}}  # an unknown operator: InvalidFilterError in the run


def documents() -> list[Document]:
    return [Document(id=i, page_content=t, metadata={"source": s}) for i, t, s in TEXTS]


def format_docs(docs: list[Document]) -> dict[str, str]:
    return {"context": "\n".join(d.page_content for d in docs)}


def make_chain(retriever: HybridRetriever) -> Runnable[str, Any]:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer from these notes:\n{context}"), ("human", "Answer briefly.")]
    )
    return retriever | RunnableLambda(format_docs) | prompt | FakeListChatModel(responses=["ok"])


@pytest.fixture
def embedding() -> HashEmbeddings:
    return HashEmbeddings()


@pytest.fixture
def retriever(embedding: HashEmbeddings, collection_name: str) -> HybridRetriever:
    return HybridRetriever.from_documents(
        documents(), embedding=embedding, collection_name=collection_name, k=4
    )


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the CLI in tmp_path, with no settings from the environment and HashEmbeddings."""
    return cli_workspace(tmp_path, monkeypatch)


def cfg(*handlers: Any) -> RunnableConfig:
    return {"callbacks": list(handlers)}


def hybrid(handler: RetrievalMetricsHandler) -> dict[str, Any]:
    series: dict[str, Any] = handler.snapshot()["retrievers"][HYBRID]
    return series


def break_vector_leg(retriever: HybridRetriever) -> None:
    retriever.store.client.delete_collection(retriever.store.config.chroma_collection)


def assert_latency_ordered(series: dict[str, Any]) -> None:
    latency = series["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert latency["mean"] > 0


GLOBAL = ["--path", "index", "--collection", "kb"]


def cli_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the CLI in tmp_path, with no settings from the environment and HashEmbeddings."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name == "LANGCHAIN_HYBRID_CONFIG" or (
            name.startswith("LANGCHAIN_HYBRID_") and "__" in name
        ):
            monkeypatch.delenv(name)
    emb = HashEmbeddings()
    monkeypatch.setattr(cli, "make_embedding", lambda _settings: emb)
    docs = tmp_path / "docs"
    docs.mkdir()
    for doc_id, text, _ in TEXTS:
        (docs / f"{doc_id}.txt").write_text(text, encoding="utf-8")
    return tmp_path


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main([*GLOBAL, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err
