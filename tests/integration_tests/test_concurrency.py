"""Concurrent readers and writers, in threads and in processes: no errors, no stale answers.

In one process: sync query threads and an event-loop thread of ``ainvoke`` tasks run while a
writer thread adds and deletes documents (persistent index, result cache on, refresh every
50 ms). Every document has a unique marker word, so a query names the document it is about.
Checked:

* no query raises;
* no answer holds a document whose ``delete`` returned before the query started;
* a query that started after ``add_documents`` returned (and ended before the delete was called)
  finds the added document;
* the cache never serves a stale answer: the writer queries right before and right after each
  write, and the second answer reflects the write;
* at the end, Chroma count == BM25 size == the expected number of documents, same ids.

Across processes: one writer process and several reader processes (``refresh_interval_seconds``
small, plus explicit ``refresh()``) on one persisted directory; the readers never fail and, after
the writer finished and they refreshed, see exactly the final state in both legs. A second writer
process gets :class:`WriterLockError` and changes nothing. A reader process that repairs a stale
BM25 index on open (slowly, as on a slow disk) does not make the writer's writes fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import HashEmbeddings, report
from langchain_core.documents import Document

from langchain_hybrid import HybridRetriever
from langchain_hybrid._locking import release_writer_lock

TESTS = Path(__file__).resolve().parents[1]
SYNC_THREADS = 4
ASYNC_TASKS = 4
WRITES = int(os.environ.get("CONCURRENCY_WRITES", "70"))
READERS = 3
PROCESS_WRITES = int(os.environ.get("CONCURRENCY_PROCESS_WRITES", "100"))
WORDS = [f"w{i}" for i in range(200)]


def text_for(doc_id: str, version: int, rng: random.Random) -> str:
    return f"marker{doc_id.replace('-', '')} v{version} " + " ".join(rng.sample(WORDS, 6))


def marker(doc_id: str) -> str:
    return f"marker{doc_id.replace('-', '')}"


# ---------------------------------------------------------------------- threads
@dataclass(frozen=True, slots=True)
class QueryRecord:
    target: str
    start: float
    end: float
    ids: tuple[str, ...]
    kind: str


class Log:
    """What every thread did, with monotonic times."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.queries: list[QueryRecord] = []
        self.errors: list[str] = []
        self.added: dict[str, float] = {}  # id -> time add_documents returned
        self.delete_called: dict[str, float] = {}
        self.deleted: dict[str, float] = {}  # id -> time delete returned
        self.stale: list[str] = []
        self.done = threading.Event()

    def known_ids(self) -> list[str]:
        with self.lock:
            return list(self.added)

    def record_error(self) -> None:
        with self.lock:
            self.errors.append(traceback.format_exc())


