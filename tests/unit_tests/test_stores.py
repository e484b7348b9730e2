"""ChromaStore on real in-process Chroma: HNSW config, guards, batched writes, generation, auth.

Everything runs against chromadb itself (ephemeral or persistent under ``tmp_path``); the HTTP
tests talk to a tiny recording server on a free loopback port, never to the network.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import chromadb
import pytest
from chromadb.config import Settings
from helpers import HashEmbeddings
from langchain_core.documents import Document

from langchain_hybrid import HybridRetriever
from langchain_hybrid.errors import (
    BatchWriteError,
    CollectionConfigError,
    EmbeddingMismatchError,
    StoreError,
    StoreUnavailableError,
)
from langchain_hybrid.index import HybridIndex
from langchain_hybrid.stores import ChromaStore, HNSWConfig, StoreConfig

IDS = ["d0", "d1", "d2", "d3", "d4"]
TEXTS = [
    "routers need firmware updates",
    "espresso wants a fine grind",
    "prune roses in late winter",
    "python generators yield lazily",
    "compost feeds the garden soil",
]
TOKEN = "s3cret-token"  # noqa: S105 - a test value
HEADER = "hdr-value-abc"


def _ephemeral(name: str, **settings: Any) -> ChromaStore:
    return ChromaStore(StoreConfig(mode="ephemeral", collection=name, **settings))


def _persistent(path: Path, name: str, **settings: Any) -> ChromaStore:
    return ChromaStore(StoreConfig(mode="persistent", path=str(path), collection=name, **settings))


def _hnsw(store: ChromaStore) -> dict[str, Any]:
    """The HNSW settings Chroma holds for the store's collection (persisted state)."""
    collection = store.client.get_collection(store.config.chroma_collection)
    return dict(collection.configuration_json["hnsw"])


def _vectors(texts: list[str], dim: int = 16) -> list[list[float]]:
    return HashEmbeddings(dim).embed_documents(texts)


def _fill(store: ChromaStore) -> list[str]:
    """Upsert the five documents, each with metadata ``{"n": position}``."""
    return store.upsert(IDS, TEXTS, _vectors(TEXTS), [{"n": i} for i in range(len(IDS))])


# ---------------------------------------------------------------------- HNSW configuration
def test_default_hnsw_settings_reach_the_collection(collection_name: str) -> None:
    hnsw = _hnsw(_ephemeral(collection_name))
    assert hnsw["space"] == "cosine"
    assert hnsw["ef_construction"] == 200
    assert hnsw["ef_search"] == 200
    assert hnsw["max_neighbors"] == 16


def test_custom_hnsw_settings_reach_the_collection(collection_name: str) -> None:
    custom = HNSWConfig(space="ip", ef_construction=64, ef_search=32, max_neighbors=8)
    hnsw = _hnsw(_ephemeral(collection_name, hnsw=custom))
    assert {key: hnsw[key] for key in custom.model_dump()} == custom.model_dump()


def test_short_collection_names_get_a_suffix(tmp_path: Path) -> None:
    store = _persistent(tmp_path, "kb")
    assert store.config.chroma_collection == "kb-hybrid"
    assert store.collection.name == "kb-hybrid"


@pytest.mark.parametrize(
    ("setting", "changed"),
    [("space", HNSWConfig(space="l2")), ("ef_construction", HNSWConfig(ef_construction=100))],
)
def test_creation_only_setting_change_is_refused(
    tmp_path: Path, collection_name: str, setting: str, changed: HNSWConfig
) -> None:
    _fill(_persistent(tmp_path, collection_name))
    with pytest.raises(CollectionConfigError, match=rf"\b{setting}\b") as info:
        _persistent(tmp_path, collection_name, hnsw=changed)
    assert "cannot change after creation" in str(info.value)
    store = _persistent(tmp_path, collection_name)
    assert store.count() == len(IDS)
    assert _hnsw(store)[setting] == getattr(HNSWConfig(), setting)


def test_changeable_settings_are_applied_and_persisted(
    tmp_path: Path, collection_name: str
) -> None:
    first = _persistent(tmp_path, collection_name)
    _fill(first)
    first.query(_vectors(["query"])[0], 2)  # the HNSW index is now loaded in this process
    store = _persistent(tmp_path, collection_name, hnsw=HNSWConfig(ef_search=64, max_neighbors=32))
    handle = store.collection.configuration_json["hnsw"]  # the store reopened itself
    assert (handle["ef_search"], handle["max_neighbors"]) == (64, 32)
    store.reopen()  # a new client: what Chroma persisted, not the handle's cached view
    hnsw = _hnsw(store)
    assert (hnsw["ef_search"], hnsw["max_neighbors"]) == (64, 32)
    assert (hnsw["space"], hnsw["ef_construction"]) == ("cosine", 200)
    assert store.count() == len(IDS)


