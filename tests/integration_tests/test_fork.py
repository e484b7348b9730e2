"""A process that forks after opening an index (gunicorn --preload, multiprocessing's fork).

Chroma's embedded client hangs for good in a forked child at its first call, even through a
new client on the same path. The child must get :class:`ForkedProcessError` at once (it says to
open the index in the child), a child that opens the index itself must work, the parent's
writer lock must stay the parent's, and an HTTP store reconnects in the child.

Every child runs under a timeout: a hang kills the child and fails the test instead of
blocking CI.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import ChromaServer
from helpers import HashEmbeddings, hold_writer_lock
from langchain_core.documents import Document

from langchain_hybrid import (
    ForkedProcessError,
    HybridRetriever,
    HybridRetrieverError,
    StoreConfig,
    WriterLockError,
)
from langchain_hybrid._locking import (
    acquire_writer_lock,
    holds_writer_lock,
    release_writer_lock,
    writer_lock_free,
)

CHILD_TIMEOUT = 60.0  # seconds; a healthy child answers in about one

# Python 3.12+ warns on forking a multi-threaded process: exactly the situation under test.
pytestmark = pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded, use of fork:DeprecationWarning"
)

DOCS = [
    Document(id="net-1", page_content="The NX-220 router shows error E-4471", metadata={"n": 1}),
    Document(id="net-2", page_content="Reset the router by holding the button", metadata={"n": 2}),
    Document(id="cof-1", page_content="Espresso needs a fine grind", metadata={"n": 3}),
]


def in_forked_child(body: Callable[[], Any], timeout: float = CHILD_TIMEOUT) -> Any:
    """Run ``body`` in a child made by ``os.fork()``; return what it returned (JSON) or raise.

    The child reports ``{"value": ...}`` or ``{"error": type name, "message": ...}`` through a
    pipe. A child still running after ``timeout`` seconds is killed and the test fails.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        os.close(read_end)
        try:
            out: dict[str, Any] = {"value": body()}
        except BaseException as e:  # noqa: BLE001 - everything is reported to the parent
            out = {"error": type(e).__name__, "message": str(e), "trace": traceback.format_exc()}
        with os.fdopen(write_end, "w", encoding="utf-8") as pipe:
            json.dump(out, pipe)
        os._exit(0)
    os.close(write_end)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read_end)
            pytest.fail(f"the forked child hung for {timeout:.0f} s")
        time.sleep(0.02)
    with os.fdopen(read_end, encoding="utf-8") as pipe:
        text = pipe.read()
    assert os.WIFEXITED(status), status
    assert text, "the child reported nothing"
    return json.loads(text)


def build(tmp_path: Path) -> HybridRetriever:
    return HybridRetriever.from_documents(
        DOCS, embedding=HashEmbeddings(), persist_directory=tmp_path / "index", collection_name="kb"
    )


def load(tmp_path: Path) -> HybridRetriever:
    return HybridRetriever.load(
        tmp_path / "index", collection_name="kb", embedding=HashEmbeddings()
    )


def test_embedded_index_used_in_a_forked_child_raises_a_typed_error(tmp_path: Path) -> None:
    retriever = build(tmp_path)
    expected = [d.id for d in retriever.invoke("router error", k=2)]

    def call(fn: Callable[[], object]) -> str:
        try:
            fn()
        except HybridRetrieverError as e:
            return f"{type(e).__name__}: {e}"
        return "returned"

    def child() -> dict[str, str]:
        return {
            # a query the parent did not ask (a cached answer needs no store)
            "invoke": call(lambda: retriever.invoke("espresso grind", k=2)),
            "count": call(retriever.store.count),
            "get_by_ids": call(lambda: retriever.get_by_ids(["net-1"])),
            "add_documents": call(
                lambda: retriever.add_documents([Document(id="new", page_content="child")])
            ),
            "delete": call(lambda: retriever.delete(["net-1"])),
        }

    out = in_forked_child(child)
    assert "value" in out, out
    for name, outcome in out["value"].items():
        # a typed error, not a hang, and for invoke not a silent fallback to BM25 only
        assert outcome.startswith("ForkedProcessError: "), (name, outcome)
        assert "Open the index in the child, not in the parent before forking" in outcome
    assert len(out["value"]) == 5
    # the rejected calls changed nothing, and the parent's index still works
    assert retriever.store.count() == len(DOCS)
    assert sorted(retriever.bm25.ids) == sorted(d.id for d in DOCS)
    assert [d.id for d in retriever.invoke("router error", k=2)] == expected


def test_reopening_the_parents_index_in_the_child_raises_instead_of_hanging(
    tmp_path: Path,
) -> None:
    build(tmp_path)  # the parent has the index open when it forks

    def child() -> str:
        try:
            load(tmp_path)  # a new client on the same path would hang in chromadb 1.5.9
        except ForkedProcessError as e:
            return str(e)
        return "opened"

    out = in_forked_child(child)
    assert "forked from one that had Chroma's embedded database open" in out.get("value", ""), out
    assert "Open the index in the child, not in the parent before forking" in out["value"]


