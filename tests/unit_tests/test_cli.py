"""The command line, run in-process through ``main([...])`` on a tiny corpus in ``tmp_path``.

Most tests use the deterministic ``HashEmbeddings`` (patched in for the configured model, so
they can count what is embedded); tests marked ``model`` run the real all-MiniLM-L6-v2.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml
from helpers import HashEmbeddings

from langchain_hybrid import cli
from langchain_hybrid.bm25 import BM25Index
from langchain_hybrid.config import HybridConfig, make_embedding
from langchain_hybrid.retrievers import HybridRetriever
from langchain_hybrid.stores import ChromaStore, StoreConfig

ROUTER_MD = """\
# Router guide

The NX-220 router shows error E-4471 when its firmware is outdated.

## Reset

Hold the reset button for ten seconds.
"""
FILES = {
    "docs/router.md": ROUTER_MD,
    "docs/coffee.txt": "Espresso needs a fine grind and nine bar of pressure.",
    "docs/garden.txt": "Water tomatoes deeply twice a week during hot summers.",
    "docs/python.md": "Python generators yield values lazily, one at a time.",
}
CORPUS_CHUNKS = 5  # router.md has two sections
GLOBAL = ["--path", "index", "--collection", "kb"]
SUMMARY = re.compile(
    r"^(?P<files>\d+) files(?: \((?P<skipped>\d+) skipped\))?, (?P<chunks>\d+) chunks: "
    r"(?P<added>\d+) added, (?P<unchanged>\d+) unchanged, (?P<deleted>\d+) deleted"
    r"(?: \((?P<missing>\d+) from (?P<missing_files>\d+) files? no longer found\))? "
    r"in \d+\.\d+s$"
)


class Run(NamedTuple):
    code: int
    out: str
    err: str


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in tmp_path with no settings from the environment."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name == "LANGCHAIN_HYBRID_CONFIG" or (
            name.startswith("LANGCHAIN_HYBRID_") and "__" in name
        ):
            monkeypatch.delenv(name)


@pytest.fixture
def embedding(monkeypatch: pytest.MonkeyPatch) -> HashEmbeddings:
    """Replace the configured embedding model by a counting, deterministic one."""
    emb = HashEmbeddings()
    monkeypatch.setattr(cli, "make_embedding", lambda _settings: emb)
    return emb


@pytest.fixture
def corpus() -> dict[str, str]:
    for name, text in FILES.items():
        write(name, text)
    return dict(FILES)


def write(name: str, text: str) -> None:
    path = Path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> Run:
    code = cli.main([*GLOBAL, *args])
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err)


def summary(result: Run) -> dict[str, int]:
    assert result.code == 0, result.err
    match = SUMMARY.match(result.out.strip().splitlines()[-1])
    assert match, result.out
    return {k: int(v or 0) for k, v in match.groupdict().items()}


def stored_ids() -> list[str]:
    return sorted(BM25Index.load(Path("index/bm25/kb")).ids)


def fid(name: str, chunk: int | None = None) -> str:
    """The start of the ids of a file's chunks: its resolved path, then chunk number."""
    return f"{Path(name).resolve().as_posix()}#" + ("" if chunk is None else f"{chunk}:")


def meta(name: str, chunk: int, **extra: object) -> dict[str, object]:
    """The metadata the loaders give a chunk of the file ``name`` (indexed from here)."""
    return {"source": name, "source_path": Path(name).resolve().as_posix(), "chunk": chunk, **extra}


def query_json(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, object]]:
    result = run(capsys, "query", *args, "--json")
    assert result.code == 0, result.err
    rows: list[dict[str, object]] = json.loads(result.out)
    return rows


def assert_one_error_line(result: Run, code: int, text: str) -> None:
    assert result.code == code
    assert result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("langchain-hybrid: error: ")
    assert text in lines[0]
    assert "Traceback" not in result.err


# ---------------------------------------------------------------------- index + query
@pytest.mark.usefixtures("corpus")
def test_index_then_query_table_and_json(
    capsys: pytest.CaptureFixture[str], embedding: HashEmbeddings
) -> None:
    counts = summary(run(capsys, "index", "docs"))
    assert counts == {
        "files": 4,
        "skipped": 0,
        "chunks": CORPUS_CHUNKS,
        "added": CORPUS_CHUNKS,
        "unchanged": 0,
        "deleted": 0,
        "missing": 0,
        "missing_files": 0,
    }
    assert embedding.embedded_documents == CORPUS_CHUNKS

    table = run(capsys, "query", "router error E-4471", "-k", "3")
    assert table.code == 0, table.err
    header, first, *rest = table.out.splitlines()
    assert header.split() == ["#", "score", "bm25", "vector", "source", "text"]
    assert first.split()[0] == "1"
    assert first.split()[3] == "1", "the router chunk is the vector leg's first hit too"
    assert "docs/router.md" in first
    assert "The NX-220 router shows error E-4471" in first
    assert len(rest) == 2

    rows = query_json(capsys, "router error E-4471", "-k", "3")
    assert len(rows) == 3
    top = rows[0]
    assert set(top) == {
        "id",
        "score",
        "bm25_rank",
        "bm25_score",
        "vector_rank",
        "vector_score",
        "metadata",
        "text",
    }
    assert str(top["id"]).startswith(fid("docs/router.md", 0))
    assert top["bm25_rank"] == 1
    assert top["metadata"] == meta("docs/router.md", 0, header_path="Router guide")
    assert "E-4471" in str(top["text"])
    scores = [float(str(r["score"])) for r in rows]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.usefixtures("corpus")