def query_thread(r: HybridRetriever, log: Log, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - seeded test data, not crypto
    while not log.done.is_set():
        known = log.known_ids()
        target = rng.choice(known)
        start = time.monotonic()
        try:
            docs = r.invoke(marker(target), k=5)
        except Exception:  # noqa: BLE001 - any error fails the test, with its traceback
            log.record_error()
            continue
        end = time.monotonic()
        record = QueryRecord(target, start, end, tuple(str(d.id) for d in docs), "sync")
        with log.lock:
            log.queries.append(record)
        time.sleep(0.001)  # busy traffic, but the writer still gets the GIL now and then


def async_thread(r: HybridRetriever, log: Log, seed: int) -> None:
    async def task(rng: random.Random) -> None:
        while not log.done.is_set():
            target = rng.choice(log.known_ids())
            start = time.monotonic()
            try:
                docs = await r.ainvoke(marker(target), k=5)
            except Exception:  # noqa: BLE001
                log.record_error()
                continue
            end = time.monotonic()
            record = QueryRecord(target, start, end, tuple(str(d.id) for d in docs), "async")
            with log.lock:
                log.queries.append(record)
            await asyncio.sleep(0.001)

    async def main() -> None:
        await asyncio.gather(*(task(random.Random(seed + i)) for i in range(ASYNC_TASKS)))  # noqa: S311 - seeded test data, not crypto

    asyncio.run(main())


def writer_thread(r: HybridRetriever, log: Log, live: set[str]) -> None:
    rng = random.Random(7)  # noqa: S311 - seeded test data, not crypto
    try:
        for n in range(WRITES):
            if live and rng.random() < 0.4:
                doc_id = rng.choice(sorted(live))
                before = r.invoke(marker(doc_id), k=5)  # cached now
                assert doc_id in {d.id for d in before}
                with log.lock:
                    log.delete_called[doc_id] = time.monotonic()
                r.delete([doc_id])
                with log.lock:
                    log.deleted[doc_id] = time.monotonic()
                live.discard(doc_id)
                if doc_id in {d.id for d in r.invoke(marker(doc_id), k=5)}:
                    log.stale.append(f"deleted {doc_id} still answered")
            else:
                doc_id = f"t-{n}"
                r.invoke(marker(doc_id), k=5)  # cache the answer without it
                r.add_documents([Document(page_content=text_for(doc_id, 0, rng))], ids=[doc_id])
                with log.lock:
                    log.added[doc_id] = time.monotonic()
                live.add(doc_id)
                if doc_id not in {d.id for d in r.invoke(marker(doc_id), k=5)}:
                    log.stale.append(f"added {doc_id} not answered")
    except Exception:  # noqa: BLE001
        log.record_error()
    finally:
        log.done.set()


def test_threads_query_while_another_thread_writes(tmp_path: Path) -> None:
    rng = random.Random(1)  # noqa: S311 - seeded test data, not crypto
    seed_ids = [f"s-{i}" for i in range(20)]
    r = HybridRetriever.from_documents(
        [Document(page_content=text_for(i, 0, rng)) for i in seed_ids],
        ids=seed_ids,
        embedding=HashEmbeddings(),
        persist_directory=tmp_path,
        collection_name="kb",
        refresh_interval_seconds=0.05,
        fusion="rrf",  # a marker query is a lone BM25 hit, which zscore fusion scores 0
    )
    log = Log()
    now = time.monotonic()
    log.added.update(dict.fromkeys(seed_ids, now))
    live = set(seed_ids)
    threads = [
        threading.Thread(target=query_thread, args=(r, log, i), name=f"query-{i}")
        for i in range(SYNC_THREADS)
    ]
    threads.append(threading.Thread(target=async_thread, args=(r, log, 100), name="loop"))
    threads.append(threading.Thread(target=writer_thread, args=(r, log, live), name="writer"))
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    elapsed = time.monotonic() - started

    assert not log.errors, log.errors[0]
    assert not log.stale, log.stale
    resurrected = [
        (q.kind, doc_id, round(q.start - log.deleted[doc_id], 4))
        for q in log.queries
        for doc_id in q.ids
        if doc_id in log.deleted and log.deleted[doc_id] < q.start
    ]
    assert not resurrected, f"answers held already deleted documents: {resurrected[:10]}"
    invisible = [
        (q.kind, q.target)
        for q in log.queries
        if log.added[q.target] < q.start
        and log.delete_called.get(q.target, float("inf")) > q.end
        and q.target not in q.ids
    ]
    assert not invisible, f"answers missed documents added before they started: {invisible[:10]}"
    assert r.store.count() == len(r.bm25) == len(live)
    assert set(r.bm25.ids) == live
    assert {d.id for d in r.get_by_ids(sorted(live))} == live
    sync = sum(q.kind == "sync" for q in log.queries)
    report(
        f"\nthreads: {SYNC_THREADS} sync query threads x {sync / SYNC_THREADS:.0f} queries, "
        f"{ASYNC_TASKS} async tasks x {(len(log.queries) - sync) / ASYNC_TASKS:.0f} queries, "
        f"1 writer x {WRITES} writes ({len(log.deleted)} deletes), {elapsed:.1f}s"
    )
    assert sync >= SYNC_THREADS * 10
    assert len(log.queries) - sync >= ASYNC_TASKS * 10


# ---------------------------------------------------------------------- processes
PROCESS_SCRIPT = r"""
import json, random, sys, threading, time, traceback
sys.path.insert(0, sys.argv[1])
from helpers import HashEmbeddings
from langchain_core.documents import Document
from langchain_hybrid import HybridRetriever, WriterLockError

role, directory, seed = sys.argv[2], sys.argv[3], int(sys.argv[4])
WORDS = [f"w{i}" for i in range(200)]
rng = random.Random(seed)  # noqa: S311 - seeded test data, not crypto


def text_for(doc_id, version):
    return f"marker{doc_id.replace('-', '')} v{version} " + " ".join(rng.sample(WORDS, 6))


def state(r):
    return {h.id: h.text for h in r.bm25.get(r.bm25.ids)}


def say(kind, payload=None):
    print(kind + " " + json.dumps(payload), flush=True)


if role == "writer":
    ops = int(sys.argv[5])
    r = HybridRetriever.load(directory, collection_name="kb", embedding=HashEmbeddings(),
                             refresh_interval_seconds=None)
    r.add_documents([Document(page_content=text_for("w-0", 0))], ids=["w-0"])  # takes the lock
    say("LOCKED")
    versions = {i: int(t.split()[1][1:]) for i, t in state(r).items()}
    for n in range(1, ops):
        mutable = sorted(i for i in versions if not i.startswith("keep-"))
        kind = rng.choice(["add", "upsert", "upsert", "delete"]) if mutable else "add"
        if kind == "add":
            doc_id = f"w-{n}"
            versions[doc_id] = 0
            r.add_documents([Document(page_content=text_for(doc_id, 0))], ids=[doc_id])
        elif kind == "upsert":  # the count does not change: only the generation tells
            doc_id = rng.choice(mutable)
            versions[doc_id] += 1
            r.add_documents([Document(page_content=text_for(doc_id, versions[doc_id]))],
                            ids=[doc_id])
        else:
            doc_id = rng.choice(mutable)
            del versions[doc_id]
            r.delete([doc_id])
    say("DONE", state(r))
    sys.stdin.readline()  # hold the writer lock until the test is done with the intruder

elif role == "reader":
    r = HybridRetriever.load(directory, collection_name="kb", embedding=HashEmbeddings(),
                             refresh_interval_seconds=0.02, fusion="rrf")
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    say("READY")
    errors, queries, refreshes = [], 0, 0
    while not stop.is_set():
        try:
            ids = sorted(r.bm25.ids)
            target = rng.choice(ids) if ids else "w-0"
            r.invoke(f"marker{target.replace('-', '')}", k=5)
            queries += 1
            if queries % 10 == 0:
                refreshes += bool(r.refresh())
        except Exception:
            errors.append(traceback.format_exc())
    try:
        r.refresh()
        r.refresh()
        final = state(r)
        chroma = {d.id: d.text for page in r.store.iter_all() for d in page}
        vector_missing = sorted(
            i for i, t in chroma.items() if i not in [h.id for h in r.search_leg("vector", t, k=3)]
        )
        hybrid_missing = sorted(
            i for i in chroma
            if i not in [d.id for d in r.invoke(f"marker{i.replace('-', '')}", k=5)]
        )
    except Exception:
        errors.append(traceback.format_exc())
        final, chroma, vector_missing, hybrid_missing = {}, {}, [], []
    say("REPORT", {"errors": errors, "queries": queries, "refreshes": refreshes,
                   "bm25": final, "chroma": chroma, "vector_missing": vector_missing,
                   "hybrid_missing": hybrid_missing})

elif role == "intruder":
    r = HybridRetriever.load(directory, collection_name="kb", embedding=HashEmbeddings(),
                             refresh_interval_seconds=None)
    before = (len(r.bm25), r.bm25.generation, sorted(r.bm25.ids))
    outcome = {}
    attempts = {
        "add": lambda: r.add_documents([Document(page_content="intruder")], ids=["intruder-1"]),
        "upsert": lambda: r.add_documents([Document(page_content="intruder")], ids=["keep-0"]),
        "delete": lambda: r.delete(["keep-1"]),
    }
    for name, attempt in attempts.items():
        try:
            attempt()
            outcome[name] = "succeeded"
        except WriterLockError:
            outcome[name] = "WriterLockError"
        except Exception as e:
            outcome[name] = f"{type(e).__name__}: {e}"
    after = (len(r.bm25), r.bm25.generation, sorted(r.bm25.ids))
    say("RESULT", {"outcome": outcome, "unchanged": before == after})

elif role == "slow-repairer":  # a reader that repairs a stale BM25 index on a slow disk
    from langchain_hybrid.bm25 import BM25Index
    original_save = BM25Index.save

    def slow_save(self, path):
        say("SAVING")
        time.sleep(float(sys.argv[5]))
        original_save(self, path)

    BM25Index.save = slow_save
    r = HybridRetriever.load(directory, collection_name="kb", embedding=HashEmbeddings(),
                             refresh_interval_seconds=None)
    say("OPENED", len(r.bm25))
    sys.stdin.readline()
"""


class Proc:
    """A helper process speaking one JSON line per event."""

    def __init__(self, role: str, directory: Path, seed: int, *extra: str) -> None:
        self.role = role
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                PROCESS_SCRIPT,
                str(TESTS),
                role,
                str(directory),
                str(seed),
                *extra,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )

    def expect(self, kind: str) -> Any:
        assert self.process.stdout is not None
        while True:
            line = self.process.stdout.readline()
            if not line:
                self.process.wait(timeout=30)
                assert self.process.stderr is not None
                pytest.fail(f"{self.role} exited early: {self.process.stderr.read()[-3000:]}")
            got, _, payload = line.rstrip("\n").partition(" ")
            if got == kind:
                return json.loads(payload)

    def tell(self) -> None:
        assert self.process.stdin is not None
        with contextlib.suppress(BrokenPipeError):  # a process that died is reported elsewhere
            self.process.stdin.write("\n")
            self.process.stdin.flush()

    def finish(self) -> None:
        """Close its stdin (readers stop, the writer releases its lock) and reap it."""
        try:
            self.process.communicate(timeout=60)
        except (subprocess.TimeoutExpired, BrokenPipeError, ValueError):
            self.process.kill()
            self.process.communicate()


