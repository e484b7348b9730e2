"""A real `chroma run` server that goes away, comes back, or never answers.

* Outage cycles: the server is stopped while threads query, then started again, several times.
  During an outage every query is answered by the BM25 leg (``metadata["degraded"] ==
  "vector"``) and none raises; writes raise :class:`StoreUnavailableError` (or
  :class:`BatchWriteError`) and change neither leg; after the restart queries recover by
  themselves, and every write that returned is there.
* ``timeout_seconds``: against a server that accepts TCP connections and never answers, opening
  the store, querying and writing end within about the timeout (degraded or a typed error).
* Secrets: a token and custom headers never reach a log record, an error message or a repr.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import chromadb
import pytest
from conftest import ChromaServer
from helpers import HashEmbeddings, report
from langchain_core.documents import Document

from langchain_hybrid import (
    BatchWriteError,
    HybridRetriever,
    HybridRetrieverError,
    StoreConfig,
    StoreUnavailableError,
)
from langchain_hybrid.config import load_config
from langchain_hybrid.stores import ChromaStore

pytestmark = pytest.mark.server

CYCLES = 4
QUERY_THREADS = 3
TIMEOUT = 1.0
WORDS = [f"w{i}" for i in range(100)]


def doc(doc_id: str, rng: random.Random) -> Document:
    words = " ".join(rng.sample(WORDS, 5))
    text = f"marker{doc_id.replace('-', '')} common {words}"  # "common": no query finds nothing
    return Document(id=doc_id, page_content=text, metadata={"kind": "test"})


def http_config(port: int, **kwargs: object) -> StoreConfig:
    return StoreConfig(mode="http", host="127.0.0.1", port=port, collection="kb-faults", **kwargs)


def legs(r: HybridRetriever) -> tuple[int, int, tuple[str, ...], tuple[str, ...]]:
    """BM25 state (size, generation, ids, texts): what a failed write must leave alone."""
    ids = tuple(sorted(r.bm25.ids))
    texts = tuple(h.text for h in r.bm25.get(ids) if h is not None)
    return len(r.bm25), r.bm25.generation, ids, texts


# ---------------------------------------------------------------------- outage cycles
@dataclass(frozen=True, slots=True)
class Answer:
    start: float
    end: float
    degraded: str | None
    error: str | None


class Traffic:
    """Threads that query without pause, with unique queries (no cache hits)."""

    def __init__(self, r: HybridRetriever) -> None:
        self.r = r
        self.answers: list[Answer] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(i,), name=f"traffic-{i}")
            for i in range(QUERY_THREADS)
        ]

    def _run(self, seed: int) -> None:
        rng = random.Random(seed)  # noqa: S311 - seeded test data, not crypto
        n = 0
        while not self.stop.is_set():
            n += 1
            query = f"markers{rng.randrange(20)} common unique{seed}x{n}"
            start = time.monotonic()
            degraded = error = None
            try:
                docs = self.r.invoke(query, k=3)
                degraded = next((d.metadata.get("degraded") for d in docs), None)
                if not docs:
                    error = "empty answer"
                elif not all(d.page_content.startswith("marker") for d in docs):
                    # degraded answers read their texts from the BM25 files, not from Chroma
                    error = "an answer without its text"
            except Exception as e:  # noqa: BLE001 - recorded and asserted on
                error = f"{type(e).__name__}: {e}"
            with self.lock:
                self.answers.append(Answer(start, time.monotonic(), degraded, error))
            time.sleep(0.005)

    def between(self, start: float, end: float) -> list[Answer]:
        with self.lock:
            return [a for a in self.answers if a.start >= start and a.end <= end]

    def wait_for(self, count: int, since: float, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.between(since, time.monotonic())) < count:
            assert time.monotonic() < deadline, "the query threads stalled"
            time.sleep(0.02)


@pytest.fixture
def traffic_retriever(chroma_server: ChromaServer, tmp_path: Path) -> HybridRetriever:
    rng = random.Random(0)  # noqa: S311 - seeded test data, not crypto
    return HybridRetriever.from_documents(
        [doc(f"s-{i}", rng) for i in range(20)],
        embedding=HashEmbeddings(),
        store_config=http_config(chroma_server.port, timeout_seconds=5),
        bm25_path=tmp_path / "bm25",
        refresh_interval_seconds=0.2,
    )


@dataclass
class Cycles:
    """The bookkeeping of the outage test."""

    r: HybridRetriever
    server: ChromaServer
    traffic: Traffic
    expected: dict[str, str]
    rng: random.Random
    recoveries: list[float] = field(default_factory=list)
    refused_writes: int = 0

    def write_while_up(self, cycle: int) -> None:
        added = [doc(f"a-{cycle}-{i}", self.rng) for i in range(3)]
        assert self.r.add_documents(added) == [d.id for d in added]
        self.expected.update({str(d.id): d.page_content for d in added})
        victim = self.rng.choice(sorted(self.expected))
        self.r.delete([victim])
        del self.expected[victim]

    def outage(self, cycle: int) -> list[Answer]:
        """Stop the server mid-traffic; writes must fail cleanly. Returns the outage's answers."""
        r = self.r
        self.server.stop()
        down = time.monotonic()
        self.traffic.wait_for(QUERY_THREADS * 3, since=down)
        before = legs(r)
        attempts = [
            lambda: r.add_documents([doc(f"lost-{cycle}", self.rng)]),
            lambda: r.add_documents([Document(id="s-0", page_content="overwritten")]),
            lambda: r.delete([next(iter(self.expected))]),
        ]
        for attempt in attempts:
            with pytest.raises((StoreUnavailableError, BatchWriteError)):
                attempt()
            self.refused_writes += 1
        assert legs(r) == before, "a failed write changed the BM25 leg"
        self.traffic.wait_for(QUERY_THREADS * 3, since=time.monotonic())
        return self.traffic.between(down, time.monotonic())

    def restart(self, cycle: int) -> None:
        """Start the server again; queries must recover with no help."""
        restart = time.monotonic()
        self.server.start()
        deadline = time.monotonic() + 30
        while True:
            docs = self.r.invoke(f"markers1 recovery{cycle}x{time.monotonic()}", k=3)
            if "degraded" not in docs[0].metadata:
                break
            assert time.monotonic() < deadline, "queries did not recover after the restart"
            time.sleep(0.05)
        self.recoveries.append(time.monotonic() - restart)