def _legacy_collection(path: Path, name: str) -> None:
    """A collection made the pre-1.0 way: HNSW settings as ``hnsw:*`` metadata keys."""
    client = chromadb.PersistentClient(
        path=str(path.absolute()), settings=Settings(anonymized_telemetry=False)
    )
    collection = client.create_collection(name, metadata={"hnsw:space": "l2"})
    # Chroma 1.5.9 maps the legacy key onto the configuration; the rest are Chroma's defaults
    hnsw = collection.configuration_json["hnsw"]
    assert (hnsw["space"], hnsw["ef_construction"]) == ("l2", 100)


def test_legacy_metadata_space_is_guarded(tmp_path: Path, collection_name: str) -> None:
    _legacy_collection(tmp_path, collection_name)
    with pytest.raises(CollectionConfigError, match=r"space='l2'"):
        _persistent(tmp_path, collection_name)


def test_legacy_collection_opens_with_its_own_settings(
    tmp_path: Path, collection_name: str
) -> None:
    _legacy_collection(tmp_path, collection_name)
    # space alone is not enough: the legacy collection was built with Chroma's ef_construction
    with pytest.raises(CollectionConfigError, match=r"ef_construction=100"):
        _persistent(tmp_path, collection_name, hnsw=HNSWConfig(space="l2"))
    legacy = HNSWConfig(space="l2", ef_construction=100)
    store = _persistent(tmp_path, collection_name, hnsw=legacy)
    _fill(store)
    store.begin_write()  # rewrites the metadata: the legacy key must not be lost as a guard
    store.reopen()
    assert _hnsw(store)["space"] == "l2"
    assert store.count() == len(IDS)
    with pytest.raises(CollectionConfigError, match=r"\bspace\b"):
        _persistent(tmp_path, collection_name)


# ---------------------------------------------------------------------- batched writes
def test_batched_upsert_writes_everything(collection_name: str) -> None:
    store = _ephemeral(collection_name, batch_size=2)
    assert store.batch_size == 2
    assert _fill(store) == IDS
    assert store.count() == len(IDS)
    assert sorted(d.id for d in store.get(IDS)) == IDS


def test_a_failed_batch_reports_written_and_unwritten_ids(collection_name: str) -> None:
    store = _ephemeral(collection_name, batch_size=2)
    # batches [d0, d1], [d2, d3], [d4]: Chroma fixes the dimension at the first write, so the
    # second batch (another dimension) fails for real and the third is never attempted
    embeddings = _vectors(TEXTS[:2], dim=16) + _vectors(TEXTS[2:], dim=8)
    with pytest.raises(BatchWriteError) as info:
        store.upsert(IDS, TEXTS, embeddings, [None] * len(IDS))
    error = info.value
    assert error.written_ids == ["d0", "d1"]
    assert error.failed_ids == ["d2", "d3", "d4"]
    assert "2 of 5" in str(error)
    assert "Not written: 'd2', 'd3', 'd4'" in str(error)
    assert isinstance(error.__cause__, StoreError)
    assert store.count() == 2
    assert [d.id for d in store.get(IDS)] == ["d0", "d1"]


def test_retriever_write_with_another_dimension_changes_neither_leg(
    collection_name: str,
) -> None:
    embedding = HashEmbeddings(dim=32)
    documents = [Document(id=i, page_content=t) for i, t in zip(IDS, TEXTS, strict=True)]
    retriever = HybridRetriever.from_documents(
        documents[:3], embedding=embedding, collection_name=collection_name, k=3
    )
    before = [d.id for d in retriever.invoke("espresso grind")]
    generation = retriever.store.metadata_generation()
    retriever.embedding = HashEmbeddings(dim=8)  # a different model on the same index
    with pytest.raises(BatchWriteError) as info:
        retriever.add_documents(documents[3:])
    assert info.value.written_ids == []
    assert info.value.failed_ids == ["d3", "d4"]
    retriever.embedding = embedding
    assert len(retriever.bm25) == 3
    assert retriever.store.count() == 3
    assert sorted(retriever.bm25.ids) == ["d0", "d1", "d2"]
    assert [d.id for d in retriever.invoke("espresso grind")] == before
    assert retriever.invoke("compost garden soil", weights=(1.0, 0.0)) == []
    assert retriever.store.metadata_generation() % 2 == 0  # the failed write was closed
    assert retriever.store.metadata_generation() > generation


