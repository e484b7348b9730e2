from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

SHARED_MODEL = Path(__file__).resolve().parents[2] / "shared/models/all-MiniLM-L6-v2/onnx"
SHARED_SCIFACT = Path(__file__).resolve().parents[2] / "shared/data/scifact"

from helpers import HashEmbeddings  # noqa: E402 - tests/ is put on sys.path above


@pytest.fixture
def collection_name() -> str:
    """A unique Chroma collection name per test."""
    return f"t-{uuid.uuid4().hex[:12]}"


def _shared(variable: str, default: Path, marker: str, what: str) -> Path:
    """A folder of ../shared (or the one ``variable`` names) that holds ``marker``, else fail."""
    configured = os.environ.get(variable)
    path = Path(configured) if configured else default
    if not (path / marker).is_file():
        pytest.fail(f"{what} not found at {path}: set {variable} (or deselect with -m 'not model')")
    return path


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The all-MiniLM-L6-v2 files: LANGCHAIN_HYBRID_MODEL_DIR, else ../shared/models."""
    return _shared("LANGCHAIN_HYBRID_MODEL_DIR", SHARED_MODEL, "model.onnx", "all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def scifact_dir() -> Path:
    """SciFact in BEIR layout: LANGCHAIN_HYBRID_SCIFACT, else ../shared/data/scifact."""
    return _shared(
        "LANGCHAIN_HYBRID_SCIFACT", SHARED_SCIFACT, "corpus.jsonl", "SciFact (BEIR layout)"
    )


@pytest.fixture
def embedding(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> HashEmbeddings:
    """The CLI's embedding model replaced by a counting one; no settings from the environment."""
    from langchain_hybrid import cli  # noqa: PLC0415

    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("LANGCHAIN_HYBRID_"):
            monkeypatch.delenv(name)
    emb = HashEmbeddings()
    monkeypatch.setattr(cli, "make_embedding", lambda _settings: emb)
    return emb


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Show what the reliability tests measured (see ``helpers.report``)."""
    from helpers import FIGURES  # noqa: PLC0415 - tests/ is put on sys.path above

    if FIGURES:
        terminalreporter.section("figures measured by the tests")
        for line in FIGURES:
            terminalreporter.write_line(line)
