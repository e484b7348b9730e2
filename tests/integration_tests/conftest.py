"""Integration fixtures: a real `chroma run` server on a free loopback port, the real model."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from langchain_hybrid.embeddings import MiniLMEmbeddings

PASSAGES = Path(__file__).resolve().parents[2] / "examples" / "data" / "passages.jsonl"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ChromaServer:
    """A `chroma run` process that tests can stop and start again on the same port and data."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = path.parent / f"chroma-{self.port}.log"

    def start(self, timeout: float = 60.0) -> None:
        chroma = shutil.which("chroma", path=str(Path(sys.executable).parent)) or "chroma"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    chroma,
                    "run",
                    "--path",
                    str(self.path),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"chroma run exited early: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.2)
        pytest.fail(f"chroma run did not listen on {self.port} within {timeout}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[ChromaServer]:
    """A fresh `chroma run` server for one test, stopped afterwards."""
    server = ChromaServer(tmp_path / "chroma-data")
    server.path.mkdir()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def minilm(model_dir: Path) -> MiniLMEmbeddings:
    """One real all-MiniLM-L6-v2 instance for the whole session."""
    return MiniLMEmbeddings(model_dir=model_dir)


@pytest.fixture(scope="session")
def passages() -> list[dict[str, object]]:
    """The demo corpus the repo ships (examples/data/passages.jsonl)."""
    with PASSAGES.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
