"""SIGKILL a writer process at random points; reopen: nothing acknowledged is lost.

A writer process loops over small writes on one persistent directory (adds of new documents,
upserts of existing ones, deletes, mixed calls, and ``deferred_save()`` blocks) and appends a
line to its stdout after every call *returns*::

    BEGIN {"op": "add", "docs": {"id": "text", ...}}      before the call
    ACK   {"op": "add", "docs": {"id": "text", ...}}      after the call returned

The test kills it with SIGKILL after a seeded random delay (some very early, during the open and
BM25 repair), then reopens the directory in this process with ``HybridRetriever.load`` and checks:

* the retriever opens, and the BM25 index was rebuilt from Chroma exactly when the saved one was
  stale (judged from its manifest against the collection, and seen in the log);
* both legs hold the same documents with the same text, and the vector index finds each one;
* every acknowledged write is there (adds and upserts with their text, deletes absent); the one
  call in flight at the kill is applied entirely or not at all.

The directory lives on across kill points, so later writers start from (and repair) what earlier
ones left. Half of the checks run on a copy of the directory, so the next writer has to repair
the stale BM25 index itself (and is sometimes killed doing so).

Processes: importing chromadb and the package takes seconds, so writers are forked from one
"zygote" process (a ``python -c`` script that has imported everything but opened no Chroma client
yet); a few kill points also use a fresh ``python -c`` process. ``CRASH_POINTS`` (default 52)
sets the number of forked kill points, ``CRASH_SEED`` the seed.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import HashEmbeddings, report
from langchain_core.documents import Document

from langchain_hybrid import HybridRetriever
from langchain_hybrid._locking import release_writer_lock
from langchain_hybrid.bm25 import BM25Index
from langchain_hybrid.errors import IndexCorruptError
from langchain_hybrid.retrievers import default_bm25_path
from langchain_hybrid.stores import GENERATION_KEY

TESTS = Path(__file__).resolve().parents[1]
POINTS = int(os.environ.get("CRASH_POINTS", "52"))
FRESH_POINTS = 1  # kill points that use a fresh `python -c` process instead of a fork
SEED = int(os.environ.get("CRASH_SEED", "20240611"))
COLLECTION = "kb"

WRITER = r"""
import json, os, random, sys, traceback
sys.path.insert(0, sys.argv[1])
from helpers import HashEmbeddings
from langchain_core.documents import Document
from langchain_hybrid import HybridRetriever
from langchain_hybrid._tokenize import Tokenizer

Tokenizer()("warm up the stopword list and the stemmer")
WORDS = [f"w{i}" for i in range(300)]


def emit(kind, payload):
    os.write(1, (kind + " " + json.dumps(payload, sort_keys=True) + "\n").encode())


def text_for(rng, doc_id, version):
    return f"{doc_id} v{version} " + " ".join(rng.sample(WORDS, 8))


def writer(cmd):
    rng = random.Random(cmd["seed"])  # noqa: S311 - seeded test data, not crypto
    r = HybridRetriever.load(
        cmd["dir"], collection_name="kb", embedding=HashEmbeddings(), cache=False,
        refresh_interval_seconds=None,
    )
    versions = {}
    for doc_id, hit in zip(r.bm25.ids, r.bm25.get(r.bm25.ids)):
        versions[doc_id] = int(hit.text.split()[1][1:])
    emit("OPEN", {"documents": len(versions)})
    n = 0

    def one_op():
        nonlocal n
        kind = rng.choices(["add", "upsert", "delete", "mixed"], [4, 2, 2, 1])[0]
        existing = sorted(versions)
        if kind in ("upsert", "delete", "mixed") and not existing:
            kind = "add"
        if kind == "delete":
            ids = rng.sample(existing, min(len(existing), rng.randint(1, 2)))
            payload = {"op": "delete", "ids": ids}
            emit("BEGIN", payload)
            r.delete(ids)
            emit("ACK", payload)
            for i in ids:
                versions.pop(i)
            return
        docs = {}
        if kind in ("add", "mixed"):
            for _ in range(rng.randint(1, 3) if kind == "add" else 1):
                n += 1
                docs[f"{cmd['tag']}-{n}"] = 0
        if kind in ("upsert", "mixed"):
            for i in rng.sample(existing, min(len(existing), rng.randint(1, 2))):
                docs[i] = versions[i] + 1
        texts = {i: text_for(rng, i, v) for i, v in docs.items()}
        payload = {"op": "add", "docs": texts}
        emit("BEGIN", payload)
        r.add_documents([Document(page_content=t) for t in texts.values()], ids=list(texts))
        emit("ACK", payload)
        versions.update(docs)

    if cmd["deferred"]:
        emit("BLOCK", {"deferred": True})
        with r.deferred_save():
            while True:
                one_op()
    while True:
        if rng.random() < 0.15:
            emit("BLOCK", {"deferred": True})
            with r.deferred_save():
                for _ in range(rng.randint(2, 5)):
                    one_op()
            emit("BLOCK", {"deferred": False})
        else:
            one_op()