def test_a_reader_repairing_bm25_does_not_fail_the_writer(tmp_path: Path) -> None:
    """A reader process saving a repaired BM25 index must not make the writer's write fail.

    The repairing reader's save is slowed down (as on a slow disk, or for a large index) so the
    writer's first write lands while it is in progress.
    """
    rng = random.Random(4)  # noqa: S311 - seeded test data, not crypto
    built = HybridRetriever.from_documents(
        [Document(page_content=text_for(f"s-{i}", 0, rng)) for i in range(10)],
        ids=[f"s-{i}" for i in range(10)],
        embedding=HashEmbeddings(),
        persist_directory=tmp_path,
        collection_name="kb",
    )
    built.store.bump_metadata_generation()  # the saved BM25 index is now stale, as after a crash
    built.store.client.close()
    release_writer_lock(tmp_path)
    repairer = Proc("slow-repairer", tmp_path, 5, "3.0")
    try:
        repairer.expect("SAVING")
        writer = HybridRetriever.load(tmp_path, collection_name="kb", embedding=HashEmbeddings())
        try:
            ids = writer.add_documents(
                [Document(page_content=text_for("w-1", 0, rng))], ids=["w-1"]
            )
        finally:
            writer.store.client.close()
        assert ids == ["w-1"]
        repairer.expect("OPENED")
    finally:
        repairer.finish()
        release_writer_lock(tmp_path)


