"""Files to documents for the command line: find, read, split, and give each chunk a stable id.

Formats, chosen by file suffix (case-insensitive):

* ``.txt``: split with ``RecursiveCharacterTextSplitter``.
* ``.md`` / ``.markdown``: cut into sections at ATX headers (``#`` .. ``######``, outside fenced
  code blocks; the text is kept exactly), each section split with the Markdown-aware
  ``RecursiveCharacterTextSplitter``; metadata ``header_path`` is ``"Title > Setup"``.
* ``.jsonl``: one JSON object per line. A line with ``"_id"`` is a BEIR corpus record
  (``{"_id", "title", "text", "metadata"?}``): one document, never split, with id ``_id``,
  text ``title`` and ``text`` joined by a newline (just ``text`` if the title is empty), and
  metadata from ``metadata`` plus ``title``. Any other line needs a string ``"text"``; its
  ``metadata`` object and its other fields become metadata, and it is split only if longer
  than the chunk size.
* ``.pdf``: one text per page (metadata ``page``, from 1), split like ``.txt``. Needs ``pypdf``
  (``pip install 'langchain-hybrid[pdf]'``); without it a PDF is skipped with a reason, never
  half-read.

Every chunk gets metadata ``source`` (see :func:`source_name`) and ``chunk`` (its number in the
file, from 0); these two keys are reserved and win over a record's own fields. Chunks other than
BEIR records get the stable id ``<source>#<chunk>:<first 12 hex digits of sha256(text)>``, so an
unchanged file yields the same ids again and a changed chunk a new one. Metadata values Chroma
cannot store (nested objects, mixed or empty lists) are kept as JSON text; ``None`` is dropped.
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
from pathlib import Path
from typing import Any, Literal

from langchain_core.documents import Document
from langchain_text_splitters import Language, RecursiveCharacterTextSplitter

from langchain_hybrid.errors import ConfigError, InvalidDocumentsError
from langchain_hybrid.filters import validate_metadata

logger = logging.getLogger(__name__)

FileFormat = Literal["text", "markdown", "jsonl", "pdf"]

SUPPORTED_SUFFIXES: dict[str, FileFormat] = {
    ".txt": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".jsonl": "jsonl",
    ".pdf": "pdf",
}
"""File suffixes the loaders read, and the format each one means."""

_ATX_HEADER = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_RESERVED = ("source", "chunk")


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
    """The documents read from one file, or why it was skipped."""

    path: Path
    source: str
    documents: list[Document] = field(default_factory=list)
    skipped: str | None = None


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


def chunk_id(source: str, number: int, text: str) -> str:
    """The stable id ``<source>#<number>:<sha256(text)[:12]>`` of a chunk."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    return f"{source}#{number}:{digest}"


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
        payload = json.dumps([key[0], position, key[1]], ensure_ascii=False)
        ids.append(hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32])
    return ids


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


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
    source = source_name(file, cwd)
    kind = file_format(file)
    if kind is None:
        msg = f"{file}: unsupported file type {file.suffix!r}"
        raise InvalidDocumentsError(msg)
    if kind == "pdf":
        pages = _pdf_pages(file)
        if pages is None:
            reason = "reading PDF needs pypdf (pip install 'langchain-hybrid[pdf]')"
            return LoadedFile(file, source, skipped=reason)
        pieces: list[tuple[str, dict[str, Any]]] = [
            (chunk, {"page": number})
            for number, page in enumerate(pages, start=1)
            for chunk in _text_splitter(split).split_text(page)
        ]
        return LoadedFile(file, source, _chunk_documents(source, pieces))
    text = _read_text(file)
    if kind == "jsonl":
        return LoadedFile(file, source, _jsonl_documents(file, source, text, split))
    if kind == "markdown":
        splitter = _markdown_splitter(split)
        pieces = [
            (chunk, {"header_path": header} if header else {})
            for section, header in markdown_sections(text)
            for chunk in splitter.split_text(section)
        ]
    else:
        pieces = [(chunk, {}) for chunk in _text_splitter(split).split_text(text)]
    return LoadedFile(file, source, _chunk_documents(source, pieces))


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


def _chunk_documents(
    source: str, pieces: Sequence[tuple[str, Mapping[str, Any]]], first: int = 0
) -> list[Document]:
    documents = []
    number = first
    for text, extra in pieces:
        if not text.strip():
            continue
        metadata = {**extra, "source": source, "chunk": number}
        documents.append(
            Document(id=chunk_id(source, number, text), page_content=text, metadata=metadata)
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


def _jsonl_documents(file: Path, source: str, text: str, split: SplitSettings) -> list[Document]:
    splitter = _text_splitter(split)
    documents: list[Document] = []
    number = 0
    for line_number, record in _jsonl_records(file, text):
        where = f"{file}:{line_number}"
        if "_id" in record:
            doc = _beir_document(record, where, source, number)
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
        new = _chunk_documents(source, [(c, metadata) for c in chunks], first=number)
        documents.extend(new)
        number += len(new)
    return documents


def _beir_document(
    record: Mapping[str, Any], where: str, source: str, number: int
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
    metadata.update(source=source, chunk=number)
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