def test_reindex_unchanged_files_embeds_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], embedding: HashEmbeddings
) -> None:
    summary(run(capsys, "index", "docs"))
    before_ids = stored_ids()
    before = json.loads(run(capsys, "stats", "--json").out)
    embedded = embedding.embedded_documents

    counts = summary(run(capsys, "index", "docs"))
    assert (counts["added"], counts["unchanged"], counts["deleted"]) == (0, CORPUS_CHUNKS, 0)
    assert embedding.embedded_documents == embedded
    after = json.loads(run(capsys, "stats", "--json").out)
    assert after["chroma"]["generation"] == before["chroma"]["generation"]
    assert stored_ids() == before_ids


@pytest.mark.usefixtures("corpus")
def test_changed_file_replaces_only_its_changed_chunks(
    capsys: pytest.CaptureFixture[str], embedding: HashEmbeddings
) -> None:
    summary(run(capsys, "index", "docs"))
    before = stored_ids()
    embedded = embedding.embedded_documents
    write("docs/router.md", ROUTER_MD.replace("ten seconds", "thirty seconds"))

    counts = summary(run(capsys, "index", "docs"))
    assert (counts["added"], counts["unchanged"], counts["deleted"]) == (1, 4, 1)
    assert embedding.embedded_documents == embedded + 1
    after = stored_ids()
    gone, new = set(before) - set(after), set(after) - set(before)
    assert len(gone) == len(new) == 1
    assert next(iter(gone)).startswith(fid("docs/router.md", 1))
    assert next(iter(new)).startswith(fid("docs/router.md", 1))
    rows = query_json(capsys, "thirty seconds", "--mode", "bm25")
    assert [r["id"] for r in rows] == list(new)


@pytest.mark.usefixtures("corpus", "embedding")
def test_shrinking_file_deletes_its_old_chunks(capsys: pytest.CaptureFixture[str]) -> None:
    summary(run(capsys, "index", "docs"))
    write("docs/router.md", "# Router guide\n\nOnly one section now.\n")
    counts = summary(run(capsys, "index", "docs/router.md"))
    assert (counts["files"], counts["added"], counts["deleted"]) == (1, 1, 2)
    assert [i for i in stored_ids() if i.startswith(fid("docs/router.md"))] == [
        i for i in stored_ids() if i.startswith(fid("docs/router.md", 0))
    ]
    assert len(stored_ids()) == CORPUS_CHUNKS - 1


@pytest.mark.usefixtures("corpus")
def test_reindex_mirrors_the_folder_and_glob_asked_for(
    capsys: pytest.CaptureFixture[str], embedding: HashEmbeddings
) -> None:
    write("other/notes.txt", "Notes kept in another folder.")
    summary(run(capsys, "index", "docs", "other"))
    api_doc = HybridRetriever.from_config(
        {"store": {"path": str(Path("index").absolute()), "collection": "kb"}},
        embedding=embedding,
    )
    api_doc.add_documents([_doc("api-1", "added through the Python API, no source")])
    Path("docs/coffee.txt").unlink()
    Path("other/notes.txt").unlink()

    counts = summary(run(capsys, "index", "docs", "--keep-missing"))
    assert counts["deleted"] == 0, "--keep-missing keeps a vanished file's chunks"
    assert any(i.startswith(fid("docs/coffee.txt")) for i in stored_ids())

    counts = summary(run(capsys, "index", "docs", "--glob", "**/*.md"))
    assert counts["deleted"] == 0, "coffee.txt does not match the glob: not this run's business"

    counts = summary(run(capsys, "index", "docs"))
    assert (counts["files"], counts["deleted"], counts["unchanged"]) == (3, 1, 4)
    assert (counts["missing"], counts["missing_files"]) == (1, 1)
    ids = stored_ids()
    assert not any(i.startswith(fid("docs/coffee.txt")) for i in ids)
    assert any(i.startswith(fid("other/notes.txt")) for i in ids), "another folder: untouched"
    assert "api-1" in ids, "documents without a source are never deleted"


