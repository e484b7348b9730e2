"""Loaders: file discovery, splitting per format, stable ids, metadata and their errors."""

from __future__ import annotations

import hashlib
import json
import sys
import types
from pathlib import Path

import pytest

from langchain_hybrid.errors import ConfigError, InvalidDocumentsError
from langchain_hybrid.loaders import (
    SplitSettings,
    chunk_id,
    find_files,
    load_file,
    markdown_sections,
    source_name,
)

MARKDOWN = """\
Preamble before any header.

# Router guide

The NX-220 router shows error E-4471.

```bash
# not a header, inside a fence
reboot
```

## Reset

Hold the button for ten seconds.

### Factory reset

Hold it for thirty seconds.

## Firmware

Update the firmware monthly.
"""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def write(path: str, text: str) -> Path:
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(text, encoding="utf-8")
    return file


def test_source_name_is_relative_inside_cwd_and_absolute_outside(tmp_path: Path) -> None:
    assert source_name("docs/a.md") == "docs/a.md"
    assert source_name("./docs/../docs/a.md") == "docs/a.md"
    assert source_name(tmp_path / "docs" / "a.md") == "docs/a.md"
    outside = tmp_path.parent / "elsewhere.md"
    assert source_name(outside) == outside.as_posix()
    assert source_name("a.md", cwd=tmp_path / "sub") == (tmp_path / "a.md").as_posix()


def test_chunk_id_is_source_number_and_text_hash() -> None:
    text = "hello world"
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    assert chunk_id("docs/a.md", 3, text) == f"docs/a.md#3:{digest}"
    assert chunk_id("docs/a.md", 3, text) == chunk_id("docs/a.md", 3, text)
    assert chunk_id("docs/a.md", 3, text + "!") != chunk_id("docs/a.md", 3, text)


def test_split_settings_reject_bad_sizes() -> None:
    assert SplitSettings() == SplitSettings(1000, 150)
    with pytest.raises(ConfigError, match="smaller than the chunk size"):
        SplitSettings(100, 100)
    with pytest.raises(ConfigError, match=">= 1"):
        SplitSettings(0, 0)
    with pytest.raises(ConfigError, match=">= 0"):
        SplitSettings(10, -1)


def test_markdown_sections_keep_text_and_header_paths() -> None:
    sections = markdown_sections(MARKDOWN)
    assert "".join(text for text, _ in sections) == MARKDOWN
    assert [header for _, header in sections] == [
        None,
        "Router guide",
        "Router guide > Reset",
        "Router guide > Reset > Factory reset",
        "Router guide > Firmware",
    ]
    assert "# not a header, inside a fence" in sections[1][0]
    assert sections[3][0].startswith("### Factory reset\n")


def test_markdown_sections_handle_closing_hashes_and_tilde_fences() -> None:
    text = "## Title ##\nbody\n~~~\n# inside\n~~~\n# Next #\nmore\n"
    assert markdown_sections(text) == [
        ("## Title ##\nbody\n~~~\n# inside\n~~~\n", "Title"),
        ("# Next #\nmore\n", "Next"),
    ]


def test_load_markdown_chunks_have_ids_sources_and_header_paths() -> None:
    write("docs/router.md", MARKDOWN)
    loaded = load_file("docs/router.md")
    assert loaded.source == "docs/router.md"
    assert loaded.skipped is None
    docs = loaded.documents
    assert [d.metadata["chunk"] for d in docs] == list(range(len(docs)))
    assert len(docs) == 5
    assert [d.metadata.get("header_path") for d in docs] == [
        h for _, h in markdown_sections(MARKDOWN)
    ]
    for doc in docs:
        assert doc.metadata["source"] == "docs/router.md"
        assert doc.id == chunk_id("docs/router.md", doc.metadata["chunk"], doc.page_content)
    assert docs[2].page_content == "## Reset\n\nHold the button for ten seconds."


def test_load_markdown_splits_long_sections_within_chunk_size() -> None:
    body = "\n\n".join(f"Paragraph {i} " + "word " * 20 for i in range(10))
    write("long.md", f"# Long\n\n{body}\n")
    docs = load_file("long.md", SplitSettings(chunk_size=200, chunk_overlap=0)).documents
    assert len(docs) > 3
    assert all(len(d.page_content) <= 200 for d in docs)
    assert {d.metadata["header_path"] for d in docs} == {"Long"}


def test_load_text_respects_chunk_size_and_overlap() -> None:
    words = " ".join(f"w{i:03d}" for i in range(300))
    write("notes.txt", words)
    docs = load_file("notes.txt", SplitSettings(chunk_size=100, chunk_overlap=30)).documents
    assert len(docs) > 1
    assert all(len(d.page_content) <= 100 for d in docs)
    first, second = docs[0].page_content.split(), docs[1].page_content.split()
    assert set(first) & set(second), "neighbouring chunks overlap"
    assert [d.metadata for d in docs[:2]] == [
        {"source": "notes.txt", "chunk": 0},
        {"source": "notes.txt", "chunk": 1},
    ]


def test_empty_and_blank_files_give_no_chunks() -> None:
    write("empty.txt", "")
    write("blank.md", "\n   \n")
    assert load_file("empty.txt").documents == []
    assert load_file("blank.md").documents == []


def test_non_utf8_file_is_an_error_naming_it() -> None:
    Path("latin.txt").write_bytes("café".encode("latin-1"))
    with pytest.raises(InvalidDocumentsError, match=r"latin\.txt: not UTF-8"):
        load_file("latin.txt")


