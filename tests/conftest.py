from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

SHARED_MODEL = Path(__file__).resolve().parents[2] / "shared/models/all-MiniLM-L6-v2/onnx"


@pytest.fixture
def collection_name() -> str:
    """A unique Chroma collection name per test."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The all-MiniLM-L6-v2 files: LANGCHAIN_HYBRID_MODEL_DIR, else ../shared/models."""
    configured = os.environ.get("LANGCHAIN_HYBRID_MODEL_DIR")
    path = Path(configured) if configured else SHARED_MODEL
    if not (path / "model.onnx").is_file():
        pytest.fail(
            f"all-MiniLM-L6-v2 not found at {path}: set LANGCHAIN_HYBRID_MODEL_DIR "
            "(or deselect with -m 'not model')"
        )
    return path


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Show what the reliability tests measured (see ``helpers.report``)."""
    from helpers import FIGURES  # noqa: PLC0415 - tests/ is put on sys.path above

    if FIGURES:
        terminalreporter.section("figures measured by the tests")
        for line in FIGURES:
            terminalreporter.write_line(line)
