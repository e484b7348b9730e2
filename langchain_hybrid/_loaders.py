"""Files to documents for the command line: find, read, split, and give each chunk a stable id.

Formats, chosen by file suffix (case-insensitive):

* ``.txt``: split with ``RecursiveCharacterTextSplitter``.
* ``.md`` / ``.markdown``: cut into sections at ATX headers (``#`` .. ``######``, outside fenced
  code blocks; the text is kept exactly), each section split with the Markdown-aware
  ``RecursiveCharacterTextSplitter``; metadata ``header_path`` is ``"Title > Setup"``.
* ``.rst``: cut into sections at reStructuredText section titles (a title line underlined, and
  optionally overlined, with one repeated punctuation character at least as long as the title;
  levels in order of first use, as docutils assigns them; the text is kept as written), each
  section split like ``.txt``; metadata ``header_path`` as for Markdown.
* ``.html`` / ``.htm``: tags stripped (``script``, ``style``, ``template`` and the ``head``
  except its ``title`` dropped; character references decoded; ``pre`` keeps its whitespace),
  cut into sections at ``h1`` .. ``h6``, each split like ``.txt``. The ``<title>`` is kept as
  metadata ``title`` of every chunk and as the first line of the text.
* ``.jsonl``: one JSON object per line. A line with ``"_id"`` is a BEIR corpus record
  (``{"_id", "title", "text", "metadata"?}``): one document, never split, with id ``_id``,
  text ``title`` and ``text`` joined by a newline (just ``text`` if the title is empty), and
  metadata from ``metadata`` plus ``title``. Any other line needs a string ``"text"``; its
  ``metadata`` object and its other fields become metadata, and it is split only if longer
  than the chunk size.
* ``.pdf``: one text per page (metadata ``page``, from 1), split like ``.txt``. Needs ``pypdf``
  (``pip install 'langchain-hybrid[pdf]'``); without it a PDF is skipped with a reason, never
  half-read.

Every chunk gets metadata ``source`` (the path shown to people, see :func:`source_name`),
``source_path`` (the file's resolved absolute path, see :func:`resolved_path`) and ``chunk`` (its
number in the file, from 0); these three keys are reserved and win over a record's own fields.
Chunks other than BEIR records get the stable id
``<source_path>#<chunk>:<first 12 hex digits of sha256(text)>``: it never depends on the working
directory, two folders with the same layout never share one, an unchanged file yields the same
ids again and a changed chunk a new one. Metadata values Chroma cannot store (nested objects,
mixed or empty lists) are kept as JSON text; ``None`` is dropped.

:func:`document_ids` gives documents added through the Python API without an id a deterministic
one (see there), so adding the same documents twice replaces them instead of duplicating them.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Literal

from langchain_core.documents import Document
from langchain_text_splitters import Language, RecursiveCharacterTextSplitter

from langchain_hybrid.errors import ConfigError, InvalidDocumentsError
from langchain_hybrid.filters import validate_metadata

logger = logging.getLogger(__name__)

FileFormat = Literal["text", "markdown", "rst", "html", "jsonl", "pdf"]

SUPPORTED_SUFFIXES: dict[str, FileFormat] = {
    ".txt": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".rst": "rst",
    ".html": "html",
    ".htm": "html",
    ".jsonl": "jsonl",
    ".pdf": "pdf",
}
"""File suffixes the loaders read, and the format each one means."""

_ATX_HEADER = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_RST_ADORNMENT = re.compile(r"^([!-/:-@\[-`{-~])\1{2,}[ \t]*$")
_RESERVED = ("source", "source_path", "chunk")


@dataclass(frozen=True, slots=True)
class SplitSettings:
    """How long chunks are, in characters (``RecursiveCharacterTextSplitter`` semantics).

    Raises:
        ConfigError: ``chunk_size < 1``, ``chunk_overlap < 0`` or overlap not below size.
    """

    chunk_size: int = 1000
    chunk_overlap: int = 150

    def __post_init__(self) -> None:
        """Check the sizes."""
        if self.chunk_size < 1 or self.chunk_overlap < 0:
            msg = (
                f"chunk size must be >= 1 and overlap >= 0, got {self.chunk_size} "
                f"and {self.chunk_overlap}"
            )
            raise ConfigError(msg)
        if self.chunk_overlap >= self.chunk_size:
            msg = (
                f"chunk overlap ({self.chunk_overlap}) must be smaller than the chunk size "
                f"({self.chunk_size})"
            )
            raise ConfigError(msg)


@dataclass(frozen=True, slots=True)
class LoadedFile:
    """The documents read from one file, or why it was skipped.

    ``source`` is the path shown to people (:func:`source_name`), ``resolved`` the file's
    identity (:func:`resolved_path`).
    """

    path: Path
    source: str
    documents: list[Document] = field(default_factory=list)
    skipped: str | None = None
    resolved: str = ""


def file_format(path: Path) -> FileFormat | None:
    """The format a file's suffix names, or ``None`` if it is not supported."""
    return SUPPORTED_SUFFIXES.get(path.suffix.lower())