def run_child(cmd):
    fd = os.open(cmd["out"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    err = os.open(cmd["err"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(err, 2)
    try:
        writer(cmd)
    except BaseException:
        os.write(2, traceback.format_exc().encode())
    os._exit(3)


if sys.argv[2] == "run":  # a fresh process: write until killed
    run_child(json.loads(sys.argv[3]))
for line in sys.stdin:  # the zygote: fork one writer per command, report its pid and status
    cmd = json.loads(line)
    pid = os.fork()
    if pid == 0:
        run_child(cmd)
    print(json.dumps({"pid": pid}), flush=True)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"status": status}), flush=True)
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}


class Zygote:
    """A process that has imported everything and forks one writer per kill point."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(TESTS), "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=_env(),
        )

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, f"the zygote died (status {self.process.poll()})"
        return dict(json.loads(line))

    def kill_after(self, cmd: dict[str, Any], delay: float, *, after_open: bool) -> int:
        """Fork a writer and SIGKILL it ``delay`` seconds after the fork, or after it opened.

        Returns the writer's wait status.
        """
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(cmd) + "\n")
        self.process.stdin.flush()
        pid = int(self._read()["pid"])
        if after_open:
            wait_for_open(Path(cmd["out"]), Path(cmd["err"]))
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        return int(self._read()["status"])

    def close(self) -> None:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)
        self.process.stdout.close()


def wait_for_open(out: Path, err: Path, timeout: float = 60.0) -> None:
    """Wait until a writer has opened the index (its OPEN line), failing on a traceback."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if out.exists() and out.read_text().startswith("OPEN"):
            return
        if err.exists() and "Traceback" in err.read_text():
            pytest.fail(f"the writer failed to open the index:\n{err.read_text()}")
        time.sleep(0.005)
    pytest.fail(f"the writer did not open the index within {timeout}s")


def kill_fresh_process(cmd: dict[str, Any], delay: float) -> int:
    """Run the writer in a new `python -c` process; SIGKILL it ``delay`` s after it opened."""
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(TESTS), "run", json.dumps(cmd)], env=_env()
    )
    wait_for_open(Path(cmd["out"]), Path(cmd["err"]))
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    return process.wait(timeout=30)


# ---------------------------------------------------------------------- expected state
Model = dict[str, str]  # id -> text


def apply(model: Model, payload: dict[str, Any]) -> Model:
    out = dict(model)
    if payload["op"] == "delete":
        for doc_id in payload["ids"]:
            out.pop(doc_id, None)
    else:
        out.update(payload["docs"])
    return out


@dataclass
class Outcome:
    """What one kill point found."""

    acked: int = 0
    in_flight: str | None = None  # the op running at the kill, if any
    in_flight_applied: bool = False
    in_deferred_block: bool = False
    opened: bool = False
    repaired: bool = False