def reader_problems(reports: list[dict[str, Any]], final: dict[str, str]) -> list[str]:
    """What the readers' final reports show wrong, against the writer's final state."""
    problems = []
    for n, got in enumerate(reports):
        if got["errors"]:
            problems.append(f"reader {n} raised: {got['errors'][0]}")
        if got["bm25"] != final:
            stale = sorted(i for i in final if got["bm25"].get(i) != final[i])
            extra = sorted(set(got["bm25"]) - set(final))
            problems.append(f"reader {n} BM25 is stale after refresh(): {stale[:8]} extra {extra}")
        if got["chroma"] != final:
            problems.append(f"reader {n} reads other documents from Chroma")
        if got["vector_missing"]:
            missing = got["vector_missing"]
            problems.append(
                f"reader {n} vector leg misses {len(missing)} of {len(final)} final documents "
                f"after refresh() (e.g. {missing[:5]})"
            )
        if got["hybrid_missing"]:
            problems.append(f"reader {n} invoke() misses {got['hybrid_missing'][:5]}")
    return problems


def test_reader_processes_follow_one_writer_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(3)  # noqa: S311 - seeded test data, not crypto
    seed_ids = [f"keep-{i}" for i in range(3)] + [f"s-{i}" for i in range(20)]
    built = HybridRetriever.from_documents(
        [Document(page_content=text_for(i, 0, rng)) for i in seed_ids],
        ids=seed_ids,
        embedding=HashEmbeddings(),
        persist_directory=tmp_path,
        collection_name="kb",
    )
    built.store.client.close()
    release_writer_lock(tmp_path)

    started = time.monotonic()
    readers = [Proc("reader", tmp_path, 10 + i) for i in range(READERS)]
    for reader in readers:
        reader.expect("READY")
    writer = Proc("writer", tmp_path, 1, str(PROCESS_WRITES))
    intruder: Proc | None = None
    try:
        writer.expect("LOCKED")
        intruder = Proc("intruder", tmp_path, 2)
        intrusion = intruder.expect("RESULT")
        final: dict[str, str] = writer.expect("DONE")
        time.sleep(0.2)  # let readers query the final state through their periodic refresh
        for reader in readers:
            reader.tell()
        reports = [reader.expect("REPORT") for reader in readers]
    finally:
        for proc in [writer, *readers, *([intruder] if intruder else [])]:
            proc.finish()
    elapsed = time.monotonic() - started

    # the second writer was refused and changed nothing
    assert intrusion["outcome"] == dict.fromkeys(("add", "upsert", "delete"), "WriterLockError")
    assert intrusion["unchanged"]
    assert "intruder-1" not in final
    assert {"keep-0", "keep-1", "keep-2"} <= set(final)
    assert "intruder" not in final["keep-0"]

    # this process, reopening after the writer exited cleanly, finds the final state, and the
    # BM25 files the writer saved last are current (no reader overwrote them with older ones)
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="langchain_hybrid"):
        reopened = HybridRetriever.load(tmp_path, collection_name="kb", embedding=HashEmbeddings())
    rebuilt = [r.getMessage() for r in caplog.records if "rebuilt from" in r.getMessage()]
    chroma = {d.id: d.text for page in reopened.store.iter_all() for d in page}
    reopened.store.client.close()
    problems = reader_problems(reports, final)
    if chroma != final:
        problems.append("Chroma differs from what the writer reported")
    if rebuilt:
        problems.append(f"the saved BM25 index was not the writer's last one: {rebuilt}")
    queries = [r["queries"] for r in reports]
    report(
        f"\nprocesses: {READERS} readers x {queries} queries "
        f"({[r['refreshes'] for r in reports]} refreshes that synced), 1 writer x "
        f"{PROCESS_WRITES} writes, 1 refused writer, {elapsed:.1f}s"
    )
    assert not problems, "\n".join(problems)
    assert all(q > 0 for q in queries)
