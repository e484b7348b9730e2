"""The exception tree of langchain-hybrid.

Every error the package raises on purpose derives from :class:`HybridRetrieverError`, and each
also inherits the builtin it is closest to, so ``except ValueError`` keeps working for callers
that do not know this package::

    HybridRetrieverError
    ├── ConfigError (ValueError)                 bad settings, misspelt YAML keys
    │   ├── CollectionConfigError                creation-only HNSW setting differs
    │   └── EmbeddingMismatchError               index embedded by another model/precision
    ├── InvalidQueryError (ValueError)           empty / non-string query, bad k or weights
    ├── InvalidFilterError (ValueError)          malformed ``where`` filter, one Chroma rejects
    ├── InvalidDocumentsError (ValueError)       length mismatch, duplicate or empty ids
    ├── IndexCorruptError (RuntimeError)         a BM25 file cannot be read back
    ├── IndexNotBuiltError (RuntimeError)        nothing to search yet
    ├── StoreError (RuntimeError)                the vector store failed
    │   ├── StoreUnavailableError (ConnectionError)   server unreachable
    │   └── BatchWriteError                      some batches were not written (names the ids)
    ├── AllLegsFailedError (RuntimeError)        every retrieval leg failed
    ├── RerankError (RuntimeError)               the reranker failed (on_leg_error="raise")
    ├── EmbeddingModelNotFoundError (FileNotFoundError)
    ├── WriterLockError (RuntimeError)           another process holds the writer lock
    └── ForkedProcessError (RuntimeError)        an embedded index used in a forked child

A rejected call never changes stored data: validation happens before any write.
"""

from __future__ import annotations

__all__ = [
    "AllLegsFailedError",
    "BatchWriteError",
    "CollectionConfigError",
    "ConfigError",
    "EmbeddingMismatchError",
    "EmbeddingModelNotFoundError",
    "ForkedProcessError",
    "HybridRetrieverError",
    "IndexCorruptError",
    "IndexNotBuiltError",
    "InvalidDocumentsError",
    "InvalidFilterError",
    "InvalidQueryError",
    "RerankError",
    "StoreError",
    "StoreUnavailableError",
    "WriterLockError",
]

from collections.abc import Sequence


class HybridRetrieverError(Exception):
    """Root of every error raised on purpose by langchain-hybrid."""


class ConfigError(HybridRetrieverError, ValueError):
    """A setting is invalid: unknown key, wrong type, or out of range."""


class CollectionConfigError(ConfigError):
    """A creation-time-only setting differs from the existing collection's."""


class EmbeddingMismatchError(ConfigError):
    """The index was embedded by another model or precision than the one given to query it.

    Vectors of different models (or of fp32 and int8 all-MiniLM-L6-v2) do not share a space
    closely enough to rank against each other. Re-embed the index, configure the model it
    records, or pass the override to accept the mismatch.

    Attributes:
        recorded: the model id the index records, e.g. ``"all-MiniLM-L6-v2/fp32"``.
        given: the model id of the embedding in use, e.g. ``"all-MiniLM-L6-v2/int8-rfde59fc4"``.
    """

    def __init__(self, msg: str, *, recorded: str, given: str) -> None:
        """Create the error with both model ids."""
        super().__init__(msg)
        self.recorded = recorded
        self.given = given


class InvalidQueryError(HybridRetrieverError, ValueError):
    """The query or a per-call parameter (``k``, ``fetch_k``, ``weights``) is invalid."""


class InvalidFilterError(HybridRetrieverError, ValueError):
    """A metadata filter is malformed or uses an unknown operator."""


class InvalidDocumentsError(HybridRetrieverError, ValueError):
    """Documents, ids or metadatas passed to a write are inconsistent."""


class IndexCorruptError(HybridRetrieverError, RuntimeError):
    """A persisted BM25 index file is unreadable or inconsistent."""


class IndexNotBuiltError(HybridRetrieverError, RuntimeError):
    """An operation needs an index that has not been built or loaded."""


class StoreError(HybridRetrieverError, RuntimeError):
    """The vector store (Chroma) failed."""


class StoreUnavailableError(StoreError, ConnectionError):
    """The vector store could not be reached."""


class BatchWriteError(StoreError):
    """Some write batches failed; nothing is silently lost.

    Attributes:
        written_ids: ids that were written before the failure (present in both legs).
        failed_ids: ids that were not written (present in neither leg).
    """

    def __init__(self, msg: str, *, written_ids: Sequence[str], failed_ids: Sequence[str]) -> None:
        """Create the error with the ids that were and were not written."""
        super().__init__(msg)
        self.written_ids = list(written_ids)
        self.failed_ids = list(failed_ids)


class RerankError(HybridRetrieverError, RuntimeError):
    """The reranker raised, or returned something other than a reordering of its candidates.

    With ``on_leg_error="degrade"`` (the default) the retriever returns the fused order instead,
    marked ``metadata["degraded"] = "rerank"``; with ``"raise"`` this error is raised, the
    reranker's own exception chained as its cause.
    """


class AllLegsFailedError(HybridRetrieverError, RuntimeError):
    """Every retrieval leg failed, so there is nothing to return."""


class EmbeddingModelNotFoundError(HybridRetrieverError, FileNotFoundError):
    """The default embedding model files could not be found or fetched.

    Also raised for a missing int8 model that cannot be made here (no ``onnx`` package), and
    for an int8 file not stamped with this version's recipe (see :mod:`.quantize`).
    """


class WriterLockError(HybridRetrieverError, RuntimeError):
    """Another process holds the writer lock of this index directory."""


class ForkedProcessError(HybridRetrieverError, RuntimeError):
    """An embedded (persistent or in-memory) index opened before ``os.fork()`` is used in the child.

    Chroma's embedded client hangs for good in a forked child (its native runtime does not
    survive the fork), so the child gets this error instead. Open the index in the child: in
    gunicorn's ``post_fork`` hook or without ``--preload``, in the worker function of
    ``multiprocessing`` (or with the ``"spawn"`` / ``"forkserver"`` start method).
    """
