"""Exact matches on real text nobody planted: Python's language reference, real model.

``benchmarks/langref_check.py`` end to end: the 79 topics of ``pydoc_data.topics`` written to
files and indexed with the CLI (615 chunks; 67 s of CPU, 181 s wall on a 2-core machine at
load 12, where the 500-document exact-match test took 214 s), 30 words that occur in one topic
only, each asked in hybrid, BM25 and vector modes. Measured 2026-12-04 on commit 568a9d0: the
topic comes first for 19 words in hybrid mode, 19 with BM25 alone, 2 with the vector leg
(81db720: 4 / 20 / 2).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest
from helpers import report

pytestmark = pytest.mark.model

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "langref_check.py"
HYBRID_FIRST_FLOOR = 19
"""Words whose topic the hybrid mode puts first, as measured (of 30)."""


def _langref() -> Any:
    spec = importlib.util.spec_from_file_location("langref_check", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hybrid_puts_one_topic_words_first_as_often_as_bm25(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("LANGCHAIN_HYBRID_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LANGCHAIN_HYBRID_MODEL_DIR", str(model_dir))
    monkeypatch.chdir(tmp_path)
    results, rows = _langref().run_check(tmp_path / "langref", words=30, seed=12)
    summary = {r["mode"]: r for r in rows}
    for mode, row in summary.items():
        report(
            f"language reference, {mode}: topic first for {row['first']}/{row['words']} "
            f"one-topic words, top 3 {row['top3']}, top 10 {row['top10']}"
        )
    assert len(results) == 30
    assert summary["bm25"]["top10"] >= 29
    assert summary["hybrid"]["first"] >= summary["bm25"]["first"], results
    assert summary["hybrid"]["first"] >= HYBRID_FIRST_FLOOR, results
