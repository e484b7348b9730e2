"""Loaders: file discovery, splitting per format, stable ids, metadata and their errors.

The reStructuredText and HTML tests read real documentation files kept unchanged in
``data/real-docs`` (see its NOTICE.md).
"""

from __future__ import annotations

import hashlib
import json
import sys
import types
from pathlib import Path

import pytest
from langchain_core.documents import Document

from langchain_hybrid._loaders import (
    FileScope,
    SplitSettings,
    chunk_id,
    document_ids,
    find_files,
    html_sections,
    in_scope,
    load_file,
    markdown_sections,
    resolved_path,
    rst_sections,
    source_name,
)
from langchain_hybrid.errors import ConfigError, InvalidDocumentsError

REAL_DOCS = Path(__file__).parent / "data" / "real-docs"

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


def test_chunk_id_is_path_number_and_text_hash() -> None:
    text = "hello world"
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    assert chunk_id("/srv/docs/a.md", 3, text) == f"/srv/docs/a.md#3:{digest}"
    assert chunk_id("/srv/docs/a.md", 3, text) == chunk_id("/srv/docs/a.md", 3, text)
    assert chunk_id("/srv/docs/a.md", 3, text + "!") != chunk_id("/srv/docs/a.md", 3, text)


def test_ids_come_from_the_resolved_path_whatever_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("proj/docs/a.md", "# A\n\nSame text.\n")
    write("copy/docs/a.md", "# A\n\nSame text.\n")
    (tmp_path / "link").symlink_to(tmp_path / "proj")
    from_root = load_file("proj/docs/a.md").documents
    monkeypatch.chdir(tmp_path / "proj" / "docs")
    from_inside = load_file("a.md").documents
    through_link = load_file(tmp_path / "link" / "docs" / "a.md").documents
    monkeypatch.chdir(tmp_path)
    other_folder = load_file("copy/docs/a.md").documents
    assert [d.id for d in from_root] == [d.id for d in from_inside] == [d.id for d in through_link]
    assert from_root[0].id == chunk_id(
        (tmp_path / "proj/docs/a.md").resolve().as_posix(), 0, from_root[0].page_content
    )
    assert {d.id for d in other_folder}.isdisjoint(d.id for d in from_root)
    assert from_root[0].metadata["source"] == "proj/docs/a.md"
    assert from_inside[0].metadata["source"] == "a.md", "source stays short and relative"
    assert from_inside[0].metadata["source_path"] == resolved_path(tmp_path / "proj/docs/a.md")


def test_document_ids_are_deterministic_and_distinct_for_repeated_chunks() -> None:
    docs = [
        Document("same text", metadata={"source": "a.md"}),
        Document("same text", metadata={"source": "a.md"}),
        Document("same text", metadata={"source": "b.md"}),
        Document("same text"),
        Document("given", id="mine"),
    ]
    ids = document_ids(docs)
    assert len(set(ids)) == 5, "repeated chunks of one source do not collide"
    assert ids[4] == "mine"
    assert document_ids(docs) == ids
    payload = json.dumps(["a.md", 1, "same text"])
    assert ids[1] == hashlib.sha256(payload.encode()).hexdigest()[:32]
    later = document_ids([Document("new", metadata={"source": "a.md"}), *docs[::-1]])
    assert sorted(later[1:]) == sorted(ids), "adding or reordering documents keeps the ids"
    changed = document_ids([Document("same text", metadata={"source": "a.md", "year": 1})])
    assert changed[0] == ids[0], "metadata besides source is not part of the id"


@pytest.mark.parametrize(
    ("relative", "pattern", "expected"),
    [
        ("a.md", None, True),
        ("sub/deep/a.md", None, True),
        ("a.png", None, False),
        (".hidden/a.md", None, False),
        ("sub/.a.md", None, False),
        ("a.md", "**/*.md", True),
        ("sub/deep/a.md", "**/*.md", True),
        ("sub/a.txt", "**/*.md", False),
        ("a.md", "*.md", True),
        ("sub/a.md", "*.md", False),
        ("sub/a.md", "sub/*.md", True),
        ("sub/b.md", "sub/[ab].md", True),
        ("sub/c.md", "sub/[!ab].md", True),
        ("sub/a.md", "sub/?.md", True),
    ],
)
def test_in_scope_agrees_with_find_files(
    relative: str, pattern: str | None, *, expected: bool
) -> None:
    write(f"docs/{relative}", "x")
    found = {resolved_path(p) for p in find_files(["docs"], pattern)}
    path = resolved_path(f"docs/{relative}")
    assert (path in found) is expected
    assert in_scope(path, "docs", pattern) is expected
    Path(f"docs/{relative}").unlink()
    assert in_scope(path, "docs", pattern) is expected, "the file need not exist"
    assert not in_scope(path, "elsewhere", pattern)
    assert FileScope(["elsewhere", Path("docs").absolute()], pattern)(path) is expected


