"""Run every example as a script, the way a reader would, and check what it prints."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.model

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TIMEOUT = 180


def run_example(
    name: str, model_dir: Path, *args: str, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    env = {
        key: value for key, value in os.environ.items() if not key.startswith("LANGCHAIN_HYBRID_")
    }
    env["LANGCHAIN_HYBRID_MODEL_DIR"] = str(model_dir)
    env["ANONYMIZED_TELEMETRY"] = "False"
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, (
        f"{name} exited {result.returncode}\n--- stdout\n{result.stdout[-3000:]}"
        f"\n--- stderr\n{result.stderr[-3000:]}"
    )
    return result


def has_line(pattern: str, text: str) -> re.Match[str] | None:
    return re.search(pattern, text, re.MULTILINE)


def test_every_example_is_tested() -> None:
    tested = {
        "demo.py",
        "lcel_rag_chain.py",
        "yaml_config.py",
        "async_usage.py",
        "callbacks.py",
        "client_server.py",
    }
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_demo_builds_then_reuses_the_index(model_dir: Path, tmp_path: Path) -> None:
    index = tmp_path / "demo-index"
    first = run_example("demo.py", model_dir, "--index", str(index))
    out = first.stdout
    built = re.search(r"indexed (\d+) new documents \(0 already present\)", out)
    assert built, out
    n_docs = int(built.group(1))
    assert n_docs >= 300  # the 300 passages plus the README chunks
    assert "#   hybrid  bm25  vector  found by" in out
    # The exact-code query finds its passage at rank 1, through both legs.
    assert has_line(r"^\s+1\s+[\d.]+\s+1\s+\d+\s+both\s+kb-0031\*", out), out
    summary = re.search(
        r"hit@5 over (\d+) queries: hybrid ([\d.]+) \| bm25 only ([\d.]+) \| vector only ([\d.]+)",
        out,
    )
    assert summary, out
    assert int(summary.group(1)) >= 10
    assert all(0.5 <= float(summary.group(i)) <= 1.0 for i in (2, 3, 4))
    assert "embedding" in first.stderr  # the progress bar

    second = run_example("demo.py", model_dir, "--index", str(index), "--query", "E-4471")
    assert f"indexed 0 new documents ({n_docs} already present)" in second.stdout
    assert f"reopened {index}" in second.stdout
    assert has_line(r"^\s+1\s+[\d.]+\s+1\s+\d+\s+both\s+kb-003[12]", second.stdout)
    assert "hit@5" not in second.stdout  # --query replaces the sample queries and summary


def test_lcel_rag_chain(model_dir: Path) -> None:
    out = run_example("lcel_rag_chain.py", model_dir).stdout
    assert "answer (chain):        (fake LLM) According to [kb-0031]" in out
    assert "answer (with sources): (fake LLM)" in out
    context = out.split("context sent to the LLM:", 1)[1]
    assert "[kb-0031] NX-220 error E-4471" in context
    assert "[kb-0031] NX-220 error E-4471  hybrid=" in out  # listed as a source


def test_yaml_config(model_dir: Path) -> None:
    out = run_example("yaml_config.py", model_dir).stdout
    assert "from_config: fusion=rrf weights=(0.4, 0.6) k=3; added 40 documents" in out
    assert "-> 3 results (k=3)" in out
    assert "with LANGCHAIN_HYBRID_FUSION__K=2: k=2, 40 documents reopened" in out
    assert "-> 2 results (k=2)" in out
    assert "unknown key 'fusion.wieghts'" in out
    assert re.search(r"typo\.yaml:2: unknown key", out)


def test_async_usage(model_dir: Path) -> None:
    out = run_example("async_usage.py", model_dir).stdout
    assert "4 queries with asyncio.gather" in out
    assert '"Growing Brandywine tomatoes"\n    kb-0001 ' in out
    assert '{"$and": [{"topic": ' in out
    assert re.search(r"all [1-5] results match the filter: True", out)


def test_callbacks_show_nested_leg_runs(model_dir: Path) -> None:
    out = run_example("callbacks.py", model_dir).stdout
    sync, asynchronous = out.split("ainvoke:")
    for section in (sync, asynchronous):
        parent = has_line(r"^start HybridRetriever\s+run=(\w+)", section)
        assert parent, section
        for leg in ("bm25", "vector"):
            assert has_line(rf"^  start {leg}\s+run=\w+ parent={parent.group(1)}", section)
            assert has_line(rf"^  end   {leg}\s+run=\w+\s+[\d.]+ ms", section)
        assert has_line(r"^end   HybridRetriever\s+run=\w+\s+[\d.]+ ms  3 docs", section)


@pytest.mark.server
def test_client_server(model_dir: Path) -> None:
    out = run_example("client_server.py", model_dir).stdout
    assert re.search(r"chroma run listening on 127\.0\.0\.1:\d+", out)
    assert "added 40 documents; the server holds 40" in out
    assert re.search(r'query "Blossom end rot and calcium":\n  kb-0002 ', out)
    assert "second client: 40 documents in BM25, top result kb-0002" in out
    assert "chroma server stopped" in out