# ---------------------------------------------------------------------- reads and replaces
def test_upsert_replaces_metadata_and_text(collection_name: str) -> None:
    store = _ephemeral(collection_name)
    vector = _vectors(["x"])
    store.upsert(["a1"], ["old text"], vector, [{"keep": 1, "drop": "me"}])
    store.upsert(["a1"], ["new text"], vector, [{"keep": 2, "added": True}])
    [doc] = store.get(["a1"])
    assert doc.text == "new text"
    assert doc.metadata == {"keep": 2, "added": True}
    store.upsert(["a1"], ["bare text"], vector, [None])
    assert store.get(["a1"])[0].metadata == {}


def test_delete_and_get_ignore_unknown_ids(collection_name: str) -> None:
    store = _ephemeral(collection_name)
    _fill(store)
    store.delete(["nope-1", "nope-2"])
    assert store.count() == len(IDS)
    store.delete(["d1", "nope-3"])
    assert store.count() == len(IDS) - 1
    found = store.get(["d0", "d1", "missing"])
    assert [d.id for d in found] == ["d0"]
    assert found[0].text == TEXTS[0]
    assert found[0].metadata == {"n": 0}


@pytest.mark.parametrize("page_size", [None, 1, 3, 10])
def test_iter_all_pages_through_everything_once(
    collection_name: str, page_size: int | None
) -> None:
    store = _ephemeral(collection_name, batch_size=2)
    _fill(store)
    pages = list(store.iter_all(page_size))
    expected_size = page_size or 2
    assert all(0 < len(page) <= expected_size for page in pages)
    docs = [doc for page in pages for doc in page]
    assert sorted(d.id for d in docs) == IDS
    assert {d.id: (d.text, d.metadata) for d in docs} == {
        i: (t, {"n": n}) for n, (i, t) in enumerate(zip(IDS, TEXTS, strict=True))
    }


# ---------------------------------------------------------------------- generation
def test_generation_is_odd_during_a_write_and_survives_reopen(
    tmp_path: Path, collection_name: str
) -> None:
    store = _persistent(tmp_path, collection_name)
    assert store.metadata_generation() == 0
    assert store.begin_write() == 1
    assert store.metadata_generation() == 1
    assert store.end_write() == 2
    assert store.begin_write() == 3
    assert store.begin_write() == 5  # the writer of 3 died mid-write: still odd, but newer
    store.reopen()
    assert store.metadata_generation() == 5
    assert _persistent(tmp_path, collection_name).end_write() == 6
    store.reopen()
    assert store.metadata_generation() == 6
    # an end past a generation recorded elsewhere (an embedded writer's intent marker, 9)
    assert store.end_write(at_least=9) == 10
    assert store.begin_write() == 11
    assert store.end_write(at_least=3) == 12  # an older value changes nothing


