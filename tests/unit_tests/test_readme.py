"""The README's promises: every ```python block runs as shown, and the Python API behaves as
the README says (deterministic ids, the same arguments for every factory).

Blocks run in order, each in a fresh namespace holding this documented preamble, inside a
temporary working directory that holds a copy of ``examples/hybrid.yaml`` (so paths in the
README, relative to the repository root, work there too):

* ``docs``: three ``Document``s (router error E-4471, coffee, garden), with ``source`` and
  ``year`` metadata; ``more_docs``: two more;
* ``emb``: a deterministic bag-of-words embedding (``HashEmbeddings``);
* ``retriever``: an in-memory ``HybridRetriever`` over ``docs`` with ``emb``;
* ``chain``: ``retriever`` itself (any runnable taking the question); ``q``: a question.

Blocks that call the default model get the real all-MiniLM-L6-v2 (``LANGCHAIN_HYBRID_MODEL_DIR``
points at it). A block that starts a metrics server gets ``port=0`` instead of its fixed port
(a free port), and the server is closed after the block; nothing else is changed.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from helpers import HashEmbeddings
from langchain_core.documents import Document

from langchain_hybrid import ConfigError, HybridRetriever

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
FIXED_PORT = re.compile(r"\bport=\d+")


def python_blocks() -> list[tuple[int, str]]:
    """Every ```python block of the README, with the line its code starts on."""
    blocks: list[tuple[int, str]] = []
    current: list[str] | None = None
    start = 0
    for number, line in enumerate(README.read_text(encoding="utf-8").splitlines(), start=1):
        if current is None and line.strip() == "```python":
            current, start = [], number + 1
        elif current is not None and line.strip() == "```":
            blocks.append((start, "\n".join(current) + "\n"))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def preamble() -> dict[str, Any]:
    """The names README blocks may use without defining them (see the module docstring)."""
    emb = HashEmbeddings()
    docs = _docs()
    retriever = HybridRetriever.from_documents(
        docs, emb, collection_name=f"readme-{uuid.uuid4().hex[:8]}"
    )
    return {
        "docs": docs,
        "more_docs": [
            Document(
                "Firmware 2.1 fixes the E-4471 error.", metadata={"source": "blog", "year": 2025}
            ),
            Document("Tomatoes need full sun.", metadata={"source": "blog", "year": 2022}),
        ],
        "emb": emb,
        "retriever": retriever,
        "chain": retriever,
        "q": "router error E-4471",
    }


def _docs() -> list[Document]:
    return [
        Document("The NX-220 router shows error E-4471 when its firmware is outdated.",
                 metadata={"source": "faq", "year": 2024}),
        Document("Espresso needs a fine grind and nine bar of pressure.",
                 metadata={"source": "blog", "year": 2023}),
        Document("Water tomatoes deeply twice a week during hot summers.",
                 metadata={"source": "faq", "year": 2025}),
    ]  # fmt: skip


# ---------------------------------------------------------------------- README blocks
def test_the_readme_has_python_blocks() -> None:
    blocks = python_blocks()
    assert len(blocks) >= 3
    assert all("await " not in code.split("async def", 1)[0] for _, code in blocks), (
        "a top-level await does not run as shown: put it in an async def"
    )


@pytest.mark.model
@pytest.mark.parametrize(
    ("line", "code"), [pytest.param(n, code, id=f"README.md:{n}") for n, code in python_blocks()]
)
def test_readme_python_block_runs_as_shown(
    line: int, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_dir: Path
) -> None:
    """Each block runs in a fresh directory holding examples/hybrid.yaml, as in a clone."""
    (tmp_path / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "hybrid.yaml", tmp_path / "examples" / "hybrid.yaml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LANGCHAIN_HYBRID_MODEL_DIR", str(model_dir))
    for name in ("LANGCHAIN_HYBRID_CONFIG", "LANGCHAIN_HYBRID_STORE__PATH"):
        monkeypatch.delenv(name, raising=False)
    namespace = preamble()
    if "serve_metrics(" in code:
        code = FIXED_PORT.sub("port=0", code)  # a free port: tests run side by side
    try:
        exec(compile(code, f"README.md:{line}", "exec"), namespace)  # noqa: S102 - the point
    finally:
        server = namespace.get("server")
        if server is not None and hasattr(server, "close"):
            server.close()


