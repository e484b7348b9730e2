"""Async callers never block the event loop, even when the Chroma server is slow.

A real `chroma run` server sits behind a loopback proxy that holds every answer for
``DELAY`` seconds. While ``aadd_documents``, ``ainvoke`` (whose hydration must read a text from
Chroma) and ``adelete`` wait on it, a ticker task on the same loop keeps running: the longest gap
between its ticks stays far below the delay that each call visibly paid.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import chromadb
import pytest
from conftest import ChromaServer
from helpers import HashEmbeddings
from langchain_core.documents import Document

from langchain_hybrid import ChromaStore, HybridRetriever, StoreConfig

pytestmark = pytest.mark.server

DELAY = 1.0  # seconds the proxy holds each answer of the server (a stall of half is a failure)
TICK = 0.005


class SlowProxy:
    """Forwards loopback TCP connections to ``port``, delaying each chunk the server sends."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(client, server, 0.0), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, DELAY), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, delay: float) -> None:
        with contextlib.suppress(OSError), source, sink:
            while data := source.recv(65536):
                time.sleep(delay)
                sink.sendall(data)

    def close(self) -> None:
        self.closed.set()
        self.listener.close()


@pytest.fixture
def slow_proxy(chroma_server: ChromaServer) -> Iterator[SlowProxy]:
    proxy = SlowProxy(chroma_server.port)
    try:
        yield proxy
    finally:
        proxy.close()


async def _longest_stall(call: Callable[[], Awaitable[Any]]) -> tuple[float, float, Any]:
    """(longest gap between ticks of a task on the same loop, the call's duration, result)."""
    ticks: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            ticks.append(time.monotonic())
            await asyncio.sleep(TICK)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(TICK * 2)
    started = time.monotonic()
    try:
        result = await call()
    finally:
        took = time.monotonic() - started
        stop.set()
        await task
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    return max(gaps), took, result


async def test_async_reads_and_writes_leave_the_loop_free(
    chroma_server: ChromaServer, slow_proxy: SlowProxy, collection_name: str
) -> None:
    emb = HashEmbeddings()
    config = StoreConfig(
        mode="http", host="127.0.0.1", port=slow_proxy.port, collection=collection_name
    )
    retriever = await asyncio.to_thread(
        HybridRetriever.from_store,
        ChromaStore(config),
        emb,
        cache=False,
        refresh_interval_seconds=None,
    )
    docs = [
        Document(id="r1", page_content="router error E-4471 after a firmware update"),
        Document(id="c1", page_content="espresso grind size and pressure"),
    ]
    stall, took, ids = await _longest_stall(lambda: retriever.aadd_documents(docs))
    assert ids == ["r1", "c1"]
    assert took >= DELAY, "the write went through the slow server"
    assert stall < DELAY / 2, f"the loop stalled {stall:.3f} s during aadd_documents"

    # a document written by another client: the vector leg finds it, the BM25 leg's copy has no
    # text for it, so hydration reads it from Chroma (through the slow proxy)
    direct = chromadb.HttpClient(host="127.0.0.1", port=chroma_server.port)
    text = "quantum lattice thermostat calibration"
    direct.get_collection(config.chroma_collection).add(
        ids=["foreign"], documents=[text], embeddings=[emb.embed_query(text)]
    )
    stall, took, hits = await _longest_stall(
        lambda: retriever.ainvoke("quantum lattice thermostat calibration", k=1)
    )
    assert [(h.id, h.page_content) for h in hits] == [("foreign", text)]
    assert took >= DELAY
    assert stall < DELAY / 2, f"the loop stalled {stall:.3f} s during ainvoke"

    stall, took, _ = await _longest_stall(lambda: retriever.adelete(["r1"]))
    assert took >= DELAY
    assert stall < DELAY / 2, f"the loop stalled {stall:.3f} s during adelete"
    assert "r1" not in retriever.bm25
    assert [d.id for d in await asyncio.to_thread(retriever.get_by_ids, ["r1", "c1"])] == ["c1"]