def expected_states(model: Model, lines: list[str]) -> tuple[list[Model], Outcome]:
    """The states the directory may be in: acknowledged writes, plus or minus the one in flight."""
    outcome = Outcome()
    pending: dict[str, Any] | None = None
    for line in lines:
        kind, _, raw = line.partition(" ")
        payload = json.loads(raw)
        if kind == "OPEN":
            outcome.opened = True
        elif kind == "BLOCK":
            outcome.in_deferred_block = bool(payload["deferred"])
        elif kind == "BEGIN":
            pending = payload
        elif kind == "ACK":
            assert payload == pending, f"ACK without its BEGIN: {line}"
            model = apply(model, payload)
            pending = None
            outcome.acked += 1
    if pending is None:
        return [model], outcome
    outcome.in_flight = pending["op"]
    return [model, apply(model, pending)], outcome


def ids_written(lines: list[str]) -> set[str]:
    """Every id a writer's BEGIN lines name."""
    out: set[str] = set()
    for line in lines:
        kind, _, raw = line.partition(" ")
        if kind == "BEGIN":
            payload = json.loads(raw)
            out.update(payload.get("ids", ()), payload.get("docs", {}))
    return out


# ---------------------------------------------------------------------- the check
def saved_manifest(directory: Path) -> dict[str, Any] | None:
    """The saved BM25 manifest, its generation and count those its log reaches (or ``None``)."""
    try:
        return BM25Index.read_manifest(default_bm25_path(directory, COLLECTION))
    except (OSError, IndexCorruptError):
        return None


def sample_ids(found: Model, touched: set[str], size: int = 40) -> list[str]:
    """Every document the last writer touched, and a stable sample of the others."""
    rest = sorted(set(found) - touched)
    return sorted(touched & set(found)) + random.Random(len(found)).sample(  # noqa: S311 - seeded test data, not crypto
        rest, min(size, len(rest))
    )


def reopen_and_check(
    directory: Path,
    candidates: list[Model],
    outcome: Outcome,
    caplog: pytest.LogCaptureFixture,
    lines_ids: set[str],
) -> Model:
    """Reopen, check both legs against the candidates, and return the state found."""
    manifest = saved_manifest(directory)
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="langchain_hybrid"):
        r = HybridRetriever.load(
            directory,
            collection_name=COLLECTION,
            embedding=HashEmbeddings(),
            cache=False,
            refresh_interval_seconds=None,
        )
    try:
        rebuilt = [rec.getMessage() for rec in caplog.records if "rebuilt from" in rec.getMessage()]
        generation, count = r.store.metadata_generation(), r.store.count()
        stale = (
            manifest is None
            or manifest.get("generation") != generation
            or manifest.get("documents") != count
        )
        assert bool(rebuilt) == stale, (
            manifest and manifest.get("generation"),
            generation,
            rebuilt,
        )
        outcome.repaired = bool(rebuilt)
        assert r.bm25.generation == generation
        chroma = {d.id: d.text for page in r.store.iter_all() for d in page}
        bm25 = {h.id: h.text for h in r.bm25.get(r.bm25.ids) if h is not None}
        assert len(chroma) == count == len(r.bm25)
        assert chroma == bm25, "the legs disagree after the crash"
        assert chroma in candidates, describe_loss(chroma, candidates)
        outcome.in_flight_applied = len(candidates) > 1 and chroma == candidates[1] != candidates[0]
        for doc_id in sample_ids(chroma, lines_ids):  # the vector index has these documents
            text = chroma[doc_id]
            top = [h.id for h in r.search_leg("vector", text, k=3)]
            assert doc_id in top, f"vector leg does not find {doc_id}: {top}"
        return chroma
    finally:
        r.store.client.close()


def describe_loss(found: Model, candidates: list[Model]) -> str:
    acked = candidates[0]
    missing = sorted(set(acked) - set(found))
    extra = sorted(set(found) - set().union(*candidates))
    stale = sorted(i for i in set(acked) & set(found) if acked[i] != found[i])
    return f"lost acknowledged writes: missing {missing}, resurrected {extra}, stale text {stale}"


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    path = tmp_path / "index"
    seed = [
        Document(id=f"seed-{i}", page_content=f"seed-{i} v0 w{i} w{i + 1} w{i + 2}")
        for i in range(5)
    ]
    r = HybridRetriever.from_documents(
        seed, embedding=HashEmbeddings(), persist_directory=path, collection_name=COLLECTION
    )
    r.store.client.close()
    release_writer_lock(path)  # the writer processes take it
    return path


