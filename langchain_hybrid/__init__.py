"""langchain-hybrid: a hybrid BM25 + ChromaDB retriever for LangChain, fused with RRF."""

from langchain_hybrid.bm25 import BM25Index, BM25Params, TokenizerConfig
from langchain_hybrid.embeddings import MiniLMEmbeddings
from langchain_hybrid.errors import (
    AllLegsFailedError,
    BatchWriteError,
    CollectionConfigError,
    ConfigError,
    EmbeddingModelNotFoundError,
    HybridRetrieverError,
    IndexCorruptError,
    IndexNotBuiltError,
    InvalidDocumentsError,
    InvalidFilterError,
    InvalidQueryError,
    StoreError,
    StoreUnavailableError,
    WriterLockError,
)
from langchain_hybrid.retrievers import HybridRetriever
from langchain_hybrid.stores import ChromaStore, HNSWConfig, StoreConfig

__all__ = [
    "AllLegsFailedError",
    "BM25Index",
    "BM25Params",
    "BatchWriteError",
    "ChromaStore",
    "CollectionConfigError",
    "ConfigError",
    "EmbeddingModelNotFoundError",
    "HNSWConfig",
    "HybridRetriever",
    "HybridRetrieverError",
    "IndexCorruptError",
    "IndexNotBuiltError",
    "InvalidDocumentsError",
    "InvalidFilterError",
    "InvalidQueryError",
    "MiniLMEmbeddings",
    "StoreConfig",
    "StoreError",
    "StoreUnavailableError",
    "TokenizerConfig",
    "WriterLockError",
]