def source_name(path: str | os.PathLike[str], cwd: Path | None = None) -> str:
    """The ``source`` of a file: its path relative to ``cwd`` if inside it, else absolute.

    The path is made absolute and normalised without resolving symbolic links, and written with
    ``/`` separators, so the same file named as ``docs/a.md`` or ``./docs/../docs/a.md`` has one
    source. It depends on the working directory: run the CLI from the same directory each time.
    """
    absolute = Path(os.path.normpath(Path(path).absolute()))
    base = Path(os.path.normpath((cwd or Path.cwd()).absolute()))
    try:
        return absolute.relative_to(base).as_posix()
    except ValueError:
        return absolute.as_posix()


def resolved_path(path: str | os.PathLike[str]) -> str:
    """A file's identity: its absolute path with symbolic links resolved, ``/``-separated.

    The same file named from any working directory, or through a link, has one identity; two
    files in different folders never share one.
    """
    return Path(path).resolve().as_posix()


def chunk_id(path: str, number: int, text: str) -> str:
    """The stable id ``<path>#<number>:<sha256(text)[:12]>`` of a chunk of the file ``path``."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    return f"{path}#{number}:{digest}"


def document_ids(documents: Sequence[Document]) -> list[str]:
    """Each document's id: ``Document.id`` when set, else a deterministic id.

    The deterministic id is the first 32 hex digits of the SHA-256 of the document's
    ``metadata["source"]`` (as text; empty without one), its position and its text. The position
    counts the earlier documents of the same call with the same source and the same text (0 for
    the first), so repeated chunks of one source get distinct ids, and adding a document or
    reordering the others never changes an id. Adding the same documents again therefore
    replaces them instead of adding copies. Metadata other than ``source`` is not part of the
    id: a document added again with changed metadata replaces the old one.
    """
    seen: dict[tuple[str, str], int] = {}
    ids: list[str] = []
    for doc in documents:
        if doc.id:
            ids.append(doc.id)
            continue
        source = (doc.metadata or {}).get("source")
        key = ("" if source is None else str(source), doc.page_content)
        position = seen.get(key, 0)
        seen[key] = position + 1
        payload = json.dumps([key[0], position, key[1]])  # ASCII: a lone surrogate hashes too
        ids.append(hashlib.sha256(payload.encode("ascii")).hexdigest()[:32])
    return ids


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A regex over ``/``-separated relative paths for a :meth:`pathlib.Path.glob` pattern."""
    parts = []
    for segment in pattern.strip("/").split("/"):
        if segment == "**":
            parts.append("(?:[^/]+/)*")
            continue
        regex = ""
        i = 0
        while i < len(segment):
            char = segment[i]
            end = segment.find("]", i + 2) if char == "[" else -1
            if char == "*":
                regex += "[^/]*"
            elif char == "?":
                regex += "[^/]"
            elif end != -1:
                body = segment[i + 1 : end]
                body = "^" + body[1:] if body.startswith("!") else body
                regex += f"[{body}]"
                i = end
            else:
                regex += re.escape(char)
            i += 1
        parts.append(regex + "/")
    return re.compile("".join(parts).removesuffix("/") + r"\Z")


