"""Callback-event plumbing shared by the monitoring modules (metrics, health, exporters).

The base class of the package's callback handlers (:class:`RetrieverEventsOnly`: retriever runs
and custom events only) and the few readings of an event they share: a run's name, the size and
degraded legs of an answer, an error as one bounded line, a checked positive setting.
Internal: the public handlers are :class:`~langchain_hybrid.metrics.RetrievalMetricsHandler`
and :class:`~langchain_hybrid.exporters.OTelRetrievalHandler`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler

from langchain_hybrid.errors import ConfigError

_ERROR_TEXT = 300  # characters of an error message kept in metrics, health details and spans


def positive(name: str, value: object) -> int:
    """``value`` if it is an integer >= 1 (a handler's size setting), else ``ConfigError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        msg = f"{name} must be an integer >= 1, got {value!r}"
        raise ConfigError(msg)
    return value


def count_documents(documents: object) -> int:
    """The number of documents a retriever run returned (0 for anything but a sequence)."""
    if type(documents) is list:  # the usual case, without an ABC check
        return len(documents)
    return len(documents) if isinstance(documents, Sequence) else 0


def documents_info(documents: object) -> tuple[int, str | None]:
    """Number of documents and the failed legs named by ``metadata["degraded"]``, if any.

    Only the first document is read: :class:`HybridRetriever` marks every document of a
    degraded answer (and an empty degraded answer is caught by its failed leg's error event).
    """
    n = count_documents(documents)
    if not n:
        return 0, None
    metadata = getattr(documents[0], "metadata", None)  # type: ignore[index]
    degraded = metadata.get("degraded") if isinstance(metadata, dict) else None
    return n, None if degraded is None else str(degraded)


def run_name(serialized: object, kwargs: Mapping[str, Any]) -> str:
    """The name a run is recorded under: its run name, else its class, else ``retriever``."""
    name = kwargs.get("name")
    if not name and isinstance(serialized, Mapping):
        name = serialized.get("name")
    return str(name) if name else "retriever"


def error_text(error: object) -> str:
    """An error as one bounded line: ``Type: message``, cut to 300 characters."""
    text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
    return text if len(text) <= _ERROR_TEXT else text[: _ERROR_TEXT - 3] + "..."


class RetrieverEventsOnly(BaseCallbackHandler):
    """Skip every event but retriever runs and custom events, before any work is done."""

    @property
    def ignore_llm(self) -> bool:
        """LLM events are not observed."""
        return True

    @property
    def ignore_chat_model(self) -> bool:
        """Chat model events are not observed."""
        return True

    @property
    def ignore_chain(self) -> bool:
        """Chain events are not observed."""
        return True

    @property
    def ignore_agent(self) -> bool:
        """Agent events are not observed."""
        return True

    @property
    def ignore_retry(self) -> bool:
        """Retry events are not observed."""
        return True
