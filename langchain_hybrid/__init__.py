"""langchain-hybrid: a hybrid BM25 + ChromaDB retriever for LangChain, z-score fusion by default."""

from langchain_hybrid._tokenize import TokenizerConfig, register_tokenizer
from langchain_hybrid.adaptive import AdaptiveWeights
from langchain_hybrid.bm25 import BM25Index, BM25Params
from langchain_hybrid.cache import CachedEmbeddings, LRUCache
from langchain_hybrid.config import HybridConfig, load_config
from langchain_hybrid.embeddings import MiniLMEmbeddings
from langchain_hybrid.errors import (
    AllLegsFailedError,
    BatchWriteError,
    CollectionConfigError,
    ConfigError,
    EmbeddingMismatchError,
    EmbeddingModelNotFoundError,
    ForkedProcessError,
    HybridRetrieverError,
    IndexCorruptError,
    IndexNotBuiltError,
    InvalidDocumentsError,
    InvalidFilterError,
    InvalidQueryError,
    RerankError,
    StoreError,
    StoreUnavailableError,
    WriterLockError,
)
from langchain_hybrid.exporters import serve_metrics
from langchain_hybrid.health import HealthCheck, HealthMonitor, HealthStatus
from langchain_hybrid.metrics import RetrievalMetricsHandler
from langchain_hybrid.retrievers import HybridRetriever
from langchain_hybrid.stores import ChromaStore, HNSWConfig, StoreConfig
from langchain_hybrid.vectorstore import HybridVectorStore
from langchain_hybrid.vectorstore_cache import CachedVectorStore

__all__ = [
    "AdaptiveWeights",
    "AllLegsFailedError",
    "BM25Index",
    "BM25Params",
    "BatchWriteError",
    "CachedEmbeddings",
    "CachedVectorStore",
    "ChromaStore",
    "CollectionConfigError",
    "ConfigError",
    "EmbeddingMismatchError",
    "EmbeddingModelNotFoundError",
    "ForkedProcessError",
    "HNSWConfig",
    "HealthCheck",
    "HealthMonitor",
    "HealthStatus",
    "HybridConfig",
    "HybridRetriever",
    "HybridRetrieverError",
    "HybridVectorStore",
    "IndexCorruptError",
    "IndexNotBuiltError",
    "InvalidDocumentsError",
    "InvalidFilterError",
    "InvalidQueryError",
    "LRUCache",
    "MiniLMEmbeddings",
    "RerankError",
    "RetrievalMetricsHandler",
    "StoreConfig",
    "StoreError",
    "StoreUnavailableError",
    "TokenizerConfig",
    "WriterLockError",
    "load_config",
    "register_tokenizer",
    "serve_metrics",
]

__version__ = "0.2.0"
"""The release (equal to ``pyproject.toml``'s version; a test keeps them in step)."""