class FileScope:
    """The files :func:`find_files` would find under ``directories`` with ``pattern``.

    Decides for paths that need not exist (files deleted since they were indexed), so that
    re-indexing can tell which stored files it was asked to mirror. Paths are compared resolved
    (:func:`resolved_path`); the rules are those of :func:`find_files`: a supported suffix, no
    part starting with ``.`` below the directory, and, with a pattern, a path the pattern
    matches relative to the directory. The directories are resolved once, so a call is a few
    string operations.
    """

    __slots__ = ("_regex", "_roots")

    def __init__(
        self, directories: Iterable[str | os.PathLike[str]], pattern: str | None = None
    ) -> None:
        """Resolve the directories and compile the pattern."""
        self._roots = [resolved_path(d).rstrip("/") + "/" for d in directories]
        self._regex = _glob_regex(pattern) if pattern else None

    def __call__(self, path: str) -> bool:
        """Whether the resolved ``path`` is in scope."""
        for root in self._roots:
            if path.startswith(root) and self._matches(path[len(root) :]):
                return True
        return False

    def _matches(self, relative: str) -> bool:
        parts = relative.split("/")
        if not relative or any(not part or part.startswith(".") for part in parts):
            return False
        if os.path.splitext(parts[-1])[1].lower() not in SUPPORTED_SUFFIXES:  # noqa: PTH122
            return False
        return self._regex is None or self._regex.match(relative) is not None


def in_scope(path: str, directory: str | os.PathLike[str], pattern: str | None = None) -> bool:
    """Whether :func:`find_files` would find ``path`` under ``directory`` (:class:`FileScope`)."""
    return FileScope([directory], pattern)(path)


def find_files(paths: Iterable[str | os.PathLike[str]], pattern: str | None = None) -> list[Path]:
    """The files to read: files named in ``paths``, plus supported files under directories.

    Directories are searched with ``pattern`` (a :meth:`pathlib.Path.glob` pattern relative to
    the directory, e.g. ``"**/*.md"``), by default every file with a supported suffix, at any
    depth. Files and directories whose name starts with ``.`` below a named directory, and
    files with unsupported suffixes found by the pattern, are left out. A file named explicitly
    is always taken. The result is sorted and has no duplicates.

    Raises:
        FileNotFoundError: a path does not exist.
        InvalidDocumentsError: a file named explicitly has an unsupported suffix, or the
            pattern is invalid.
    """
    found: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            try:
                candidates = sorted(path.glob(pattern)) if pattern else sorted(path.rglob("*"))
            except (ValueError, NotImplementedError) as e:
                msg = f"invalid --glob pattern {pattern!r}: {e}"
                raise InvalidDocumentsError(msg) from e
            for candidate in candidates:
                if not candidate.is_file() or _hidden(candidate, path):
                    continue
                if file_format(candidate) is None:
                    logger.debug("ignoring %s: unsupported file type", candidate)
                    continue
                found[candidate] = None
        elif path.is_file():
            if file_format(path) is None:
                msg = (
                    f"{path}: unsupported file type {path.suffix or '(no suffix)'!r}; "
                    f"supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}"
                )
                raise InvalidDocumentsError(msg)
            found[path] = None
        else:
            msg = f"no such file or directory: {path}"
            raise FileNotFoundError(msg)
    unique: dict[str, Path] = {}
    for path in found:
        unique.setdefault(os.path.normpath(path.absolute()), path)
    return sorted(unique.values())


def load_file(
    path: str | os.PathLike[str], split: SplitSettings | None = None, *, cwd: Path | None = None
) -> LoadedFile:
    """Read one file into chunk documents with ids and metadata (see the module docstring).

    Raises:
        InvalidDocumentsError: the file is not UTF-8, a JSONL line is invalid, or metadata
            cannot be stored; the message names the file (and line).
        OSError: the file cannot be read.
    """
    file = Path(path)
    split = split or SplitSettings()
    origin = _Origin(source_name(file, cwd), resolved_path(file))
    kind = file_format(file)
    if kind is None:
        msg = f"{file}: unsupported file type {file.suffix!r}"
        raise InvalidDocumentsError(msg)
    if kind == "pdf":
        pages = _pdf_pages(file)
        if pages is None:
            reason = "reading PDF needs pypdf (pip install 'langchain-hybrid[pdf]')"
            return LoadedFile(file, origin.source, skipped=reason, resolved=origin.path)
        pieces: list[tuple[str, dict[str, Any]]] = [
            (chunk, {"page": number})
            for number, page in enumerate(pages, start=1)
            for chunk in _text_splitter(split).split_text(page)
        ]
        return _loaded(file, origin, _chunk_documents(origin, pieces))
    text = _read_text(file)
    if kind == "jsonl":
        return _loaded(file, origin, _jsonl_documents(file, origin, text, split))
    extra: dict[str, Any] = {}
    if kind == "markdown":
        sections, splitter = markdown_sections(text), _markdown_splitter(split)
    elif kind == "rst":
        sections, splitter = rst_sections(text), _text_splitter(split)
    elif kind == "html":
        title, sections = html_sections(text)
        splitter = _text_splitter(split)
        extra = {"title": title} if title else {}
    else:
        sections, splitter = [(text, None)], _text_splitter(split)
    pieces = [
        (chunk, {**extra, "header_path": header} if header else extra)
        for section, header in sections
        for chunk in splitter.split_text(section)
    ]
    return _loaded(file, origin, _chunk_documents(origin, pieces))