def test_outages_degrade_fail_writes_cleanly_and_recover(
    chroma_server: ChromaServer, traffic_retriever: HybridRetriever
) -> None:
    r = traffic_retriever
    expected = {d.id: d.page_content for d in r.get_by_ids([f"s-{i}" for i in range(20)])}
    run = Cycles(r, chroma_server, Traffic(r), expected, random.Random(1))  # noqa: S311 - seeded test data, not crypto
    for t in run.traffic.threads:
        t.start()
    try:
        for cycle in range(CYCLES):
            run.write_while_up(cycle)
            outage = run.outage(cycle)
            run.restart(cycle)
            errors = [a.error for a in outage if a.error]
            assert not errors, f"queries failed during outage {cycle}: {errors[:3]}"
            assert outage, "no query ran during the outage"
            assert all(a.degraded == "vector" for a in outage), {a.degraded for a in outage}
            # nothing half-applied: the store is exactly what the successful writes made it
            assert r.store.count() == len(r.bm25) == len(expected)
    finally:
        run.traffic.stop.set()
        for t in run.traffic.threads:
            t.join(timeout=60)

    answers = run.traffic.answers
    errors = [a.error for a in answers if a.error]
    assert not errors, errors[:3]
    r.refresh()
    chroma = {d.id: d.page_content for d in r.get_by_ids(sorted(expected))}
    assert chroma == expected, "a write that returned is missing after the outages"
    assert set(r.bm25.ids) == set(expected)
    assert r.store.count() == len(expected)
    for doc_id, text in expected.items():  # both legs find every document again
        hit = r.invoke(text, k=1)[0]
        assert (hit.id, hit.metadata.get("degraded")) == (doc_id, None)
    degraded = sum(a.degraded == "vector" for a in answers)
    report(
        f"\nserver faults: {CYCLES} outage cycles, {len(answers)} queries ({degraded} "
        f"degraded), {run.refused_writes} refused writes, recovery after restart "
        f"{[round(x, 2) for x in run.recoveries]} s"
    )