def test_generic_jsonl_records_metadata_and_splitting() -> None:
    long_text = " ".join(f"token{i}" for i in range(60))
    lines = [
        {"text": "short record", "lang": "en", "metadata": {"year": 2024, "tags": ["a", "b"]}},
        {"text": long_text, "metadata": {"nested": {"x": 1}}, "source": "ignored"},
        {"text": "   "},
    ]
    write("data.jsonl", "\n".join(json.dumps(r) for r in lines) + "\n\n")
    docs = load_file("data.jsonl", SplitSettings(chunk_size=120, chunk_overlap=0)).documents
    assert docs[0].page_content == "short record"
    assert docs[0].metadata == {
        "lang": "en",
        "year": 2024,
        "tags": ["a", "b"],
        "source": "data.jsonl",
        "chunk": 0,
    }
    long_chunks = docs[1:]
    assert len(long_chunks) > 1
    assert all(len(d.page_content) <= 120 for d in long_chunks)
    assert [d.metadata["chunk"] for d in docs] == list(range(len(docs)))
    assert all(d.metadata["nested"] == '{"x": 1}' for d in long_chunks)
    assert all(d.metadata["source"] == "data.jsonl" for d in docs)
    assert docs[1].id == chunk_id("data.jsonl", 1, docs[1].page_content)


def test_beir_records_keep_their_ids_and_are_never_split() -> None:
    long_text = "word " * 100
    records = [
        {"_id": "doc-1", "title": "Tomatoes", "text": "Water them twice a week."},
        {"_id": "doc-2", "title": "", "text": long_text, "metadata": {"url": "http://x"}},
        {"_id": 7, "title": "Numeric id", "text": "BEIR ids can be numbers"},
        {"_id": "doc-empty", "title": "", "text": ""},
    ]
    write("corpus.jsonl", "\n".join(json.dumps(r) for r in records))
    docs = load_file("corpus.jsonl", SplitSettings(chunk_size=50, chunk_overlap=0)).documents
    assert [d.id for d in docs] == ["doc-1", "doc-2", "7"]
    assert docs[0].page_content == "Tomatoes\nWater them twice a week."
    assert docs[0].metadata == {"title": "Tomatoes", "source": "corpus.jsonl", "chunk": 0}
    assert docs[1].page_content == long_text
    assert docs[1].metadata == {"url": "http://x", "source": "corpus.jsonl", "chunk": 1}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"bad\.jsonl:2: invalid JSON"),
        ("[1, 2]", r"bad\.jsonl:2: expected a JSON object, got list"),
        ('{"title": "no text"}', r"bad\.jsonl:2: a JSONL record needs a string 'text'"),
        ('{"text": "x", "metadata": [1]}', r"bad\.jsonl:2: 'metadata' must be a JSON object"),
        ('{"_id": "", "text": "x"}', r"bad\.jsonl:2: BEIR '_id' must be a non-empty string"),
        ('{"_id": "a", "text": 5}', r"bad\.jsonl:2: BEIR 'title' and 'text' must be strings"),
    ],
)
def test_invalid_jsonl_lines_name_file_and_line(line: str, message: str) -> None:
    write("bad.jsonl", '{"text": "fine"}\n' + line + "\n")
    with pytest.raises(InvalidDocumentsError, match=message):
        load_file("bad.jsonl")


def test_find_files_walks_directories_for_supported_files() -> None:
    for name in ("docs/b.md", "docs/a.txt", "docs/sub/c.jsonl", "docs/sub/d.MARKDOWN"):
        write(name, "x")
    write("docs/image.png", "x")
    write("docs/.hidden/e.md", "x")
    write("docs/.f.md", "x")
    found = find_files(["docs"])
    assert [p.as_posix() for p in found] == [
        "docs/a.txt",
        "docs/b.md",
        "docs/sub/c.jsonl",
        "docs/sub/d.MARKDOWN",
    ]


def test_find_files_glob_applies_to_directories_only_and_dedupes() -> None:
    for name in ("docs/b.md", "docs/a.txt", "docs/sub/c.md", "other.txt"):
        write(name, "x")
    found = find_files(["docs", "other.txt", "./docs/b.md"], "**/*.md")
    assert [p.as_posix() for p in found] == ["docs/b.md", "docs/sub/c.md", "other.txt"]
    assert [p.as_posix() for p in find_files(["docs"], "*.md")] == ["docs/b.md"]


def test_find_files_errors() -> None:
    write("notes.docx", "x")
    with pytest.raises(FileNotFoundError, match="no such file or directory: missing"):
        find_files(["missing"])
    with pytest.raises(InvalidDocumentsError, match=r"unsupported file type '\.docx'"):
        find_files(["notes.docx"])


def test_pdf_is_skipped_without_pypdf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pypdf", None)  # makes `import pypdf` fail
    write("manual.pdf", "%PDF-1.4")
    loaded = load_file("manual.pdf")
    assert loaded.documents == []
    assert loaded.skipped is not None
    assert "pypdf" in loaded.skipped


def test_pdf_pages_become_chunks_with_page_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []

    class Page:
        def __init__(self, text: str | None) -> None:
            self.text = text

        def extract_text(self) -> str | None:
            return self.text

    class PdfReader:
        def __init__(self, path: str) -> None:
            opened.append(path)
            self.pages = [Page("First page text."), Page(None), Page("Third page text.")]

    fake = types.ModuleType("pypdf")
    fake.PdfReader = PdfReader  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pypdf", fake)
    write("manual.pdf", "%PDF-1.4")
    docs = load_file("manual.pdf").documents
    assert opened == ["manual.pdf"]
    assert [(d.page_content, d.metadata) for d in docs] == [
        ("First page text.", {"page": 1, "source": "manual.pdf", "chunk": 0}),
        ("Third page text.", {"page": 3, "source": "manual.pdf", "chunk": 1}),
    ]
    assert docs[1].id == chunk_id("manual.pdf", 1, "Third page text.")