@dataclass(frozen=True, slots=True)
class _Origin:
    source: str
    path: str


def _loaded(file: Path, origin: _Origin, documents: list[Document]) -> LoadedFile:
    return LoadedFile(file, origin.source, documents, resolved=origin.path)


def _read_text(file: Path) -> str:
    data = file.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        msg = f"{file}: not UTF-8 text (byte {e.start}: {e.reason})"
        raise InvalidDocumentsError(msg) from e


def _text_splitter(split: SplitSettings) -> RecursiveCharacterTextSplitter:
    return RecursiveCharacterTextSplitter(
        chunk_size=split.chunk_size, chunk_overlap=split.chunk_overlap
    )


def _markdown_splitter(split: SplitSettings) -> RecursiveCharacterTextSplitter:
    return RecursiveCharacterTextSplitter.from_language(
        Language.MARKDOWN, chunk_size=split.chunk_size, chunk_overlap=split.chunk_overlap
    )


def markdown_sections(text: str) -> list[tuple[str, str | None]]:
    """Cut Markdown at ATX headers; returns ``(section text, header path or None)`` pairs.

    A section runs from its header line (kept in the text) to the next header. The header path
    joins the enclosing headers' titles with ``" > "``. ``#`` lines inside fenced code blocks
    are not headers; setext (underlined) headers are not recognised. Blank sections are dropped.
    """
    sections: list[tuple[str, str | None]] = []
    stack: list[tuple[int, str]] = []
    current: list[str] = []
    header: str | None = None
    fence: str | None = None

    def flush() -> None:
        body = "".join(current)
        if body.strip():
            sections.append((body, header))

    for line in text.splitlines(keepends=True):
        fence_match = _FENCE.match(line)
        if fence_match:
            marker = fence_match.group(1)
            if fence is None:
                fence = marker
            elif marker[0] == fence[0] and len(marker) >= len(fence):
                fence = None
        match = _ATX_HEADER.match(line.rstrip("\r\n")) if fence is None else None
        if match:
            flush()
            level = len(match.group(1))
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, match.group(2).strip()))
            header = " > ".join(title for _, title in stack if title) or None
            current = [line]
        else:
            current.append(line)
    flush()
    return sections


def _section_path(stack: list[tuple[int, str]], level: int, title: str) -> str | None:
    while stack and stack[-1][0] >= level:
        stack.pop()
    stack.append((level, title))
    return " > ".join(t for _, t in stack if t) or None


def _rst_title(lines: Sequence[str], i: int) -> tuple[str, tuple[str, bool], int] | None:
    """The section title starting at line ``i``: (title, adornment style, lines it takes)."""

    def adornment(n: int) -> str | None:
        match = _RST_ADORNMENT.match(lines[n].rstrip("\r\n")) if n < len(lines) else None
        return match.group(0).rstrip() if match else None

    if i > 0 and lines[i - 1].strip():
        return None  # a title follows a blank line (or starts the document)
    over = adornment(i)
    if over is not None and i + 2 < len(lines):
        title, under = lines[i + 1].strip(), adornment(i + 2)
        if title and under == over and len(over) >= len(title):
            return title, (over[0], True), 3
    line = lines[i].rstrip("\r\n")
    if over is None and line.strip() and not line[0].isspace():
        under = adornment(i + 1)
        if under is not None and len(under) >= len(line.rstrip()):
            return line.strip(), (under[0], False), 2
    return None