@pytest.mark.usefixtures("corpus")
def test_prune_removes_chunks_of_files_not_found_anywhere(
    capsys: pytest.CaptureFixture[str], embedding: HashEmbeddings
) -> None:
    summary(run(capsys, "index", "docs"))
    api_doc = HybridRetriever.from_config(
        {"store": {"path": str(Path("index").absolute()), "collection": "kb"}},
        embedding=embedding,
    )
    api_doc.add_documents([_doc("api-1", "added through the Python API, no source")])
    counts = summary(run(capsys, "index", "docs/garden.txt", "--prune"))
    assert counts["deleted"] == 4, "files outside this run's PATHs are pruned too"
    assert sorted(i.split("#")[0] for i in stored_ids()) == sorted(
        ["api-1", fid("docs/garden.txt").rstrip("#")]
    )
    result = run(capsys, "index", "docs", "--prune", "--keep-missing")
    assert result.code == 2
    assert "not allowed with argument" in result.err


@pytest.mark.usefixtures("corpus")
def test_ids_do_not_depend_on_the_working_directory(
    capsys: pytest.CaptureFixture[str], embedding: HashEmbeddings, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = Path.cwd()
    summary(run(capsys, "index", "docs"))
    ids = stored_ids()
    embedded = embedding.embedded_documents
    monkeypatch.chdir(home / "docs")
    code = cli.main(["--path", str(home / "index"), "--collection", "kb", "index", "."])
    out = capsys.readouterr().out
    assert code == 0
    assert f"{CORPUS_CHUNKS} unchanged, 0 deleted" in out, "same files, same ids: no copies"
    assert embedding.embedded_documents == embedded
    monkeypatch.chdir(home)
    assert stored_ids() == ids

    # the same layout in another folder: other files, other ids (no collision)
    shutil.copytree("docs", "copy/docs")
    counts = summary(run(capsys, "index", "copy/docs"))
    assert (counts["added"], counts["deleted"]) == (CORPUS_CHUNKS, 0)
    assert len(stored_ids()) == 2 * CORPUS_CHUNKS
    shown = query_json(capsys, "espresso", "--mode", "bm25", "-k", "2")
    assert {r["metadata"]["source"] for r in shown} == {  # type: ignore[index]
        "docs/coffee.txt",
        "copy/docs/coffee.txt",
    }, "source stays short and relative"


@pytest.mark.usefixtures("embedding")
def test_an_index_of_version_0_1_is_migrated_by_one_reindex(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """0.1 ids were `<source>#<n>:<hash>` with a cwd-relative source and no source_path."""
    write("docs/a.txt", "Alpha text about routers.")
    write("docs/b.txt", "Beta text about coffee.")
    emb = HashEmbeddings()
    old = HybridRetriever.from_config(
        {"store": {"path": str(Path("index").absolute()), "collection": "kb"}}, embedding=emb
    )
    old.add_documents(
        [
            cli.Document(
                id=f"docs/{name}#0:{'0' * 12}",
                page_content=text,
                metadata={"source": f"docs/{name}", "chunk": 0},
            )
            for name, text in [
                ("a.txt", "Alpha text about routers."),
                ("b.txt", "Beta text about coffee."),
                ("gone.txt", "A file deleted since."),
            ]
        ]
    )
    counts = summary(run(capsys, "index", "docs"))
    assert (counts["added"], counts["deleted"], counts["missing"]) == (2, 3, 1)
    ids = stored_ids()
    assert len(ids) == 2
    assert all(i.startswith((fid("docs/a.txt", 0), fid("docs/b.txt", 0))) for i in ids)


def _doc(doc_id: str, text: str) -> cli.Document:
    return cli.Document(id=doc_id, page_content=text)


@pytest.mark.usefixtures("embedding")
def test_beir_jsonl_keeps_ids(capsys: pytest.CaptureFixture[str]) -> None:
    records = [
        {"_id": "MED-10", "title": "Statins", "text": "Statin use and breast cancer survival."},
        {"_id": "MED-14", "title": "Vitamin D", "text": "Vitamin D deficiency in winter."},
        {"_id": "MED-20", "title": "", "text": "Exercise lowers blood pressure.", "metadata": {}},
    ]
    write("beir/corpus.jsonl", "\n".join(json.dumps(r) for r in records) + "\n")
    counts = summary(run(capsys, "index", "beir/corpus.jsonl"))
    assert (counts["chunks"], counts["added"]) == (3, 3)
    assert stored_ids() == ["MED-10", "MED-14", "MED-20"]
    rows = query_json(capsys, "vitamin winter", "--mode", "bm25", "-k", "1")
    assert rows[0]["id"] == "MED-14"
    assert rows[0]["text"] == "Vitamin D\nVitamin D deficiency in winter."
    assert rows[0]["metadata"] == meta("beir/corpus.jsonl", 1, title="Vitamin D")

    records[1]["text"] = "Vitamin D levels drop in winter."
    write("beir/corpus.jsonl", "\n".join(json.dumps(r) for r in records[:2]) + "\n")
    counts = summary(run(capsys, "index", "beir/corpus.jsonl"))
    assert (counts["added"], counts["unchanged"], counts["deleted"]) == (1, 1, 1)
    assert stored_ids() == ["MED-10", "MED-14"]
    rows = query_json(capsys, "levels drop", "--mode", "bm25")
    assert [r["id"] for r in rows] == ["MED-14"]


@pytest.mark.usefixtures("corpus", "embedding")
def test_batches_are_written_one_generation_each(capsys: pytest.CaptureFixture[str]) -> None:
    summary(run(capsys, "index", "docs", "--batch-size", "2"))
    stats = json.loads(run(capsys, "stats", "--json").out)
    assert stats["chroma"]["generation"] == 2 * 3  # 5 chunks in batches of 2; two bumps a write
    assert stats["chroma"]["documents"] == CORPUS_CHUNKS


@pytest.mark.usefixtures("embedding")
def test_chunk_size_option_splits_more(capsys: pytest.CaptureFixture[str]) -> None:
    write("long.txt", " ".join(f"word{i}" for i in range(100)))
    counts = summary(
        run(capsys, "index", "long.txt", "--chunk-size", "100", "--chunk-overlap", "0")
    )
    assert counts["chunks"] == 8
    rows = query_json(capsys, "word99", "--mode", "bm25")
    assert rows[0]["metadata"] == meta("long.txt", 7)


# ---------------------------------------------------------------------- query options
@pytest.mark.usefixtures("corpus", "embedding")
def test_filter_restricts_both_legs(capsys: pytest.CaptureFixture[str]) -> None:
    summary(run(capsys, "index", "docs"))
    where = json.dumps({"source": "docs/router.md"})
    rows = query_json(capsys, "water tomatoes router", "--filter", where, "-k", "5")
    assert len(rows) == 2
    assert {r["metadata"]["source"] for r in rows} == {"docs/router.md"}  # type: ignore[index]
    unfiltered = query_json(capsys, "water tomatoes router", "-k", "5")
    assert "docs/garden.txt" in {r["metadata"]["source"] for r in unfiltered}  # type: ignore[index]
    assert len(query_json(capsys, "router reset", "--mode", "bm25")) == 2
    rows = query_json(capsys, "router reset", "--filter", '{"chunk": {"$gt": 0}}', "--mode", "bm25")
    assert [r["metadata"]["header_path"] for r in rows] == ["Router guide > Reset"]  # type: ignore[index]


@pytest.mark.usefixtures("corpus", "embedding")
@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("{source: 1}", "--filter is not valid JSON"),
        ('["a"]', "--filter must be a JSON object, got list"),
        ('{"source": {"$like": "x"}}', "unknown operator '$like'"),
    ],
)
@pytest.mark.parametrize("mode", ["hybrid", "bm25", "vector"])
def test_bad_filter_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
    value: str,
    text: str,
    mode: str,
) -> None:
    summary(run(capsys, "index", "docs"))
    result = run(capsys, "query", "router", "--filter", value, "--mode", mode)
    assert_one_error_line(result, 2, text)


