"""An interrupted ``langchain-hybrid index`` run resumes without embedding again what it wrote.

Real processes: the CLI runs in a child process with the real all-MiniLM-L6-v2 (one thread),
wrapped by an embeddings object that appends the size of every batch it embedded to a file. The
test interrupts the child (SIGKILL, or SIGINT) once several batches are embedded, runs the same
command again to the end, and checks that the second run embedded exactly the chunks the first
one did not write: every chunk the first run wrote is found unchanged and skipped.

On a terminal (a pty) the same command shows one progress line rewritten in place.
"""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers import report

from langchain_hybrid.stores import ChromaStore, StoreConfig

PASSAGES = 48
BATCH = 4
KILL_AFTER = 6  # batches embedded by the first run before it is interrupted (of 12)
WAIT = 180.0

DRIVER = textwrap.dedent(
    """
    import sys
    from langchain_core.embeddings import Embeddings
    from langchain_hybrid import cli
    from langchain_hybrid.config import make_embedding

    counts = open(sys.argv[1], "a", encoding="ascii")

    class Counting(Embeddings):
        def __init__(self, inner):
            self.inner = inner
            self.model_id = inner.model_id  # the index records the real model's id

        def embed_documents(self, texts):
            vectors = self.inner.embed_documents(texts)
            counts.write(f"{len(texts)}\\n")
            counts.flush()
            return vectors

        def embed_query(self, text):
            return self.inner.embed_query(text)

    cli.make_embedding = lambda settings: Counting(make_embedding(settings))
    sys.exit(cli.main(sys.argv[2:]))
    """
)
SUMMARY = re.compile(r"(\d+) chunks: (\d+) added, (\d+) unchanged")


@pytest.fixture
def workdir(tmp_path: Path, scifact_dir: Path) -> Path:
    """SciFact's first passages (shortened to keep the test fast) as a BEIR corpus file."""
    data = tmp_path / "data"
    data.mkdir()
    with (scifact_dir / "corpus.jsonl").open(encoding="utf-8") as source:
        rows = [json.loads(next(source)) for _ in range(PASSAGES)]
    with (data / "corpus.jsonl").open("w", encoding="utf-8") as out:
        for row in rows:
            record = {"_id": row["_id"], "title": row["title"], "text": row["text"][:200]}
            out.write(json.dumps(record) + "\n")
    (tmp_path / "driver.py").write_text(DRIVER, encoding="utf-8")
    return tmp_path


def _command(workdir: Path, counts: str) -> list[str]:
    return [
        sys.executable,
        str(workdir / "driver.py"),
        str(workdir / counts),
        "--path",
        str(workdir / "index"),
        "--collection",
        "kb",
        "index",
        str(workdir / "data"),
        "--batch-size",
        str(BATCH),
    ]


def _env(model_dir: Path, threads: int = 1) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANGCHAIN_HYBRID_")}
    env["LANGCHAIN_HYBRID_MODEL_DIR"] = str(model_dir)
    env["LANGCHAIN_HYBRID_EMBEDDING__THREADS"] = str(threads)  # 1: the kill lands mid-run
    env["PYTHONPATH"] = os.pathsep.join([str(Path.cwd()), *sys.path])
    return env


def _embedded(path: Path) -> list[int]:
    if not path.is_file():
        return []
    return [int(line) for line in path.read_text(encoding="ascii").split()]


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["sigkill", "sigint"])
def test_interrupted_index_run_resumes_without_reembedding(
    workdir: Path, model_dir: Path, how: signal.Signals
) -> None:
    env = _env(model_dir)
    first = subprocess.Popen(
        _command(workdir, "first.counts"),
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + WAIT
    while len(_embedded(workdir / "first.counts")) < KILL_AFTER:
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the first run did not get going"
        time.sleep(0.05)
    first.send_signal(how)
    _, err = first.communicate(timeout=WAIT)
    assert first.returncode == (-signal.SIGKILL if how == signal.SIGKILL else 130), err
    embedded_first = sum(_embedded(workdir / "first.counts"))
    assert embedded_first < PASSAGES, "interrupted before the end"

    second = subprocess.run(
        _command(workdir, "second.counts"),
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert second.returncode == 0, second.stderr
    match = SUMMARY.search(second.stdout)
    assert match, second.stdout
    chunks, added, unchanged = map(int, match.groups())
    embedded_second = sum(_embedded(workdir / "second.counts"))
    report(
        f"resume after {how.name}: first run embedded {embedded_first}, wrote {unchanged}; "
        f"second run embedded {embedded_second} of {PASSAGES}"
    )
    assert chunks == PASSAGES
    assert unchanged >= 2 * BATCH, "whole batches written before the interrupt are kept"
    assert unchanged % BATCH == 0, "a run leaves whole batches"
    assert added == PASSAGES - unchanged
    assert embedded_second == added, "nothing the first run wrote is embedded again"
    store = ChromaStore(StoreConfig(path=str(workdir / "index"), collection="kb"))
    assert store.count() == PASSAGES
    assert store.metadata_generation() % 2 == 0
    assert store.recorded_embedding() == "all-MiniLM-L6-v2/fp32"


def test_progress_on_a_terminal_is_one_line_rewritten(workdir: Path, model_dir: Path) -> None:
    """stderr on a pty: ``\\r``-rewritten frames with files, chunks, passages/s and ETA."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        _command(workdir, "pty.counts"),
        cwd=workdir,
        env=_env(model_dir, threads=2),
        stdout=subprocess.PIPE,
        stderr=terminal,
        text=True,
    )
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the child closed the pty
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    stdout, _ = process.communicate(timeout=WAIT)
    assert process.returncode == 0, output
    text = output.decode()
    frames = [f for f in re.split(r"[\r\n]+", text) if f.startswith("indexing: ")]
    assert frames[0] == f"indexing: 1 file, 0/{PASSAGES} chunks (0%), -- passages/s, ETA --"
    last = frames[-1].rstrip()
    assert re.fullmatch(
        rf"indexing: 1 file, {PASSAGES}/{PASSAGES} chunks \(100%\), \d+\.\d passages/s, ETA 0:00",
        last,
    ), last
    assert any(re.search(r"passages/s, ETA \d+:\d\d", f) for f in frames[1:-1]), frames
    assert "\r" in text, "rewritten in place"
    assert "progress:" not in text, "no log lines on a terminal"
    assert f"{PASSAGES} added" in stdout