def test_rst_sections_on_a_real_document() -> None:
    text = (REAL_DOCS / "numpy-ma-README.rst").read_text(encoding="utf-8")
    sections = rst_sections(text)
    assert "".join(body for body, _ in sections) == text, "the text is kept as written"
    headers = [header for _, header in sections]
    assert headers[0] == "A guide to masked arrays in NumPy"
    assert "A guide to masked arrays in NumPy > Using maskedarray with matplotlib" in headers
    assert "A guide to masked arrays in NumPy > Revision notes" in headers
    assert len(headers) == 11


def test_rst_section_levels_follow_the_order_of_adornments() -> None:
    text = (
        "=====\nTitle\n=====\n\nIntro.\n\nPart\n----\n\nBody.\n\nDetail\n~~~~~~\n\n"
        "Deep.\n\nOther part\n----------\n\nMore.\n\n----\n\nAfter a transition.\n"
        "Not a title\n---\n"
    )
    assert [header for _, header in rst_sections(text)] == [
        "Title",
        "Title > Part",
        "Title > Part > Detail",
        "Title > Other part",
    ]


def test_load_rst_and_html_real_files() -> None:
    rst = load_file(REAL_DOCS / "numpy-ma-README.rst").documents
    assert len(rst) > 5
    matplotlib = [d for d in rst if "matplotlib" in d.metadata.get("header_path", "")]
    assert matplotlib
    assert matplotlib[0].page_content.startswith("Using maskedarray with matplotlib\n---")

    html = load_file(REAL_DOCS / "libffi-Simple-Example.html").documents
    title = "Simple Example (libffi: the portable foreign function interface library)"
    assert all(d.metadata["title"] == title for d in html)
    text = "\n".join(d.page_content for d in html)
    assert html[0].page_content.startswith(title + "\n")
    assert "<" + "div" not in text
    assert "a.copiable-anchor" not in text, "styles are dropped"
    assert "Permission is hereby granted" not in text, "comments are dropped"
    assert "ffi_call(&cif, puts, &rc, values);" in text, "entities decoded"
    assert "  /* Initialize the argument info vectors */" in text, "pre keeps its indentation"
    assert any(d.metadata.get("header_path") == "2.2 Simple Example" for d in html)


def test_html_sections_structure() -> None:
    page = (
        "<html><head><title>Guide &amp; more</title><script>var x = '<p>no</p>';</script>"
        "</head><body><p>Intro   text\n spread</p><h1>Install</h1><p>Run <b>make</b>.</p>"
        "<h2>Linux</h2><ul><li>apt</li><li>dnf</li></ul><h1>Use</h1><pre>a\n  b</pre>"
        "<style>p {}</style></body></html>"
    )
    title, sections = html_sections(page)
    assert title == "Guide & more"
    assert sections == [
        ("Guide & more\n\nIntro text spread", None),
        ("Install\n\nRun make.", "Install"),
        ("Linux\n\napt\ndnf", "Install > Linux"),
        ("Use\n\na\n  b", "Use"),
    ]


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
        assert doc.metadata["source_path"] == resolved_path("docs/router.md")
        assert doc.id == chunk_id(
            resolved_path("docs/router.md"), doc.metadata["chunk"], doc.page_content
        )
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
        {"source": "notes.txt", "source_path": resolved_path("notes.txt"), "chunk": 0},
        {"source": "notes.txt", "source_path": resolved_path("notes.txt"), "chunk": 1},
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
        "source_path": resolved_path("data.jsonl"),
        "chunk": 0,
    }
    long_chunks = docs[1:]
    assert len(long_chunks) > 1
    assert all(len(d.page_content) <= 120 for d in long_chunks)
    assert [d.metadata["chunk"] for d in docs] == list(range(len(docs)))
    assert all(d.metadata["nested"] == '{"x": 1}' for d in long_chunks)
    assert all(d.metadata["source"] == "data.jsonl" for d in docs)
    assert docs[1].id == chunk_id(resolved_path("data.jsonl"), 1, docs[1].page_content)


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
    where = resolved_path("corpus.jsonl")
    assert docs[0].metadata == {
        "title": "Tomatoes",
        "source": "corpus.jsonl",
        "source_path": where,
        "chunk": 0,
    }
    assert docs[1].page_content == long_text
    assert docs[1].metadata == {
        "url": "http://x",
        "source": "corpus.jsonl",
        "source_path": where,
        "chunk": 1,
    }


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
    where = resolved_path("manual.pdf")
    assert [(d.page_content, d.metadata) for d in docs] == [
        ("First page text.", {"page": 1, "source": "manual.pdf", "source_path": where, "chunk": 0}),
        ("Third page text.", {"page": 3, "source": "manual.pdf", "source_path": where, "chunk": 1}),
    ]
    assert docs[1].id == chunk_id(where, 1, "Third page text.")