def test_sigkill_at_random_points_loses_no_acknowledged_write(
    directory: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(SEED)  # noqa: S311 - seeded test data, not crypto
    model: Model = {f"seed-{i}": f"seed-{i} v0 w{i} w{i + 1} w{i + 2}" for i in range(5)}
    zygote = Zygote()
    outcomes: list[Outcome] = []
    started = time.monotonic()
    try:
        for point in range(POINTS + FRESH_POINTS):
            fresh = point < FRESH_POINTS
            deferred = point % 4 == 3
            early = not fresh and rng.random() < 0.2
            # early: during the open (0.5-1 s: the Chroma client starts) and the BM25 repair;
            # else among the writes (10-30 ms each), counted from the writer's OPEN line
            delay = rng.uniform(0.0, 0.8) if early else rng.uniform(0.0, 0.4)
            out, err = tmp_path / f"acks-{point}.log", tmp_path / f"err-{point}.log"
            cmd = {
                "dir": str(directory),
                "seed": rng.randrange(2**32),
                "tag": f"p{point}",
                "out": str(out),
                "err": str(err),
                "deferred": deferred,
            }
            if fresh:
                status = kill_fresh_process(cmd, delay)
            else:
                status = zygote.kill_after(cmd, delay, after_open=not early)
            log = err.read_text() if err.exists() else ""  # warnings (repairs) go here too
            assert "Traceback" not in log, f"writer {point} failed on its own:\n{log}"
            killed = status == -signal.SIGKILL or (
                os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
            )
            assert killed, f"writer {point} was not killed by SIGKILL (status {status})"
            lines = out.read_text().splitlines() if out.exists() else []
            candidates, outcome = expected_states(model, lines)
            target = directory
            if point % 2:  # check a copy: the next writer must repair the original itself
                target = tmp_path / f"copy-{point}"
                shutil.copytree(directory, target)
            touched = ids_written(lines)
            model = reopen_and_check(target, candidates, outcome, caplog, touched)
            if target != directory:
                shutil.rmtree(target)
            outcomes.append(outcome)
    finally:
        zygote.close()
    elapsed = time.monotonic() - started

    acked = sum(o.acked for o in outcomes)
    summary = {
        "kill_points": len(outcomes),
        "acknowledged_writes": acked,
        "killed_before_open": sum(not o.opened for o in outcomes),
        "killed_mid_write": sum(o.in_flight is not None for o in outcomes),
        "mid_write_applied": sum(o.in_flight_applied for o in outcomes),
        "killed_in_deferred_block": sum(o.in_deferred_block for o in outcomes),
        "bm25_repaired_on_open": sum(o.repaired for o in outcomes),
        "documents_at_end": len(model),
        "losses": 0,  # any loss fails reopen_and_check
        "seconds": round(elapsed, 1),
    }
    report(f"\ncrash safety: {summary}")
    assert len(outcomes) >= 20
    assert acked > 0
    assert summary["killed_before_open"] >= 1  # some kills were very early
    assert summary["killed_mid_write"] >= 1
    assert summary["killed_in_deferred_block"] >= 3
    assert summary["bm25_repaired_on_open"] >= 3


def test_generation_key_is_what_the_check_reads(directory: Path) -> None:
    """Guard for the manifest comparison above: it reads the key the package writes."""
    r = HybridRetriever.load(directory, collection_name=COLLECTION, embedding=HashEmbeddings())
    try:
        collection = r.store.client.get_collection(r.store.config.chroma_collection)
        assert collection.metadata[GENERATION_KEY] == r.store.metadata_generation()
        assert saved_manifest(directory)["generation"] == r.store.metadata_generation()  # type: ignore[index]
    finally:
        r.store.client.close()