def rst_sections(text: str) -> list[tuple[str, str | None]]:
    """Cut reStructuredText at section titles; returns ``(section text, header path)`` pairs.

    A title is a line of text after a blank line, underlined (and optionally overlined with the
    same line) by one punctuation character repeated at least as long as the title. Each
    adornment style is a level, in order of first use (as docutils assigns them). A section
    runs from its title (kept in the text) to the next title. Blank sections are dropped.
    """
    lines = text.splitlines(keepends=True)
    sections: list[tuple[str, str | None]] = []
    styles: list[tuple[str, bool]] = []
    stack: list[tuple[int, str]] = []
    current: list[str] = []
    header: str | None = None
    i = 0
    while i < len(lines):
        found = _rst_title(lines, i)
        if found is None:
            current.append(lines[i])
            i += 1
            continue
        title, style, taken = found
        if "".join(current).strip():
            sections.append(("".join(current), header))
        if style not in styles:
            styles.append(style)
        header = _section_path(stack, styles.index(style), title)
        current = list(lines[i : i + taken])
        i += taken
    if "".join(current).strip():
        sections.append(("".join(current), header))
    return sections


_HTML_SKIPPED = frozenset({"script", "style", "template", "noscript", "svg", "head"})
_HTML_BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "details", "div", "dl", "dt",
        "figcaption", "figure", "footer", "form", "header", "hr", "li", "main", "nav", "ol",
        "p", "pre", "section", "summary", "table", "td", "th", "tr", "ul",
    }
)  # fmt: skip
_HTML_HEADINGS = {f"h{n}": n for n in range(1, 7)}