@pytest.mark.usefixtures("corpus", "embedding")
def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    summary(run(capsys, "index", "docs"))
    result = run(capsys, "--debug", "query", "router", "--filter", '{"a": {"$like": 1}}')
    assert result.code == 2
    assert "Traceback (most recent call last)" in result.err
    assert result.err.strip().splitlines()[-1].startswith("langchain-hybrid: error: unknown")


@pytest.mark.usefixtures("corpus")
def test_modes_bm25_and_vector_run_one_leg(
    capsys: pytest.CaptureFixture[str], embedding: HashEmbeddings
) -> None:
    summary(run(capsys, "index", "docs"))
    queries = embedding.embedded_queries
    bm25 = query_json(capsys, "espresso grind", "--mode", "bm25", "-k", "3")
    assert embedding.embedded_queries == queries, "the BM25 leg embeds nothing"
    assert [r["id"] for r in bm25] == [
        i for i in stored_ids() if i.startswith(fid("docs/coffee.txt"))
    ]
    assert bm25[0]["bm25_rank"] == 1
    assert bm25[0]["score"] == bm25[0]["bm25_score"]
    assert bm25[0]["vector_rank"] is None
    assert bm25[0]["vector_score"] is None

    vector = query_json(capsys, "espresso grind", "--mode", "vector", "-k", "3")
    assert embedding.embedded_queries == queries + 1
    assert len(vector) == 3, "the vector leg ranks every document"
    assert [r["vector_rank"] for r in vector] == [1, 2, 3]
    assert all(r["bm25_rank"] is None and r["score"] == r["vector_score"] for r in vector)
    assert str(vector[0]["id"]).startswith(fid("docs/coffee.txt"))

    table = run(capsys, "query", "espresso grind", "--mode", "bm25")
    row = table.out.splitlines()[1].split()
    assert (row[0], row[2], row[3], row[4]) == ("1", "1", "-", "docs/coffee.txt")