# ---------------------------------------------------------------------- HTTP auth headers
class _Recorder(BaseHTTPRequestHandler):
    """Records every request's headers; answers heartbeats with ``heartbeat_status``."""

    heartbeat_status: HTTPStatus
    seen: list[tuple[str, dict[str, str]]]

    def do_GET(self) -> None:
        self.seen.append((self.path, dict(self.headers)))
        if self.path.endswith("/heartbeat") and self.heartbeat_status == HTTPStatus.OK:
            self._reply(HTTPStatus.OK, {"nanosecond heartbeat": 1})
        elif self.path.endswith("/heartbeat"):
            self._reply(self.heartbeat_status, {"error": "Unauthorized"})
        else:
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "not a Chroma server"})

    def do_POST(self) -> None:
        self.do_GET()

    def _reply(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Keep the test output quiet."""


@contextmanager
def _recording_server(
    heartbeat_status: HTTPStatus,
) -> Iterator[tuple[int, list[tuple[str, dict[str, str]]]]]:
    seen: list[tuple[str, dict[str, str]]] = []
    handler = type("Handler", (_Recorder,), {"heartbeat_status": heartbeat_status, "seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize(
    ("heartbeat_status", "paths"),
    [
        (HTTPStatus.UNAUTHORIZED, ["/api/v2/heartbeat"]),  # our timed probe is refused
        (HTTPStatus.OK, ["/api/v2/heartbeat", "/api/v2/auth/identity"]),  # chromadb's client too
    ],
)
def test_http_mode_sends_token_and_headers(
    collection_name: str, heartbeat_status: HTTPStatus, paths: list[str]
) -> None:
    with _recording_server(heartbeat_status) as (port, seen):
        config = StoreConfig(
            mode="http",
            host="127.0.0.1",
            port=port,
            token=TOKEN,
            headers={"X-Custom": HEADER},
            collection=collection_name,
            timeout_seconds=2,
        )
        with pytest.raises(StoreUnavailableError) as info:
            ChromaStore(config)
    assert [path for path, _ in seen] == paths
    for _, headers in seen:
        assert headers["Authorization"] == f"Bearer {TOKEN}"  # the token, as a bearer token
        assert headers["X-Custom"] == HEADER
    message = str(info.value)
    assert f"http://127.0.0.1:{port}" in message
    assert TOKEN not in message
    assert HEADER not in message


def test_repair_vectors_of_a_complete_index_changes_nothing(
    tmp_path: Path, collection_name: str
) -> None:
    store = _persistent(tmp_path, collection_name)
    _fill(store)
    generation = store.metadata_generation()
    assert store.repair_vectors(IDS) == []
    assert store.repair_vectors(IDS, rewrite=False) == []
    assert (store.count(), store.metadata_generation()) == (len(IDS), generation)
    assert store.repair_vectors([]) == []


# ---------------------------------------------------------------------- embedding model record
class _OtherModel(HashEmbeddings):
    """Another model: the same vectors' size, another model id."""

    model = "other-v1"


def _stored_record(path: Path, collection: str) -> str | None:
    store = ChromaStore(StoreConfig(path=str(path), collection=collection))
    return store.recorded_embedding()


def test_first_write_records_the_embedding_model(tmp_path: Path) -> None:
    retriever = HybridRetriever.from_documents(
        [Document(page_content="router reset steps")],
        HashEmbeddings(),
        persist_directory=tmp_path,
        collection_name="kb",
    )
    assert retriever.index.write_generation() == 2, (
        "recorded in the write's own modify: no extra step"
    )
    assert _stored_record(tmp_path, "kb") == "HashEmbeddings"
    assert retriever.store.collection.metadata["langchain_hybrid_generation"] == 2


def test_another_model_is_refused_unless_allowed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    HybridRetriever.from_documents(
        [Document(page_content="router reset steps", id="a")],
        HashEmbeddings(),
        persist_directory=tmp_path,
        collection_name="kb",
    )
    with pytest.raises(EmbeddingMismatchError) as caught:
        HybridRetriever.load(tmp_path, collection_name="kb", embedding=_OtherModel())
    assert (caught.value.recorded, caught.value.given) == ("HashEmbeddings", "_OtherModel/other-v1")
    assert isinstance(caught.value, ValueError)
    with pytest.raises(EmbeddingMismatchError):  # a write is refused the same way
        HybridRetriever.from_documents(
            [Document(page_content="more", id="b")],
            _OtherModel(),
            persist_directory=tmp_path,
            collection_name="kb",
        )
    with caplog.at_level("WARNING", logger="langchain_hybrid.embeddings"):
        retriever = HybridRetriever.load(
            tmp_path, collection_name="kb", embedding=_OtherModel(), allow_embedding_mismatch=True
        )
    assert "(overridden)" in caplog.text
    retriever.add_documents([Document(page_content="more", id="b")])
    assert retriever.store.count() == 2
    assert _stored_record(tmp_path, "kb") == "HashEmbeddings", "the override keeps the record"
    settings = {"store": {"path": str(tmp_path), "collection": "kb"}}
    with pytest.raises(EmbeddingMismatchError):
        HybridRetriever.from_config(settings, _OtherModel())
    allowed = {**settings, "embedding": {"allow_mismatch": True}}
    assert HybridRetriever.from_config(allowed, _OtherModel()).invoke("router", k=1)[0].id == "a"


def test_an_index_without_a_record_is_accepted_and_recorded_by_the_next_write(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An index written before models were recorded: assumed to be the given model's."""
    store = ChromaStore(StoreConfig(path=str(tmp_path), collection="kb"))
    index = HybridIndex.open(store, None)
    index.add(["a"], ["router reset steps"], HashEmbeddings().embed_documents(["x"]), [None])
    assert _stored_record(tmp_path, "kb") is None
    with caplog.at_level("INFO", logger="langchain_hybrid.stores"):
        retriever = HybridRetriever.load(tmp_path, collection_name="kb", embedding=_OtherModel())
    assert "records no embedding model" in caplog.text
    assert _stored_record(tmp_path, "kb") is None, "opening writes nothing"
    retriever.add_documents([Document(page_content="more", id="b")])
    assert _stored_record(tmp_path, "kb") == "_OtherModel/other-v1"
    with pytest.raises(EmbeddingMismatchError):
        HybridRetriever.load(tmp_path, collection_name="kb", embedding=HashEmbeddings())
