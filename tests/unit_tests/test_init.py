import subprocess
import sys
from pathlib import Path

import langchain_hybrid
import langchain_hybrid.errors

EXPECTED = [
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


def test_public_surface_is_pinned() -> None:
    assert sorted(langchain_hybrid.__all__) == sorted(EXPECTED)
    assert langchain_hybrid.__all__ == sorted(langchain_hybrid.__all__, key=str)
    for name in EXPECTED:
        assert getattr(langchain_hybrid, name) is not None


def test_every_error_of_the_tree_is_exported() -> None:
    # a caller catches what it can import from the package: no error class only in errors.py
    tree = {
        name
        for name, value in vars(langchain_hybrid.errors).items()
        if isinstance(value, type) and issubclass(value, langchain_hybrid.HybridRetrieverError)
    }
    assert tree, "the error tree was found"
    assert tree <= set(langchain_hybrid.__all__), sorted(tree - set(langchain_hybrid.__all__))


def test_import_pulls_in_no_optional_package() -> None:
    # (chromadb itself imports opentelemetry, so only prometheus_client can be checked)
    code = (
        "import sys, langchain_hybrid; "
        "print(any(m.startswith('prometheus_client') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_version_is_pyprojects() -> None:
    import tomllib  # noqa: PLC0415 - Python 3.11+, where the tests run

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert langchain_hybrid.__version__ == pyproject["project"]["version"]