@pytest.mark.usefixtures("corpus", "embedding")
def test_global_options_may_follow_the_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    summary(run(capsys, "index", "docs"))
    code = cli.main(["query", "espresso", "--json", "--path", "index", "--collection", "kb"])
    rows = json.loads(capsys.readouterr().out)
    assert code == 0
    assert str(rows[0]["id"]).startswith(fid("docs/coffee.txt"))


@pytest.mark.usefixtures("embedding")
def test_query_without_an_index_is_a_runtime_error(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "query", "anything")
    assert_one_error_line(result, 1, "no index at index")
    assert not Path("index").exists(), "a query must not create an index"


@pytest.mark.usefixtures("corpus", "embedding")
def test_no_results_is_said_plainly(capsys: pytest.CaptureFixture[str]) -> None:
    summary(run(capsys, "index", "docs"))
    result = run(capsys, "query", "zeppelin", "--mode", "bm25")
    assert (result.code, result.out) == (0, "no results\n")
    assert query_json(capsys, "zeppelin", "--mode", "bm25") == []


# ---------------------------------------------------------------------- index errors
@pytest.mark.usefixtures("corpus", "embedding")
def test_missing_path_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "index", "docs", "nope/missing.md")
    assert_one_error_line(result, 2, "no such file or directory: nope/missing.md")
    assert not Path("index").exists(), "nothing is written when a path is missing"


@pytest.mark.usefixtures("corpus", "embedding")
@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["notes.docx"], "unsupported file type '.docx'"),
        (["docs", "--glob", "**/*.rst"], "no supported files under docs matching '**/*.rst'"),
        (["docs", "--chunk-size", "100", "--chunk-overlap", "100"], "must be smaller"),
    ],
)
def test_index_usage_errors(
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    text: str,
) -> None:
    write("notes.docx", "x")
    assert_one_error_line(run(capsys, "index", *args), 2, text)


def test_argparse_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["index", "docs", "--batch-size", "0"]) == 2
    assert "expected an integer >= 1, got '0'" in capsys.readouterr().err
    assert cli.main([]) == 2
    assert "required: COMMAND" in capsys.readouterr().err
    assert cli.main(["query", "x", "--mode", "fuzzy"]) == 2


@pytest.mark.usefixtures("corpus")
def test_invalid_jsonl_is_a_runtime_error_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], embedding: HashEmbeddings
) -> None:
    write("docs/broken.jsonl", '{"text": "ok"}\n{oops\n')
    result = run(capsys, "index", "docs")
    assert_one_error_line(result, 1, "docs/broken.jsonl:2: invalid JSON")
    assert embedding.embedded_documents == 0


