"""The callback plumbing the monitoring handlers share (``langchain_hybrid._events``)."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document

from langchain_hybrid import ConfigError, RetrievalMetricsHandler
from langchain_hybrid._events import (
    RetrieverEventsOnly,
    count_documents,
    documents_info,
    error_text,
    positive,
    run_name,
)
from langchain_hybrid.exporters import OTelRetrievalHandler


def test_both_handlers_listen_to_retriever_runs_only() -> None:
    for handler in (RetrievalMetricsHandler, OTelRetrievalHandler):
        assert issubclass(handler, RetrieverEventsOnly)
    events = RetrieverEventsOnly()
    assert events.ignore_llm
    assert events.ignore_chat_model
    assert events.ignore_chain
    assert events.ignore_agent
    assert events.ignore_retry
    assert not events.ignore_retriever
    assert not events.ignore_custom_event


def test_error_text_names_the_type_and_stays_one_bounded_line() -> None:
    assert error_text(ValueError("bad k")) == "ValueError: bad k"
    assert error_text("plain") == "plain"
    long = error_text(RuntimeError("x" * 1000))
    assert len(long) == 300
    assert long.startswith("RuntimeError: xxx")
    assert long.endswith("...")


def test_run_name_prefers_the_run_name_then_the_class() -> None:
    assert run_name({"name": "HybridRetriever"}, {"name": "kb"}) == "kb"
    assert run_name({"name": "HybridRetriever"}, {}) == "HybridRetriever"
    assert run_name(None, {}) == "retriever"


def test_documents_info_counts_and_reads_the_degraded_mark() -> None:
    ok = [Document("a", metadata={}), Document("b")]
    degraded = [Document("a", metadata={"degraded": "vector"})]
    assert count_documents(ok) == 2
    assert count_documents(tuple(ok)) == 2
    assert count_documents(None) == 0
    assert documents_info(ok) == (2, None)
    assert documents_info(degraded) == (1, "vector")
    assert documents_info([]) == (0, None)


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "3", None])
def test_positive_rejects_what_is_not_an_integer_of_at_least_one(bad: object) -> None:
    assert positive("window", 7) == 7
    with pytest.raises(ConfigError, match=r"window must be an integer >= 1"):
        positive("window", bad)