class _HTMLText(HTMLParser):
    """Text of an HTML page by section (headings), and its title."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.sections: list[tuple[list[str], str | None]] = [([], None)]
        self._skipping: list[str] = []
        self._in_title = False
        self._pre = 0
        self._heading: list[str] | None = None
        self._stack: list[tuple[int, str]] = []
        self._level = 0

    def _emit(self, text: str) -> None:
        self.sections[-1][0].append(text)
        if self._heading is not None:
            self._heading.append(text)

    def _break(self, lines: int) -> None:
        """End the current line (``lines=2``: the paragraph), unless it is already ended."""
        parts = self.sections[-1][0]
        tail = "".join(parts[-lines:])
        self._emit("\n" * max(0, lines - (len(tail) - len(tail.rstrip("\n")))))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in _HTML_SKIPPED:
            self._skipping.append(tag)
        elif self._skipping:
            return
        elif tag in _HTML_HEADINGS:
            self.sections.append(([], None))
            self._heading, self._level = [], _HTML_HEADINGS[tag]
        elif tag in _HTML_BLOCKS:
            self._break(1)
            self._pre += tag == "pre"

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif self._skipping:
            if tag == self._skipping[-1]:
                self._skipping.pop()
        elif tag in _HTML_HEADINGS and self._heading is not None:
            title = " ".join("".join(self._heading).split())
            self.sections[-1] = (
                self.sections[-1][0],
                _section_path(self._stack, self._level, title),
            )
            self._heading = None
            self._break(2)
        elif tag in _HTML_BLOCKS:
            self._break(2 if tag in {"p", "pre", "table", "ul", "ol", "dl"} else 1)
            self._pre -= tag == "pre" and self._pre > 0

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif self._skipping:
            return
        elif self._pre:
            self._emit(data)
        else:
            flat = re.sub(r"\s+", " ", data)
            parts = self.sections[-1][0]
            self._emit(flat.lstrip() if not parts or parts[-1].endswith("\n") else flat)


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


def html_sections(text: str) -> tuple[str, list[tuple[str, str | None]]]:
    """Strip an HTML page's tags; returns its title and ``(section text, header path)`` pairs.

    The page is cut at ``h1`` .. ``h6`` (the heading's text starts its section); the title, when
    there is one, is the first line of the first section. See the module docstring for what is
    dropped.
    """
    parser = _HTMLText()
    parser.feed(text)
    parser.close()
    title = " ".join(parser.title.split())
    sections = [(_tidy("".join(parts)), header) for parts, header in parser.sections]
    if title:
        first, header = sections[0]
        sections[0] = (f"{title}\n\n{first}", header)
    return title, [(body, header) for body, header in sections if body.strip()]


def _chunk_documents(
    origin: _Origin, pieces: Sequence[tuple[str, Mapping[str, Any]]], first: int = 0
) -> list[Document]:
    documents = []
    number = first
    for text, extra in pieces:
        if not text.strip():
            continue
        metadata = {**extra, "source": origin.source, "source_path": origin.path, "chunk": number}
        documents.append(
            Document(id=chunk_id(origin.path, number, text), page_content=text, metadata=metadata)
        )
        number += 1
    return documents


def _jsonl_records(file: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            msg = f"{file}:{line_number}: invalid JSON: {e.msg} (column {e.colno})"
            raise InvalidDocumentsError(msg) from e
        if not isinstance(record, dict):
            msg = f"{file}:{line_number}: expected a JSON object, got {type(record).__name__}"
            raise InvalidDocumentsError(msg)
        yield line_number, record


def _jsonl_documents(
    file: Path, origin: _Origin, text: str, split: SplitSettings
) -> list[Document]:
    splitter = _text_splitter(split)
    documents: list[Document] = []
    number = 0
    for line_number, record in _jsonl_records(file, text):
        where = f"{file}:{line_number}"
        if "_id" in record:
            doc = _beir_document(record, where, origin, number)
            if doc is not None:
                documents.append(doc)
                number += 1
            continue
        body = record.get("text")
        if not isinstance(body, str):
            msg = (
                f"{where}: a JSONL record needs a string 'text' field "
                "(or BEIR's '_id', 'title', 'text')"
            )
            raise InvalidDocumentsError(msg)
        extra = {k: v for k, v in record.items() if k not in {"text", "metadata"}}
        nested = record.get("metadata")
        if nested is not None and not isinstance(nested, dict):
            msg = f"{where}: 'metadata' must be a JSON object, got {type(nested).__name__}"
            raise InvalidDocumentsError(msg)
        metadata = _storable({**extra, **(nested or {})}, where)
        chunks = splitter.split_text(body) if len(body) > split.chunk_size else [body]
        new = _chunk_documents(origin, [(c, metadata) for c in chunks], first=number)
        documents.extend(new)
        number += len(new)
    return documents


def _beir_document(
    record: Mapping[str, Any], where: str, origin: _Origin, number: int
) -> Document | None:
    doc_id, title, body = record.get("_id"), record.get("title", ""), record.get("text", "")
    if not isinstance(doc_id, str | int) or isinstance(doc_id, bool) or str(doc_id) == "":
        msg = f"{where}: BEIR '_id' must be a non-empty string, got {doc_id!r}"
        raise InvalidDocumentsError(msg)
    if not isinstance(title, str) or not isinstance(body, str):
        msg = f"{where}: BEIR 'title' and 'text' must be strings"
        raise InvalidDocumentsError(msg)
    nested = record.get("metadata")
    if nested is not None and not isinstance(nested, dict):
        msg = f"{where}: 'metadata' must be a JSON object, got {type(nested).__name__}"
        raise InvalidDocumentsError(msg)
    content = f"{title}\n{body}" if title else body
    if not content.strip():
        logger.info("%s: BEIR record %r has no text; skipped", where, doc_id)
        return None
    metadata = _storable(dict(nested or {}), where)
    if title:
        metadata["title"] = title
    metadata.update(source=origin.source, source_path=origin.path, chunk=number)
    return Document(id=str(doc_id), page_content=content, metadata=metadata)


def _storable(metadata: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Metadata Chroma can store: reserved keys dropped, unstorable values as JSON text."""
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        if key in _RESERVED or value is None:
            continue
        try:
            validate_metadata({key: value}, where)
        except InvalidDocumentsError:
            if not isinstance(key, str) or not key or key.startswith(("$", "chroma:")):
                raise
            out[key] = json.dumps(value, ensure_ascii=False, sort_keys=True)
        else:
            out[key] = value
    return out


def _pdf_pages(file: Path) -> list[str] | None:
    """The text of each page, or ``None`` when pypdf is not installed."""
    try:
        pypdf = importlib.import_module("pypdf")
    except ImportError:
        return None
    try:
        reader = pypdf.PdfReader(str(file))
        return [page.extract_text() or "" for page in reader.pages]
    except OSError:
        raise
    except Exception as e:
        msg = f"{file}: cannot read PDF: {type(e).__name__}: {e}"
        raise InvalidDocumentsError(msg) from e