CHILD_OPENS_ITS_OWN = """
import json, os, sys
sys.path.insert(0, {tests!r})
from helpers import HashEmbeddings
from langchain_core.documents import Document
from langchain_hybrid import HybridRetriever

docs = [Document(id=i, page_content=t) for i, t in {docs!r}]
read_end, write_end = os.pipe()
pid = os.fork()  # the parent imported the package but opened nothing (gunicorn, no --preload)
if pid == 0:
    HybridRetriever.from_documents(
        docs, embedding=HashEmbeddings(), persist_directory={path!r}, collection_name="kb"
    )
    own = HybridRetriever.load({path!r}, collection_name="kb", embedding=HashEmbeddings())
    hits = own.invoke("router error", k=2)
    out = {{"ids": [d.id for d in hits], "degraded": [d.metadata.get("degraded") for d in hits]}}
    os.write(write_end, json.dumps(out).encode())
    os._exit(0)
os.close(write_end)
os.waitpid(pid, 0)
print(os.read(read_end, 10_000).decode())
"""


def test_a_child_that_opens_its_own_index_works(tmp_path: Path) -> None:
    # a fresh parent process: this test process has had embedded Chroma open already
    script = CHILD_OPENS_ITS_OWN.format(
        tests=str(Path(__file__).parents[1]),
        docs=[(d.id, d.page_content) for d in DOCS],
        path=str(tmp_path / "index"),
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a hung grandchild is killed with its parent
    )
    try:
        out, err = process.communicate(timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"the forked child hung for {CHILD_TIMEOUT:.0f} s")
    assert process.returncode == 0, err
    assert json.loads(out) == {"ids": ["net-1", "net-2"], "degraded": [None, None]}, err


_INHERITED: dict[str, HybridRetriever] = {}


def _search_inherited() -> str:
    try:
        _INHERITED["retriever"].invoke("router", k=2)
    except HybridRetrieverError as e:
        return type(e).__name__
    return "returned"


def _search_reopened(tmp: str) -> str:
    try:
        load(Path(tmp)).invoke("router", k=2)
    except HybridRetrieverError as e:
        return type(e).__name__
    return "returned"


def test_multiprocessing_fork_workers_get_the_error_not_a_hang(tmp_path: Path) -> None:
    _INHERITED["retriever"] = build(tmp_path)  # workers inherit it through the fork
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        inherited = pool.apply_async(_search_inherited)
        reopened = pool.apply_async(_search_reopened, (str(tmp_path),))
        assert inherited.get(timeout=CHILD_TIMEOUT) == "ForkedProcessError"
        assert reopened.get(timeout=CHILD_TIMEOUT) == "ForkedProcessError"
    _INHERITED.clear()


def test_the_writer_lock_stays_the_parents(tmp_path: Path) -> None:
    retriever = build(tmp_path)  # the parent wrote: it holds the writer lock
    directory = tmp_path / "index"
    assert holds_writer_lock(directory)

    def child() -> dict[str, object]:
        held_here = holds_writer_lock(directory)
        try:
            acquire_writer_lock(directory, wait_seconds=0.1)
        except WriterLockError:
            take = "WriterLockError"
        else:
            take = "taken"
        return {"held": held_here, "take": take}

    out = in_forked_child(child)
    assert out.get("value") == {"held": False, "take": "WriterLockError"}, out
    assert holds_writer_lock(directory)
    assert writer_lock_free(directory) is False  # still the parent's, not released by the child
    retriever.add_documents([Document(id="parent", page_content="the parent still writes")])
    assert retriever.store.count() == len(DOCS) + 1


def test_a_child_does_not_keep_the_parents_lock_alive(tmp_path: Path) -> None:
    build(tmp_path)
    directory = tmp_path / "index"
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # a long-lived child (a gunicorn worker): waits until the parent says go
        os.close(write_end)
        os.read(read_end, 1)
        os._exit(0)
    os.close(read_end)
    try:
        release_writer_lock(directory)
        # the child's inherited descriptor was closed at the fork: another process can write
        holder = hold_writer_lock(directory)  # fails if the lock is still taken
        holder.kill()
        holder.communicate(timeout=CHILD_TIMEOUT)
    finally:
        os.write(write_end, b"x")
        os.close(write_end)
        os.waitpid(pid, 0)


@pytest.mark.server
def test_http_store_reconnects_in_a_forked_child(chroma_server: ChromaServer) -> None:
    config = StoreConfig(
        mode="http", host="127.0.0.1", port=chroma_server.port, collection="kb-fork"
    )
    retriever = HybridRetriever.from_documents(
        DOCS, embedding=HashEmbeddings(), store_config=config
    )
    expected = [d.id for d in retriever.invoke("router error", k=2)]

    def child() -> dict[str, object]:
        hits = retriever.invoke("router error", k=2)
        return {
            "ids": [d.id for d in hits],
            "degraded": [d.metadata.get("degraded") for d in hits],
            "count": retriever.store.count(),
        }

    out = in_forked_child(child)
    assert out.get("value") == {"ids": expected, "degraded": [None, None], "count": len(DOCS)}, out
    assert [d.id for d in retriever.invoke("router error", k=2)] == expected  # the parent too
