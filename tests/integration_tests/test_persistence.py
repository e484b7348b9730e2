"""Persistent Chroma on disk with the real model: reopen in a new process, same results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from langchain_core.documents import Document

from langchain_hybrid import HybridRetriever, MiniLMEmbeddings

pytestmark = pytest.mark.model

QUERIES = ["router error code after firmware update", "how long to steep cold brew", "star"]


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory,
    minilm: MiniLMEmbeddings,
    passages: list[dict[str, object]],
) -> tuple[Path, dict[str, list[tuple[str, int | None, int | None]]]]:
    """A persisted index of 80 demo passages, built once for the module, and its answers."""
    directory = tmp_path_factory.mktemp("persist")
    docs = [
        Document(
            id=str(p["_id"]),
            page_content=f"{p['title']}\n{p['text']}",
            metadata=dict(p["metadata"]),  # type: ignore[call-overload]
        )
        for p in passages[::4][:80]
    ]
    retriever = HybridRetriever.from_documents(
        docs, embedding=minilm, persist_directory=directory, collection_name="kb", k=5
    )
    answers = {
        q: [
            (str(d.id), d.metadata["bm25_rank"], d.metadata["vector_rank"])
            for d in retriever.invoke(q)
        ]
        for q in QUERIES
    }
    return directory, answers


def test_reopen_in_a_new_process_gives_the_same_results(
    built: tuple[Path, dict[str, list[tuple[str, int | None, int | None]]]], model_dir: Path
) -> None:
    directory, answers = built
    script = textwrap.dedent(
        f"""
        import json, logging
        from langchain_hybrid import HybridRetriever, MiniLMEmbeddings

        class Counting(MiniLMEmbeddings):
            def embed_documents(self, texts):
                if len(texts) != 1:  # embed_query embeds its one text through here
                    raise SystemExit("re-embedded documents on load")
                return super().embed_documents(texts)

        logging.basicConfig(level=logging.WARNING)
        r = HybridRetriever.load({str(directory)!r}, collection_name="kb",
                                 embedding=Counting(model_dir={str(model_dir)!r}), k=5)
        out = {{q: [(d.id, d.metadata["bm25_rank"], d.metadata["vector_rank"])
                   for d in r.invoke(q)] for q in {QUERIES!r}}}
        print(json.dumps(out))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert result.returncode == 0, result.stderr
    assert "rebuilt" not in result.stderr  # the saved BM25 index was current: no re-tokenizing
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert got == {q: [list(t) for t in a] for q, a in answers.items()}


def test_real_model_finds_paraphrases_and_exact_codes(
    built: tuple[Path, dict[str, list[tuple[str, int | None, int | None]]]],
) -> None:
    _, answers = built
    for hits in answers.values():
        assert len(hits) == 5
        assert any(v is not None for _, _, v in hits)