# ---------------------------------------------------------------------- timeouts
class BlackHole:
    """A loopback listener that accepts connections and never answers."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections.append(conn)

    def close(self) -> None:
        self.server.close()
        for conn in self.connections:  # a client still waiting gets EOF and gives up
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


class Proxy:
    """A TCP proxy to the real server that can start swallowing everything (a hung server).

    ``refuse``: bytes that, when a client's request holds them, drop its connection (a server
    that dies for one kind of call, e.g. ``b"/get "``).
    """

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.hang = threading.Event()
        self.refuse: bytes | None = None
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.sockets.append(client)
            if self.hang.is_set():
                continue  # accepted, never answered
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            self.sockets.append(upstream)
            for a, b, asks in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(a, b, asks), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, asks: bool) -> None:  # noqa: FBT001
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if asks and self.refuse is not None and self.refuse in data:
                    for s in (source, sink):
                        s.close()
                    return
                if not self.hang.is_set():  # once hung, bytes go nowhere
                    sink.sendall(data)

    def close(self) -> None:
        self.server.close()
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


def proxied(proxy: Proxy, tmp_path: Path, rng: random.Random, **fields: Any) -> HybridRetriever:
    """Ten documents in a retriever that reaches the server through ``proxy``, never refreshing."""
    return HybridRetriever.from_documents(
        [doc(f"s-{i}", rng) for i in range(10)],
        embedding=HashEmbeddings(),
        store_config=http_config(proxy.port, timeout_seconds=TIMEOUT),
        bm25_path=tmp_path / "bm25",
        refresh_interval_seconds=None,
        **fields,
    )


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()


def test_opening_a_store_on_a_server_that_never_answers_times_out(black_hole: BlackHole) -> None:
    outcome: dict[str, object] = {}

    def connect() -> None:
        start = time.monotonic()
        try:
            ChromaStore(http_config(black_hole.port, timeout_seconds=TIMEOUT))
            outcome["result"] = "connected"
        except HybridRetrieverError as e:
            outcome["result"] = type(e).__name__
        except Exception as e:  # noqa: BLE001
            outcome["result"] = f"untyped {type(e).__name__}: {e}"
        outcome["seconds"] = time.monotonic() - start

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout=TIMEOUT * 3 + 4)
    hung = thread.is_alive()
    black_hole.close()  # frees a hung client, so the thread ends
    thread.join(timeout=30)
    assert not hung, (
        f"ChromaStore() still waiting after {TIMEOUT * 3 + 4:.0f}s on a server that accepts and "
        f"never answers, with timeout_seconds={TIMEOUT} (outcome after the socket closed: "
        f"{outcome})"
    )
    assert outcome["result"] == "StoreUnavailableError", outcome
    assert float(outcome["seconds"]) <= TIMEOUT * 3 + 2  # type: ignore[arg-type]


def test_a_hung_server_costs_about_the_timeout(chroma_server: ChromaServer, tmp_path: Path) -> None:
    proxy = Proxy(chroma_server.port)
    try:
        rng = random.Random(2)  # noqa: S311 - seeded test data, not crypto
        r = proxied(proxy, tmp_path, rng)
        assert "degraded" not in r.invoke("markers1")[0].metadata
        proxy.hang.set()
        before = legs(r)
        timings = {}
        for name, call in (
            ("invoke", lambda: r.invoke("markers2 during the hang")),
            ("search_leg", lambda: r.search_leg("vector", "markers3")),
            ("add_documents", lambda: r.add_documents([doc("hung-1", rng)])),
            ("delete", lambda: r.delete(["s-1"])),
        ):
            start = time.monotonic()
            try:
                result = call()
            except HybridRetrieverError as e:
                result = type(e).__name__
            timings[name] = (round(time.monotonic() - start, 2), result)
        docs = timings["invoke"][1]
        assert isinstance(docs, list), timings
        assert docs, timings
        assert all(d.metadata["degraded"] == "vector" for d in docs)
        assert all(d.page_content.startswith("marker") for d in docs), "texts from BM25's files"
        assert timings["search_leg"][1] == "StoreUnavailableError", timings
        assert timings["add_documents"][1] in {"StoreUnavailableError", "BatchWriteError"}
        assert timings["delete"][1] in {"StoreUnavailableError", "BatchWriteError"}
        slow = {k: t for k, (t, _) in timings.items() if t > TIMEOUT * 2 + 1.5}
        assert not slow, f"calls took much longer than timeout_seconds={TIMEOUT}: {slow}"
        assert legs(r) == before
        report(f"\nhung server, timeout {TIMEOUT}s: {timings}")
    finally:
        proxy.close()


def test_vector_hits_whose_texts_chroma_cannot_give_degrade_the_answer(
    chroma_server: ChromaServer, tmp_path: Path
) -> None:
    """The vector leg answers, then Chroma fails the read of texts only it has (CI saw it).

    A document another client wrote is in Chroma but not yet in this process's BM25 index, so
    its text can only come from Chroma's ``get``; when that fails the answer is the documents
    whose texts could be read, marked as if the vector leg had failed, never an exception.
    """
    proxy = Proxy(chroma_server.port)
    try:
        rng = random.Random(4)  # noqa: S311 - seeded test data, not crypto
        r = proxied(proxy, tmp_path, rng, cache=False)
        foreign = doc("f-1", rng)
        client = chromadb.HttpClient(host="127.0.0.1", port=chroma_server.port)
        client.get_collection(r.store.config.chroma_collection).add(
            ids=[foreign.id],
            documents=[foreign.page_content],
            embeddings=[HashEmbeddings().embed_query(foreign.page_content)],
            metadatas=[foreign.metadata],
        )
        whole = r.invoke(foreign.page_content, k=4)
        assert "f-1" in [d.id for d in whole], "read from Chroma while it answers"
        assert all("degraded" not in d.metadata for d in whole)

        proxy.refuse = b"/get "
        docs = r.invoke(foreign.page_content, k=4)
        assert [d.id for d in docs] == [d.id for d in whole if d.id != "f-1"]
        assert all(d.metadata["degraded"] == "vector" for d in docs)
        stored = {h.id: h.text for h in r.bm25.get([d.id for d in docs]) if h is not None}
        assert {d.id: d.page_content for d in docs} == stored

        r.on_leg_error = "raise"
        with pytest.raises(StoreUnavailableError):
            r.invoke(foreign.page_content, k=4)
    finally:
        proxy.close()


# ---------------------------------------------------------------------- secrets
TOKEN = "tok-5ecr3t-7Q2xLw9"  # noqa: S105 - a test value
HEADER = "hdr-5ecr3t-Zp4Kq1"


def error_texts(call: Callable[[], object]) -> list[str]:
    """The message, repr and cause of the typed error ``call`` raises."""
    with pytest.raises(HybridRetrieverError) as raised:
        call()
    return [str(raised.value), repr(raised.value), str(raised.value.__cause__)]


def test_token_and_headers_never_reach_logs_errors_or_reprs(
    chroma_server: ChromaServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = http_config(chroma_server.port, token=TOKEN, headers={"X-Api-Key": HEADER})
    texts: list[str] = [repr(config), str(config), repr(config.model_dump())]
    full = load_config(
        {
            "store": {
                "mode": "http",
                "port": chroma_server.port,
                "token": TOKEN,
                "headers": {"X-Api-Key": HEADER},
            }
        },
        environ={},
    )
    texts += [repr(full), str(full), repr(full.model_dump()), full.model_dump_json()]
    rng = random.Random(3)  # noqa: S311 - seeded test data, not crypto
    caplog.set_level(logging.DEBUG)  # every logger: ours, chromadb, httpx, httpcore
    r = HybridRetriever.from_documents(
        [doc(f"s-{i}", rng) for i in range(5)],
        embedding=HashEmbeddings(),
        store_config=config,
        bm25_path=tmp_path / "bm25",
    )
    r.invoke("markers1")
    r.add_documents([doc("a-1", rng)])
    r.delete(["a-1"])
    texts += [repr(r), str(r), repr(r.store.config)]
    chroma_server.stop()
    r.invoke("markers2 outage")  # degraded: logs the failure
    for call in (
        lambda: r.add_documents([doc("a-2", rng)]),
        lambda: r.delete(["s-1"]),
        lambda: ChromaStore(config),
    ):
        texts += error_texts(call)
    chroma_server.start()
    r.invoke("markers3 back")
    records = [rec.getMessage() for rec in caplog.records]
    assert records  # the capture worked
    texts += records
    leaks = [t[:200] for t in texts if TOKEN in t or HEADER in t]
    assert not leaks, f"secrets leaked: {leaks}"
