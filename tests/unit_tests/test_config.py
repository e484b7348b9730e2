"""Settings: YAML with line-numbered errors, env overrides, deep merge, from_config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    assert env_overrides({"LANGCHAIN_HYBRID_STORE__HOST": "true"}) == {"store": {"host": "true"}}
    with pytest.raises(ConfigError):
        env_overrides({"LANGCHAIN_HYBRID_STORE____PORT": "1"})


# ---------------------------------------------------------------------- text settings stay text
ENV = "LANGCHAIN_HYBRID_"
TOKEN = "tok-9Zq7Xv-31337"  # noqa: S105 - a test value, must never appear in an error
HEADER = "hdr-4Kp2Wm-80085"


def _secret(value: object) -> str | None:
    return None if value is None else value.get_secret_value()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "raw", "get", "expected"),
    [
        ("STORE__COLLECTION", "2024", lambda c: c.store.collection, "2024"),
        ("STORE__COLLECTION", "1e3", lambda c: c.store.collection, "1e3"),
        ("STORE__TOKEN", "12345", lambda c: _secret(c.store.token), "12345"),
        ("STORE__TOKEN", "0123", lambda c: _secret(c.store.token), "0123"),  # octal in YAML 1.1
        ("STORE__TOKEN", "[abc", lambda c: _secret(c.store.token), "[abc"),  # not YAML: no matter
        ("STORE__TOKEN", "null", lambda c: c.store.token, None),
        ("STORE__HOST", "on", lambda c: c.store.host, "on"),
        ("STORE__HOST", "2001:db8::1", lambda c: c.store.host, "2001:db8::1"),
        ("STORE__TENANT", "2024-01-01", lambda c: c.store.tenant, "2024-01-01"),  # not a date
        ("STORE__DATABASE", "1:20", lambda c: c.store.database, "1:20"),  # not sexagesimal 80
        ("STORE__PATH", "{a: 1}", lambda c: c.store.path, "{a: 1}"),
        ("STORE__MODE", "http", lambda c: c.store.mode, "http"),
        ("STORE__HNSW__SPACE", "l2", lambda c: c.store.hnsw.space, "l2"),
        (
            "STORE__HEADERS__X-API-KEY",
            "007",
            lambda c: {k: _secret(v) for k, v in c.store.headers.items()},
            {"x-api-key": "007"},
        ),
        ("BM25__PATH", "", lambda c: c.bm25.path, None),
        ("BM25__PATH", "2024", lambda c: c.bm25.path, "2024"),
        ("BM25__TOKENIZER__STEMMER", "null", lambda c: c.bm25.tokenizer.stemmer, None),
        ("BM25__TOKENIZER__STEMMER", "~", lambda c: c.bm25.tokenizer.stemmer, None),
        ("BM25__TOKENIZER__NORMALIZE", "NFC", lambda c: c.bm25.tokenizer.normalize, "NFC"),
        ("EMBEDDING__MODEL", "3", lambda c: c.embedding.model, "3"),
    ],
)
def test_env_values_of_text_settings_are_taken_verbatim(
    name: str, raw: str, get: Any, expected: object
) -> None:
    base = {"store": {"mode": "ephemeral", "path": "."}} if name.startswith("BM25__PATH") else {}
    assert get(load_config(base, environ={ENV + name: raw})) == expected


@pytest.mark.parametrize(
    ("name", "raw", "get", "expected"),
    [
        ("STORE__PORT", "8001", lambda c: c.store.port, 8001),
        ("STORE__SSL", "true", lambda c: c.store.ssl, True),
        ("STORE__BATCH_SIZE", "null", lambda c: c.store.batch_size, None),
        ("STORE__HNSW__EF_SEARCH", "64", lambda c: c.store.hnsw.ef_search, 64),
        ("FUSION__WEIGHTS", "[0.4, 0.6]", lambda c: c.fusion.weights, (0.4, 0.6)),
        ("FUSION__RRF_K", "10", lambda c: c.fusion.rrf_k, 10.0),
        ("CACHE__ENABLED", "false", lambda c: c.cache.enabled, False),
        ("CACHE__TTL_SECONDS", "", lambda c: c.cache.ttl_seconds, None),
        ("MONITORING__P95_THRESHOLD_MS", "250.5", lambda c: c.monitoring.p95_threshold_ms, 250.5),
        ("EMBEDDING__OPTIONS", "{a: 1, b: on}", lambda c: c.embedding.options, {"a": 1, "b": True}),
        # YAML lists and mappings keep their text where the models expect text
        (
            "BM25__TOKENIZER__STOPWORDS",
            "[on, yes, 1]",
            lambda c: c.bm25.tokenizer.stopwords,
            ("on", "yes", "1"),
        ),
        ("BM25__TOKENIZER__STOPWORDS", "english", lambda c: c.bm25.tokenizer.stopwords, "english"),
        (
            "STORE__HEADERS",
            "{X-Api-Key: 12345}",
            lambda c: {k: _secret(v) for k, v in c.store.headers.items()},
            {"X-Api-Key": "12345"},
        ),
        ("STORE__HNSW", "{space: ip, ef_search: 32}", lambda c: c.store.hnsw.space, "ip"),
    ],
)
def test_env_values_of_other_settings_are_parsed_as_yaml(
    name: str, raw: str, get: Any, expected: object
) -> None:
    value = get(load_config(None, environ={ENV + name: raw}))
    assert value == expected
    assert type(value) is type(expected)


def test_env_text_and_typed_values_together() -> None:
    environ = {
        "LANGCHAIN_HYBRID_STORE__TOKEN": "12345",
        "LANGCHAIN_HYBRID_STORE__COLLECTION": "2024",
        "LANGCHAIN_HYBRID_STORE__HOST": "on",
        "LANGCHAIN_HYBRID_STORE__PORT": "8001",
        "LANGCHAIN_HYBRID_FUSION__WEIGHTS": "[0.4, 0.6]",
        "LANGCHAIN_HYBRID_CACHE__ENABLED": "false",
        "LANGCHAIN_HYBRID_STORE__HNSW__SPACE": "ip",
    }
    config = load_config(environ=environ)
    assert config.store.token is not None
    assert config.store.token.get_secret_value() == "12345"
    assert config.store.collection == "2024"
    assert config.store.host == "on"
    assert config.store.port == 8001
    assert type(config.store.port) is int
    assert config.fusion.weights == (0.4, 0.6)
    assert isinstance(config.fusion.weights, tuple)
    assert config.cache.enabled is False
    assert config.store.hnsw.space == "ip"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"STORE__PORT": "abc"}, "environment LANGCHAIN_HYBRID_STORE__PORT: store.port: "),
        ({"STORE__PORT": "0"}, "environment LANGCHAIN_HYBRID_STORE__PORT: store.port: "),
        ({"STORE__PORT": ""}, "environment LANGCHAIN_HYBRID_STORE__PORT: store.port: "),
        (
            {"STORE__HNSW__SPACE": "cosin"},
            "environment LANGCHAIN_HYBRID_STORE__HNSW__SPACE: store.hnsw.space: ",
        ),
        (
            {"STORE__HNSW": "{space: cosin}"},
            "environment LANGCHAIN_HYBRID_STORE__HNSW: store.hnsw.space: ",
        ),
        ({"FUSION__WEIGHTS": "[1, 2, 3]"}, "environment LANGCHAIN_HYBRID_FUSION__WEIGHTS: "),
        ({"STORE__COLLECTION": "bad name!"}, "environment LANGCHAIN_HYBRID_STORE__COLLECTION: "),
        (
            {"STORE__PROT": "1"},
            "environment LANGCHAIN_HYBRID_STORE__PROT: unknown key 'store.prot'",
        ),
        ({"STORE__HEADERS": "{X-Key: [1]}"}, "environment LANGCHAIN_HYBRID_STORE__HEADERS: "),
        (
            {"STORE__HEADERS": f"{{X-Key: [{HEADER}}}"},  # not YAML
            "environment LANGCHAIN_HYBRID_STORE__HEADERS: the value is not valid YAML",
        ),
        (
            {"STORE__PORT": "1", "STORE__PORT__X": "1"},
            "LANGCHAIN_HYBRID_STORE__PORT and LANGCHAIN_HYBRID_STORE__PORT__X both set store.port",
        ),
    ],
)
def test_env_errors_name_the_variable_never_a_secret(
    environ: dict[str, str], expected: str
) -> None:
    full = {ENV + k: v for k, v in environ.items()} | {
        "LANGCHAIN_HYBRID_STORE__TOKEN": TOKEN,
        "LANGCHAIN_HYBRID_STORE__HEADERS__X-API-KEY": HEADER,
    }
    if "STORE__HEADERS" in environ:
        del full["LANGCHAIN_HYBRID_STORE__HEADERS__X-API-KEY"]  # would clash with it
    with pytest.raises(ConfigError) as info:
        load_config(None, environ=full)
    message = str(info.value)
    assert expected in message, message
    assert "defaults" not in message
    assert TOKEN not in message
    assert HEADER not in message


def test_errors_name_each_source(tmp_path: Path) -> None:
    path = tmp_path / "hybrid.yaml"
    path.write_text("store:\n  port: 0\n  host: filehost\nfusion:\n  k: 3\n  fetch_k: 0\n")
    environ = {"LANGCHAIN_HYBRID_FUSION__K": "0", "LANGCHAIN_HYBRID_STORE__TOKEN": TOKEN}
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=environ, overrides={"cache": {"max_entries": 0}})
    message = str(info.value)
    assert f"{path}:2: store.port: " in message
    assert f"{path}:6: fusion.fetch_k: " in message
    assert "environment LANGCHAIN_HYBRID_FUSION__K: fusion.k: " in message
    assert "overrides: cache.max_entries: " in message
    assert TOKEN not in message


def test_a_check_across_keys_names_the_environment() -> None:
    environ = {"LANGCHAIN_HYBRID_BM25__PATH": "/srv/elsewhere"}
    with pytest.raises(ConfigError, match=r"environment: \(top level\): .*outside store\.path"):
        load_config(None, environ=environ)


@pytest.mark.parametrize(
    ("text", "get", "expected"),
    [
        ("store:\n  collection: 2024\n", lambda c: c.store.collection, "2024"),
        ("store:\n  collection: 2024.10\n", lambda c: c.store.collection, "2024.10"),
        ("store:\n  host: on\n", lambda c: c.store.host, "on"),
        ("store:\n  token: 0123\n", lambda c: _secret(c.store.token), "0123"),
        ("store:\n  token: null\n", lambda c: c.store.token, None),
        ("store:\n  tenant: 2024-01-01\n", lambda c: c.store.tenant, "2024-01-01"),
        (
            "store:\n  mode: http\n  path: &p 1_000\nbm25:\n  path: *p\n",
            lambda c: c.bm25.path,
            "1_000",
        ),
        (
            "store:\n  headers: {X-Api-Key: 12345}\n",
            lambda c: _secret(c.store.headers["X-Api-Key"]),
            "12345",
        ),
        (
            "bm25:\n  tokenizer:\n    stopwords: [on, 'off', yes]\n",
            lambda c: c.bm25.tokenizer.stopwords,
            ("on", "off", "yes"),
        ),
        ("embedding:\n  model: 3\n", lambda c: c.embedding.model, "3"),
        # numbers and booleans elsewhere keep their types
        ("store:\n  port: 8001\n", lambda c: c.store.port, 8001),
        ("store:\n  ssl: yes\n", lambda c: c.store.ssl, True),
        ("fusion:\n  weights: [1, 3]\n", lambda c: c.fusion.weights, (1.0, 3.0)),
        ("embedding:\n  options: {n: 1}\n", lambda c: c.embedding.options, {"n": 1}),
    ],
)
def test_yaml_file_text_settings_keep_the_text_as_written(
    tmp_path: Path, text: str, get: Any, expected: object
) -> None:
    path = tmp_path / "hybrid.yaml"
    path.write_text(text)
    value = get(load_config(path, environ={}))
    assert value == expected
    assert type(value) is type(expected)


def test_yaml_file_null_text_setting_is_still_an_error(tmp_path: Path) -> None:
    path = tmp_path / "hybrid.yaml"
    path.write_text("store:\n  collection: null\n")
    with pytest.raises(ConfigError, match=rf"{path}:2: store\.collection: "):
        load_config(path, environ={})


def test_dict_sources_are_validated_as_given() -> None:
    # Python callers pass typed values: a number is not a collection name there
    with pytest.raises(ConfigError, match=r"config dict: store\.collection: "):
        load_config({"store": {"collection": 2024}}, environ={})


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


def test_group_by_and_rerank_k_settings() -> None:
    environ = {
        "LANGCHAIN_HYBRID_FUSION__GROUP_BY": "2024",
        "LANGCHAIN_HYBRID_FUSION__RERANK_K": "8",
    }
    config = load_config({"fusion": {"group_by": "source"}}, environ=environ)
    assert (config.fusion.group_by, config.fusion.rerank_k) == ("2024", 8)  # a key, kept as text
    fields = config.retriever_fields()
    assert (fields["group_by"], fields["rerank_k"]) == ("2024", 8)
    with pytest.raises(ConfigError, match=r"fusion\.rerank_k"):
        load_config({"fusion": {"rerank_k": 0}}, environ={})
    with pytest.raises(ConfigError, match=r"fusion\.group_by"):
        load_config({"fusion": {"group_by": ""}}, environ={})


def test_a_validators_message_names_the_value_once() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({"fusion": {"rrf_k": float("nan")}, "cache": {"max_entries": -1}})
    text = str(caught.value)
    assert "fusion.rrf_k: rrf_k must be a finite number >= 0" in text
    assert text.count("got nan") == 1
    assert "Value error" not in text
    assert "cache.max_entries: Input should be greater than 0 (got -1)" in text