@pytest.mark.model
def test_the_quickstart_twice_adds_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_dir: Path
) -> None:
    line, quickstart = python_blocks()[0]
    assert "from_documents(docs" in quickstart
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LANGCHAIN_HYBRID_MODEL_DIR", str(model_dir))
    counts = []
    for _ in range(2):
        namespace: dict[str, Any] = {}
        exec(compile(quickstart, f"README.md:{line}", "exec"), namespace)  # noqa: S102
        counts.append(namespace["retriever"].store.count())
    assert counts[0] == counts[1] == len(namespace["docs"])
    assert namespace["hits"][0].metadata["source"] == "faq"


def test_the_demo_names_the_files_it_indexes(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("demo", ROOT / "examples" / "demo.py")
    assert spec is not None
    assert spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    (tmp_path / "README.md").write_text("# Title\n\nSome text.\n", encoding="utf-8")
    rows = demo.passages()
    line = demo.corpus_line(demo.doc_chunks(tmp_path), rows)
    assert line == f"corpus: 1 chunks of README.md + {len(rows)} passages"
    assert "docs/" not in line, "no docs/ folder, so none is named"
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text("# Guide\n\nMore.\n", encoding="utf-8")
    line = demo.corpus_line(demo.doc_chunks(tmp_path), rows)
    assert line.startswith("corpus: 2 chunks of README.md, docs/guide.md + ")


# ---------------------------------------------------------------------- the Python API
def test_documents_without_ids_get_deterministic_ids(tmp_path: Path) -> None:
    """Adding the same documents twice (the quickstart run twice) replaces, never duplicates."""
    emb = HashEmbeddings()
    docs = [*_docs(), Document("The NX-220 router shows error E-4471 when its firmware is "
                               "outdated.", metadata={"source": "faq", "year": 2024})]  # fmt: skip
    first = HybridRetriever.from_documents(docs, emb, persist_directory=tmp_path / "index")
    ids = first.bm25.ids
    assert len(ids) == 4, "a repeated chunk of one source gets its own id"
    again = HybridRetriever.from_documents(docs, emb, persist_directory=tmp_path / "index")
    assert sorted(again.bm25.ids) == sorted(ids)
    assert again.store.count() == 4
    reordered = HybridRetriever.from_documents(
        [Document("A new passage.", metadata={"source": "faq"}), *docs[::-1]],
        emb,
        persist_directory=tmp_path / "index",
    )
    assert reordered.store.count() == 5, "reordering or adding documents keeps the other ids"
    explicit = Document("kept as given", id="my-id")
    assert reordered.add_documents([explicit]) == ["my-id"]


@pytest.mark.parametrize(
    "extra",
    [
        {"cache": False},
        {"cache": True, "k": 2},
        {"bm25_params": None, "fetch_k": 10},
    ],
)
def test_every_factory_takes_the_same_arguments(tmp_path: Path, extra: dict[str, object]) -> None:
    emb = HashEmbeddings()
    config = {"store": {"path": str(tmp_path / "index"), "collection": "kb"}}
    built = HybridRetriever.from_documents(
        _docs(), emb, persist_directory=tmp_path / "index", collection_name="kb", **extra
    )
    loaded = HybridRetriever.load(tmp_path / "index", collection_name="kb", embedding=emb, **extra)
    configured = HybridRetriever.from_config(config, emb, **extra)
    for retriever in (built, loaded, configured):
        assert (retriever.cache is None) == (extra.get("cache") is False)
        assert retriever.k == extra.get("k", 4)
        assert len(retriever.invoke("router error E-4471")) == min(retriever.k, 3)


def test_an_unknown_factory_argument_is_a_config_error(tmp_path: Path) -> None:
    config = {"store": {"path": str(tmp_path / "index"), "collection": "kb"}}
    with pytest.raises(ConfigError, match="chache"):
        HybridRetriever.from_config(config, HashEmbeddings(), chache=False)
    assert not (tmp_path / "index").exists(), "a rejected argument creates nothing"