@pytest.mark.usefixtures("corpus", "embedding")
def test_pdf_without_pypdf_is_skipped_with_a_warning(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pypdf", None)
    write("docs/manual.pdf", "%PDF-1.4")
    result = run(capsys, "index", "docs")
    counts = summary(result)
    assert (counts["files"], counts["skipped"], counts["chunks"]) == (5, 1, CORPUS_CHUNKS)
    assert "langchain-hybrid: warning: skipping docs/manual.pdf: reading PDF needs pypdf" in (
        result.err
    )


@pytest.mark.usefixtures("corpus", "embedding")
def test_mirroring_and_prune_keep_chunks_of_skipped_files(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class PdfReader:
        def __init__(self, _path: str) -> None:
            self.pages = [types.SimpleNamespace(extract_text=lambda: "Manual page one.")]

    monkeypatch.setitem(sys.modules, "pypdf", types.SimpleNamespace(PdfReader=PdfReader))
    write("docs/manual.pdf", "%PDF-1.4")
    assert summary(run(capsys, "index", "docs"))["added"] == CORPUS_CHUNKS + 1
    pdf_ids = [i for i in stored_ids() if i.startswith(fid("docs/manual.pdf", 0))]
    assert len(pdf_ids) == 1

    monkeypatch.setitem(sys.modules, "pypdf", None)
    for extra in ([], ["--prune"]):
        counts = summary(run(capsys, "index", "docs", *extra))
        assert (counts["skipped"], counts["deleted"]) == (1, 0)
        assert pdf_ids[0] in stored_ids()


@pytest.mark.usefixtures("corpus", "embedding")
def test_interrupt_exits_130(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "load_file", interrupted)
    result = run(capsys, "index", "docs")
    assert result.code == 130
    assert "interrupted" in result.err
    assert "Traceback" not in result.err


@pytest.mark.usefixtures("corpus", "embedding")
def test_verbose_logs_info_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    quiet = run(capsys, "index", "docs")
    assert "info" not in quiet.err
    loud = run(capsys, "-v", "index", "docs")
    assert "langchain-hybrid: info: 5 chunks: 0 to write, 5 unchanged" in loud.err


@pytest.mark.usefixtures("corpus", "embedding")
def test_progress_lines_when_stderr_is_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "index", "docs", "--batch-size", "2")
    assert summary(result)["added"] == CORPUS_CHUNKS
    lines = [line for line in result.err.splitlines() if ": progress: " in line]
    assert lines[0] == (
        "langchain-hybrid: progress: indexing: 4 files, 0/5 chunks (0%), -- passages/s, ETA --"
    )
    assert re.fullmatch(
        r"langchain-hybrid: progress: indexing: 4 files, 5/5 chunks \(100%\), "
        r"\d+\.\d passages/s, ETA 0:00",
        lines[-1],
    ), lines[-1]
    assert "\r" not in result.err, "no terminal: log lines, not a rewritten line"


@pytest.mark.usefixtures("corpus")
def test_indexing_without_the_model_fails_before_writing(
    capsys: pytest.CaptureFixture[str], embedding: HashEmbeddings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Querying may degrade to BM25 without the model; indexing never writes BM25 alone."""
    monkeypatch.setattr(cli, "make_embedding", make_embedding)  # the configured model
    result = run(capsys, "index", "docs", "--model-dir", "no-such-model")
    assert_one_error_line(result, 1, "no-such-model")
    assert not Path("index").exists(), "nothing is created without the model"

    monkeypatch.setattr(cli, "make_embedding", lambda _settings: embedding)
    summary(run(capsys, "index", "docs"))
    monkeypatch.setattr(cli, "make_embedding", make_embedding)
    result = run(capsys, "index", "docs", "--model-dir", "no-such-model")
    assert_one_error_line(result, 1, "no-such-model")  # even with nothing to embed


@pytest.mark.usefixtures("corpus", "embedding")
def test_html_and_rst_files_are_indexed(capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(Path(__file__).parent / "data" / "real-docs", "manuals")
    counts = summary(run(capsys, "index", "manuals", "--glob", "*.*[lt]"))
    assert counts["files"] == 2, "the .rst and .html files, not NOTICE.md"
    assert counts["chunks"] > 10
    rows = query_json(capsys, "matplotlib maskedarray", "--mode", "bm25", "-k", "1")
    assert rows[0]["metadata"]["source"] == "manuals/numpy-ma-README.rst"  # type: ignore[index]
    assert rows[0]["metadata"]["header_path"] == (  # type: ignore[index]
        "A guide to masked arrays in NumPy > Using maskedarray with matplotlib"
    )
    rows = query_json(capsys, "ffi_call puts", "--mode", "bm25", "-k", "1")
    assert rows[0]["metadata"]["source"] == "manuals/libffi-Simple-Example.html"  # type: ignore[index]
    assert str(rows[0]["metadata"]["title"]).startswith("Simple Example (libffi")  # type: ignore[index]
    assert "<pre" not in str(rows[0]["text"])


@pytest.mark.usefixtures("corpus", "embedding")
def test_a_filter_on_a_key_no_document_has_warns_naming_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    summary(run(capsys, "index", "docs"))
    where = json.dumps({"$and": [{"lang": "en"}, {"chunk": {"$gte": 0}}]})
    result = run(capsys, "query", "router", "--filter", where)
    assert (result.code, result.out) == (0, "no results\n")
    warnings = [line for line in result.err.splitlines() if "warning" in line]
    assert len(warnings) == 1, result.err
    assert "no document has the metadata key 'lang'" in warnings[0]
    assert "chunk, header_path, source, source_path" in warnings[0]
    empty = run(capsys, "query", "router", "--filter", '{"source": "nowhere.md"}')
    assert (empty.out, empty.err) == ("no results\n", ""), "a known key: no warning"


# ---------------------------------------------------------------------- stats
@pytest.mark.usefixtures("corpus", "embedding")
def test_stats_numbers_are_consistent(capsys: pytest.CaptureFixture[str]) -> None:
    summary(run(capsys, "index", "docs"))
    result = run(capsys, "stats", "--json")
    assert result.code == 0, result.err
    stats = json.loads(result.out)
    index = BM25Index.load(Path("index/bm25/kb"))
    assert stats["collection"] == "kb"
    assert stats["chroma"]["documents"] == stats["bm25"]["documents"] == CORPUS_CHUNKS
    assert stats["chroma"]["generation"] == stats["bm25"]["generation"] == 2  # one write
    assert stats["bm25"]["vocabulary_size"] == index.vocabulary_size > 10
    assert stats["bm25"]["avgdl"] == pytest.approx(index.avgdl)
    assert stats["in_sync"] is True
    assert stats["sync_problem"] is None
    bm25_bytes = sum(f.stat().st_size for f in Path("index/bm25/kb").rglob("*") if f.is_file())
    assert stats["bm25"]["bytes"] == bm25_bytes
    all_bytes = sum(f.stat().st_size for f in Path("index").rglob("*") if f.is_file())
    assert stats["chroma"]["directory_bytes"] == all_bytes - bm25_bytes > 0
    assert stats["settings"]["fusion"]["k"] == 4
    assert stats["settings"]["store"] == {
        "mode": "persistent",
        "location": "index",
        "collection": "kb",
    }

    text = run(capsys, "stats").out
    assert re.search(r"^documents\s+chroma 5, bm25 5$", text, re.MULTILINE)
    assert re.search(r"^in sync\s+yes$", text, re.MULTILINE)

    Path("index/bm25/kb/manifest.json").unlink()
    stats = json.loads(run(capsys, "stats", "--json").out)
    assert stats["bm25"]["status"] == "missing"
    assert stats["bm25"]["documents"] is None
    assert stats["in_sync"] is False
    assert re.search(
        r"^in sync\s+no \(BM25 index missing\)$", run(capsys, "stats").out, re.MULTILINE
    )


@pytest.mark.usefixtures("corpus", "embedding")
def test_stats_reports_a_stale_bm25_index(capsys: pytest.CaptureFixture[str]) -> None:
    summary(run(capsys, "index", "docs"))
    saved = Path("index/bm25/kb")
    shutil.copytree(saved, "bm25-backup")
    summary(run(capsys, "index", "docs/garden.txt", "--prune"))
    shutil.rmtree(saved)
    shutil.copytree("bm25-backup", saved)
    stats = json.loads(run(capsys, "stats", "--json").out)
    assert (stats["chroma"]["documents"], stats["bm25"]["documents"]) == (1, CORPUS_CHUNKS)
    assert (stats["chroma"]["generation"], stats["bm25"]["generation"]) == (4, 2)
    assert stats["in_sync"] is False
    assert stats["sync_problem"] == "BM25 index stale"


@pytest.mark.usefixtures("corpus", "embedding")
def test_stats_names_each_sync_problem(capsys: pytest.CaptureFixture[str]) -> None:
    summary(run(capsys, "index", "docs"))

    def problem(*args: str) -> tuple[bool, str | None]:
        stats = json.loads(run(capsys, *args, "stats", "--json").out)
        return stats["in_sync"], stats["sync_problem"]

    write("k1.yaml", "bm25:\n  k1: 1.7\n")
    assert problem("--config", "k1.yaml") == (False, "BM25 settings changed")
    store = ChromaStore(StoreConfig(path="index", collection="kb"))
    assert store.begin_write() == 3  # a write under way in another writer
    assert problem() == (False, "a write is under way (generation 3)")
    assert store.end_write() == 4  # completed: the saved BM25 index (at 2) is behind it
    assert problem() == (False, "BM25 index stale")
    manifest = Path("index/bm25/kb/manifest.json")
    manifest.write_text("{not json", encoding="utf-8")
    in_sync, corrupt = problem()
    assert not in_sync
    assert corrupt is not None
    assert corrupt.startswith("BM25 index corrupt: ")
    stats = json.loads(run(capsys, "stats", "--json").out)
    assert stats["bm25"]["documents"] is None
    assert stats["chroma"] == {**stats["chroma"], "documents": CORPUS_CHUNKS, "generation": 4}


def test_stats_of_an_in_memory_index_reports_bm25_as_built_from_chroma(
    collection_name: str,
) -> None:
    settings = HybridConfig(store=StoreConfig(mode="ephemeral", collection=collection_name))
    texts = ["espresso needs a fine grind", "routers forward packets", "tomatoes need water"]
    retriever = HybridRetriever.from_texts(
        texts, embedding=HashEmbeddings(), store_config=settings.store
    )
    report = cli.collect_stats(settings, retriever.store)
    assert report["bm25"]["status"] == "in memory (built from Chroma when opened)"
    assert report["bm25"]["path"] is None
    assert report["bm25"]["bytes"] is None
    assert report["bm25"]["documents"] == report["chroma"]["documents"] == len(texts)
    assert report["bm25"]["generation"] == report["chroma"]["generation"] == 2  # one write
    assert report["chroma"]["directory"] is None
    assert (report["in_sync"], report["sync_problem"]) == (True, None)


def test_stats_without_an_index(capsys: pytest.CaptureFixture[str]) -> None:
    assert_one_error_line(run(capsys, "stats"), 1, "no index at index")


# ---------------------------------------------------------------------- config
def test_config_show_masks_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    write(
        "secret.yaml",
        "store:\n"
        "  mode: http\n"
        "  token: s3cret-token\n"
        "  headers: {X-Chroma-Token: h3ader}\n"
        "embedding:\n"
        "  options: {api_key: k3y, timeout: 5}\n",
    )
    result = run(capsys, "--config", "secret.yaml", "config", "show")
    assert result.code == 0, result.err
    for secret in ("s3cret", "h3ader", "k3y"):
        assert secret not in result.out
    shown = yaml.safe_load(result.out)
    assert shown["store"]["token"] == "***"  # noqa: S105 - the mask, not a secret
    assert shown["store"]["headers"] == {"X-Chroma-Token": "***"}
    assert shown["embedding"]["options"] == {"api_key": "***", "timeout": 5}
    assert shown["store"]["mode"] == "http"
    assert shown["store"]["path"] == "index", "--path overrides the file"
    assert shown["store"]["collection"] == "kb"
    assert shown["fusion"]["weights"] == [0.5, 0.5]


def test_config_show_applies_environment_overrides(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANGCHAIN_HYBRID_FUSION__K", "9")
    shown = yaml.safe_load(run(capsys, "config", "show").out)
    assert shown["fusion"]["k"] == 9
    assert shown["store"]["token"] is None


def test_config_show_names_the_model_folder_in_use(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANGCHAIN_HYBRID_MODEL_DIR", "/opt/models/minilm")
    shown = yaml.safe_load(run(capsys, "config", "show").out)
    assert shown["embedding"]["model_dir"] == "/opt/models/minilm"
    shown = yaml.safe_load(run(capsys, "--model-dir", "mine", "config", "show").out)
    assert shown["embedding"]["model_dir"] == "mine"


@pytest.mark.usefixtures("corpus", "embedding")
def test_health_json_reports_the_configured_cache(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    summary(run(capsys, "index", "docs"))
    report = json.loads(run(capsys, "health", "--json").out)
    assert report["config"]["cache"] is True
    monkeypatch.setenv("LANGCHAIN_HYBRID_CACHE__ENABLED", "false")
    report = json.loads(run(capsys, "health", "--json").out)
    assert report["config"]["cache"] is False


def test_config_validate_ok_and_bad(capsys: pytest.CaptureFixture[str]) -> None:
    write("good.yaml", "fusion:\n  k: 6\n")
    write("bad.yaml", "store:\n  path: ./x\n  pth: typo\nfusion:\n  k: 0\n")
    assert cli.main(["config", "validate", "good.yaml"]) == 0
    out = capsys.readouterr()
    assert (out.out, out.err) == ("good.yaml: ok\n", "")

    assert cli.main(["config", "validate", "bad.yaml"]) == 2, "as --help says of config errors"
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.startswith("langchain-hybrid: error: invalid configuration:")
    assert "bad.yaml:3: unknown key 'store.pth'" in out.err
    assert "bad.yaml:5: fusion.k" in out.err
    assert "Traceback" not in out.err

    assert cli.main(["config", "validate", "absent.yaml"]) == 2
    assert "cannot read config file absent.yaml" in capsys.readouterr().err
    assert "Exit codes: 0 ok, 1 runtime error, 2 usage or configuration error" in " ".join(
        cli.build_parser().format_help().split()
    )


def test_invalid_config_for_a_command_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    write("bad.yaml", "fusion:\n  kk: 1\n")
    result = run(capsys, "--config", "bad.yaml", "stats")
    assert_one_error_line(result, 2, "bad.yaml:2: unknown key 'fusion.kk'")


# ---------------------------------------------------------------------- process
def test_help_runs_as_a_program() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "langchain_hybrid.cli", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for command in ("index", "query", "stats", "config"):
        assert command in result.stdout


def test_errors_exit_with_their_code_as_a_program(tmp_path: Path) -> None:
    write("bad.yaml", "nope: 1\n")
    result = subprocess.run(
        [sys.executable, "-m", "langchain_hybrid.cli", "--config", "bad.yaml", "config", "show"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr == (
        "langchain-hybrid: error: invalid configuration: bad.yaml:1: unknown key 'nope'\n"
    )


# ---------------------------------------------------------------------- real model
@pytest.mark.usefixtures("corpus")
@pytest.mark.model
def test_real_model_index_and_semantic_query(
    capsys: pytest.CaptureFixture[str], model_dir: Path
) -> None:
    write("model.yaml", f"embedding:\n  model_dir: {json.dumps(str(model_dir))}\n")
    counts = summary(run(capsys, "--config", "model.yaml", "index", "docs"))
    assert counts["added"] == CORPUS_CHUNKS
    rows = query_json(capsys, "--config", "model.yaml", "vegetable gardening", "--mode", "vector")
    assert str(rows[0]["id"]).startswith(fid("docs/garden.txt"))
    assert rows[0]["bm25_rank"] is None
    rows = query_json(capsys, "--config", "model.yaml", "how do I restart my router", "-k", "2")
    assert str(rows[0]["id"]).startswith(fid("docs/router.md"))
    assert rows[0]["vector_rank"] is not None
    counts = summary(run(capsys, "--config", "model.yaml", "index", "docs"))
    assert (counts["added"], counts["unchanged"]) == (0, CORPUS_CHUNKS)


def test_a_config_error_with_several_problems_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("store:\n  colection: kb\nfusion:\n  k: 0\n", encoding="utf-8")
    result = run(capsys, "config", "validate", str(config))
    assert_one_error_line(result, 2, "colection")
    assert "fusion.k" in result.err
    assert f"{config}:2" in result.err
    assert f"{config}:4" in result.err
