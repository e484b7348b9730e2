"""Settings: YAML with line-numbered errors, env overrides, deep merge, from_config."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import HashEmbeddings
from langchain_core.documents import Document

from langchain_hybrid import ConfigError, HybridRetriever
from langchain_hybrid.config import (
    HybridConfig,
    deep_merge,
    env_overrides,
    load_config,
    make_embedding,
)
from langchain_hybrid.embeddings import MiniLMEmbeddings

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hybrid.yaml"


def test_example_yaml_loads_and_documents_every_default() -> None:
    assert load_config(EXAMPLE, environ={}) == HybridConfig()


def test_example_yaml_mentions_every_key() -> None:
    text = EXAMPLE.read_text()

    def keys(model: object, prefix: str = "") -> list[str]:
        out = []
        for name in type(model).model_fields:  # type: ignore[attr-defined]
            value = getattr(model, name)
            out.append(name)
            if hasattr(type(value), "model_fields"):
                out.extend(keys(value, f"{prefix}{name}."))
        return out

    missing = [k for k in keys(HybridConfig()) if f"{k}:" not in text]
    assert missing == []


def test_misspelt_key_names_key_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "hybrid.yaml"
    path.write_text("store:\n  mode: persistent\n  colection: kb\nfusion:\n  k: 0\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    message = str(info.value)
    assert f"{path}:3: unknown key 'store.colection'" in message
    assert f"{path}:5: fusion.k" in message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "text",
    [
        "store: [1, 2\n",  # not YAML
        "- a list\n- at top level\n",
        "store:\n  mode: cloud\n",
        "fusion:\n  weights: [1, 2, 3]\n",
        "bm25:\n  tokenizer:\n    stemmer: klingon\n",
        "bm25:\n  tokenizer:\n    token_pattern: '(unclosed'\n",
        "store:\n  collection: 'bad name!'\n",
        "store: !!python/object/apply:os.system ['echo pwned']\n",
    ],
)
def test_invalid_files_raise_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "hybrid.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load_config(path, environ={})


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml", environ={})


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing\n")
    assert load_config(path, environ={}) == HybridConfig()


def test_deep_merge_keeps_sibling_keys() -> None:
    merged = deep_merge({"store": {"mode": "http", "port": 1}}, {"store": {"port": 2}})
    assert merged == {"store": {"mode": "http", "port": 2}}


def test_source_order_overrides_beat_env_beat_file(tmp_path: Path) -> None:
    path = tmp_path / "hybrid.yaml"
    path.write_text("store:\n  port: 8001\n  host: filehost\nfusion:\n  k: 7\n  rrf_k: 10\n")
    environ = {
        "LANGCHAIN_HYBRID_STORE__PORT": "8002",
        "LANGCHAIN_HYBRID_FUSION__WEIGHTS": "[0.25, 0.75]",
        "LANGCHAIN_HYBRID_BM25__TOKENIZER__STEMMER": "null",
        "LANGCHAIN_HYBRID_MODEL_DIR": "/not/a/setting",
    }
    config = load_config(path, environ=environ, overrides={"fusion": {"k": 3}})
    assert config.store.port == 8002
    assert config.store.host == "filehost"
    assert config.fusion.k == 3
    assert config.fusion.rrf_k == 10
    assert config.fusion.weights == (0.25, 0.75)
    assert config.bm25.tokenizer.stemmer is None


def test_env_override_of_unknown_key_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'store\.prot'"):
        load_config(None, environ={"LANGCHAIN_HYBRID_STORE__PROT": "1"})


def test_config_file_from_environment(tmp_path: Path) -> None:
    path = tmp_path / "hybrid.yaml"
    path.write_text("fusion:\n  k: 9\n")
    assert load_config(None, environ={"LANGCHAIN_HYBRID_CONFIG": str(path)}).fusion.k == 9


def test_env_overrides_parse_yaml_scalars() -> None:
    assert env_overrides({"LANGCHAIN_HYBRID_STORE__SSL": "true"}) == {"store": {"ssl": True}}
    with pytest.raises(ConfigError):
        env_overrides({"LANGCHAIN_HYBRID_STORE____PORT": "1"})


def test_secrets_are_masked_in_repr_and_dumps() -> None:
    config = load_config(
        {"store": {"token": "s3cret", "headers": {"X-Chroma-Token": "hdr-secret"}}}, environ={}
    )
    assert "s3cret" not in repr(config)
    assert "hdr-secret" not in repr(config)
    assert "s3cret" not in config.model_dump_json()
    assert config.store.token is not None
    assert config.store.token.get_secret_value() == "s3cret"
    again = load_config(config, environ={})
    assert again.store.token is not None
    assert again.store.token.get_secret_value() == "s3cret"


def test_bm25_path_defaults_beside_chroma() -> None:
    config = load_config({"store": {"path": "/data/idx", "collection": "kb"}}, environ={})
    assert config.bm25_path() == Path("/data/idx/bm25/kb")
    http = load_config({"store": {"mode": "http"}}, environ={})
    assert http.bm25_path() is None


def test_make_embedding_default_is_minilm() -> None:
    embedding = make_embedding(load_config({"embedding": {"batch_size": 8}}, environ={}).embedding)
    assert isinstance(embedding, MiniLMEmbeddings)
    assert embedding.batch_size == 8


def test_missing_provider_package_is_a_clear_error() -> None:
    settings = load_config({"embedding": {"provider": "ollama"}}, environ={}).embedding
    with pytest.raises(ConfigError, match=r"pip install langchain-ollama"):
        make_embedding(settings)


def test_from_config_builds_a_working_retriever(tmp_path: Path) -> None:
    path = tmp_path / "hybrid.yaml"
    path.write_text(
        f"store:\n  path: {tmp_path / 'idx'}\n  collection: cfg\n"
        "fusion:\n  k: 2\n  weights: [0.7, 0.3]\n  method: dbsf\n"
        "bm25:\n  k1: 1.2\n  b: 0.75\n"
    )
    retriever = HybridRetriever.from_config(path, embedding=HashEmbeddings())
    assert (retriever.k, retriever.weights, retriever.fusion) == (2, (0.7, 0.3), "dbsf")
    assert retriever.bm25.params.k1 == 1.2
    retriever.add_documents(
        [Document(page_content=t) for t in ("red apples", "green pears", "yellow bananas")]
    )
    assert len(retriever.invoke("apples")) == 2
    assert (tmp_path / "idx" / "bm25" / "cfg" / "manifest.json").is_file()
    override = HybridRetriever.from_config(path, embedding=HashEmbeddings(), k=1)
    assert len(override.invoke("apples")) == 1


@pytest.mark.parametrize("bm25_path", ["/etc/hybrid-bm25", "idx/../elsewhere", "idx/../../tmp/x"])
def test_bm25_path_may_not_escape_the_store(tmp_path: Path, bm25_path: str) -> None:
    store = str(tmp_path / "idx")
    path = bm25_path.replace("idx", store) if bm25_path.startswith("idx") else bm25_path
    with pytest.raises(ConfigError, match=r"outside store\.path"):
        load_config({"store": {"path": store}, "bm25": {"path": path}}, environ={})
    allowed = load_config(
        {"store": {"path": store}, "bm25": {"path": path, "allow_outside_store": True}},
        environ={},
    )
    assert allowed.bm25_path() == Path(path)


def test_bm25_path_inside_the_store_is_fine(tmp_path: Path) -> None:
    store = tmp_path / "idx"
    config = load_config(
        {"store": {"path": str(store)}, "bm25": {"path": str(store / "lex")}}, environ={}
    )
    assert config.bm25_path() == store / "lex"
