"""The ``langchain-hybrid`` command line: index files, query, inspect the index and settings.

Usage:
    ```bash
    langchain-hybrid --path ./index index docs/ --glob '**/*.md'
    langchain-hybrid query "reset the router" -k 5 --filter '{"source": "docs/faq.md"}'
    langchain-hybrid stats --json
    langchain-hybrid config show
    langchain-hybrid config validate hybrid.yaml
    ```

Every subcommand is added by one function in :data:`COMMANDS` that builds its parser and sets
its handler (``handler(args) -> exit code``). Errors are one line on stderr,
``langchain-hybrid: error: <message>``, with exit code 2 for usage and configuration errors, 1
for runtime errors and 130 for an interrupt; ``--debug`` adds the traceback.
"""

from __future__ import annotations

__all__ = ["main"]  # the API is the command line; the rest serves it

import argparse
import contextlib
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import yaml
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from tqdm import tqdm

from langchain_hybrid._exact_match import DEFAULT_BASE_SIZE as EXACT_MATCH_BASE_SIZE
from langchain_hybrid._exact_match import format_report, run_exact_match
from langchain_hybrid._loaders import (
    SUPPORTED_SUFFIXES,
    FileScope,
    LoadedFile,
    SplitSettings,
    find_files,
    load_file,
    resolved_path,
)
from langchain_hybrid.adaptive import as_yaml as adaptive_yaml
from langchain_hybrid.bm25 import BM25Index, BM25Params
from langchain_hybrid.config import HybridConfig, load_config, make_embedding
from langchain_hybrid.embeddings import MODEL_DIR_ENV_VAR, chroma_cache_dir
from langchain_hybrid.errors import (
    ConfigError,
    HybridRetrieverError,
    IndexCorruptError,
    IndexNotBuiltError,
    InvalidDocumentsError,
    InvalidFilterError,
    InvalidQueryError,
    StoreError,
)
from langchain_hybrid.evaluation import (
    METRICS,
    MODES,
    SHALLOW_METRICS,
    TABLE_COLUMNS,
    format_table,
    load_beir,
    open_eval_index,
    parse_sweep,
    run_evaluation,
    sweep,
    tune_adaptive,
)
from langchain_hybrid.filters import validate_metadata
from langchain_hybrid.index import CollectionState, HybridIndex
from langchain_hybrid.retrievers import HybridRetriever
from langchain_hybrid.stores import ChromaStore

if TYPE_CHECKING:
    from typing_extensions import Self

    Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]  # noqa: SLF001

logger = logging.getLogger(__name__)

PROG = "langchain-hybrid"
PROGRESS_SECONDS = 10.0
"""Without a terminal, progress is a line on stderr at the start, the end and this often."""
Handler = Callable[[argparse.Namespace], int]
_ANNOTATIONS = ("hybrid_score", "bm25_rank", "bm25_score", "vector_rank", "vector_score")
_SECRET_WORDS = ("key", "token", "secret", "password", "auth")
_MASK = "***"


class UsageError(Exception):
    """A mistake on the command line (exit code 2); raised and caught inside :func:`main`."""


_USAGE_ERRORS = (UsageError, ConfigError, InvalidQueryError, InvalidFilterError)


# ---------------------------------------------------------------------- plumbing
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        msg = f"expected an integer >= 1, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        msg = f"expected an integer >= 0, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _common_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Options accepted before and after the subcommand (``suppress``: keep the main value)."""

    def default(value: object = None) -> object:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("global options")
    group.add_argument(
        "--config",
        metavar="FILE",
        default=default(None),
        help="YAML settings file (default: $LANGCHAIN_HYBRID_CONFIG, else built-in defaults)",
    )
    group.add_argument(
        "--path", metavar="DIR", default=default(None), help="override store.path (index dir)"
    )
    group.add_argument(
        "--collection", metavar="NAME", default=default(None), help="override store.collection"
    )
    group.add_argument(
        "--model-dir",
        metavar="DIR",
        default=default(None),
        help="override embedding.model_dir (all-MiniLM-L6-v2 ONNX files)",
    )
    group.add_argument(
        "--debug", action="store_true", default=default(value=False), help="show tracebacks"
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default(0),
        help="log progress (-v: INFO, -vv: DEBUG) to stderr",
    )


def _settings(args: argparse.Namespace) -> HybridConfig:
    """The effective settings: flags > environment > --config file > defaults."""
    overrides: dict[str, dict[str, Any]] = {}
    if args.path is not None:
        overrides.setdefault("store", {})["path"] = args.path
    if args.collection is not None:
        overrides.setdefault("store", {})["collection"] = args.collection
    if args.model_dir is not None:
        overrides.setdefault("embedding", {})["model_dir"] = args.model_dir
    return load_config(args.config, overrides=overrides)


def _open_store(settings: HybridConfig, *, create: bool) -> ChromaStore:
    config = settings.store
    if config.mode == "persistent":
        path = Path(config.path)
        if not create and not path.is_dir():
            msg = f"no index at {path}; build one with `{PROG} index PATH...`"
            raise IndexNotBuiltError(msg)
    return ChromaStore(config, create_if_missing=create)


def _open_retriever(
    settings: HybridConfig, *, create: bool, embedding: Embeddings | None = None
) -> HybridRetriever:
    """Open the configured retriever (``create``: make the collection if it is missing)."""
    return HybridRetriever.from_store(
        _open_store(settings, create=create),
        embedding if embedding is not None else make_embedding(settings.embedding),
        bm25_path=settings.bm25_path(),
        bm25_params=settings.bm25.params(),
        allow_embedding_mismatch=settings.embedding.allow_mismatch,
        **settings.retriever_fields(),
    )


def _bars_disabled() -> bool:
    return not sys.stderr.isatty()


class _Progress:
    """A tqdm bar on a terminal; otherwise progress lines on stderr.

    Without a terminal (a log file, CI, a pipe) a bar would print nothing until the end, so a
    line ``langchain-hybrid: progress: DESC N/TOTAL UNITs (P%)`` is written at the start, at
    least every :data:`PROGRESS_SECONDS` while work goes on, and at the end (with
    ``announce=False``, only once the work has taken :data:`PROGRESS_SECONDS`).
    """

    def __init__(self, total: int, desc: str, unit: str, *, announce: bool = True) -> None:
        self.total, self.desc, self.unit, self.done = total, desc, unit, 0
        self._bar = tqdm(total=total, desc=desc, unit=unit) if not _bars_disabled() else None
        self._next = time.monotonic() + PROGRESS_SECONDS
        self._lines = announce  # announce=False: lines only once the work has taken a while
        if self._bar is None and total and announce:
            self._line()

    def _line(self) -> None:
        share = self.done / self.total if self.total else 1.0
        sys.stderr.write(
            f"{PROG}: progress: {self.desc} {self.done}/{self.total} {self.unit}s ({share:.0%})\n"
        )
        sys.stderr.flush()

    def update(self, n: int) -> None:
        """Count ``n`` more units done."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif (self.done >= self.total and self._lines) or time.monotonic() >= self._next:
            self._next = time.monotonic() + PROGRESS_SECONDS
            self._lines = True
            self._line()

    def __enter__(self) -> Self:
        """Start."""
        return self

    def __exit__(self, *_: object) -> None:
        """Close the bar."""
        if self._bar is not None:
            self._bar.close()


def _print(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _print_json(data: object) -> None:
    _print(json.dumps(data, indent=2, ensure_ascii=False))


# ---------------------------------------------------------------------- index
_INDEX_EPILOG = f"""\
formats:
  .txt               split with RecursiveCharacterTextSplitter
  .md, .markdown     cut at '#' headers, then split; metadata header_path ("Title > Setup")
  .rst               cut at section titles (underlined, optionally overlined), then split;
                     metadata header_path
  .html, .htm        tags stripped (scripts, styles and the head dropped), cut at <h1>-<h6>,
                     then split; the <title> is metadata title and the text's first line
  .jsonl             one object per line: {{"text": ..., "metadata": {{...}}, ...}} (split only
                     when longer than --chunk-size), or a BEIR corpus record
                     {{"_id", "title", "text", "metadata"}}: one document, id = _id, text =
                     title + newline + text, never split
  .pdf               one text per page (metadata page); needs pypdf
                     (pip install 'langchain-hybrid[pdf]'); without it PDFs are skipped with
                     a warning and their existing chunks are kept
Directories are searched with --glob (default: every {", ".join(sorted(SUPPORTED_SUFFIXES))}
file at any depth; names starting with '.' are left out). Files named on the command line are
always read.

ids and re-indexing:
  Every chunk has metadata source (the file's path as shown: relative to the current
  directory, or absolute when outside it), source_path (the file's resolved absolute path) and
  chunk (its number in the file, from 0), and the id
  <source_path>#<chunk>:<first 12 hex digits of sha256(chunk text)>; BEIR records keep their
  _id. The working directory never changes an id, and two folders with the same layout never
  share one. Chunks already in the index with the same id, text and metadata (source aside)
  are skipped (nothing is embedded or written), so re-indexing unchanged files is a no-op. For
  every file read, new or changed chunks are written and the file's other chunks in the index
  are deleted. An edit that changes the number of chunks before a chunk renumbers it, so it is
  embedded again.

speed, progress and resume:
  Batches of --batch-size chunks are embedded and written, the next batch embedded while the
  previous one is written. Progress (files, chunks, passages/s, ETA) is one line on a terminal,
  else a 'progress:' line every 10 s. An interrupted run keeps every batch it wrote: run the
  same command again and only the rest is embedded.

mirroring (the default):
  The index mirrors what was asked for: documents whose file lies under a directory PATH and
  matches --glob (the same rules as the search), but was not found in this run (deleted,
  renamed or moved away), are deleted; the summary says how many. --keep-missing keeps them.
  Documents of other folders, and documents without a source (added through the Python API),
  are never touched. Documents indexed by version 0.1 (no source_path) are matched by their
  source, relative to the current directory.

--prune:
  Wider than mirroring: delete every document whose source is not one of the files found in
  this run, in any folder (the index then holds exactly this run's files, plus documents
  without a source).
"""


def _add_index(commands: Subcommands) -> None:
    parser = commands.add_parser(
        "index",
        help="add or update files in the index",
        description="Load, split, embed and write files to the hybrid index.",
        epilog=_INDEX_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    parser.add_argument(
        "--glob", metavar="PATTERN", help="pattern for files under directories, e.g. '**/*.md'"
    )
    parser.add_argument(
        "--chunk-size",
        type=_positive_int,
        default=1000,
        metavar="N",
        help="chunk size in characters (default: 1000)",
    )
    parser.add_argument(
        "--chunk-overlap",
        type=_non_negative_int,
        default=150,
        metavar="N",
        help="overlap of neighbouring chunks in characters (default: 150)",
    )
    keep = parser.add_mutually_exclusive_group()
    keep.add_argument(
        "--keep-missing",
        action="store_true",
        help="keep documents of files under PATHs that no longer exist (see mirroring below)",
    )
    keep.add_argument(
        "--prune",
        action="store_true",
        help="delete documents of every file not found in this run, in any folder (see below)",
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=64,
        metavar="N",
        help="chunks embedded and written per batch; the next batch is embedded while one is "
        "written (default: 64)",
    )
    _common_options(parser, suppress=True)
    parser.set_defaults(handler=_run_index)


@dataclass
class IndexPlan:
    """What an index run writes and deletes."""

    files: int = 0
    skipped: int = 0
    chunks: int = 0
    add: list[Document] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """Documents of files not found in this run (mirroring or ``--prune``)."""
    missing_files: int = 0

    @property
    def unchanged(self) -> int:
        """Chunks already in the index as they are."""
        return self.chunks - len(self.add)


def _stored_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """Metadata as compared on re-indexing: ``source`` is only how the path was shown."""
    return {k: v for k, v in (metadata or {}).items() if v is not None and k != "source"}


def stored_file(metadata: Mapping[str, Any] | None, cwd: Path | None = None) -> str | None:
    """The resolved path of the file a stored document was read from (``None``: no file).

    ``source_path`` when present; else (documents indexed by version 0.1) ``source``, which was
    relative to the working directory.
    """
    metadata = metadata or {}
    path = metadata.get("source_path")
    if isinstance(path, str) and path:
        return path
    source = metadata.get("source")
    if isinstance(source, str) and source:
        return resolved_path((cwd or Path.cwd()) / source)
    return None


def _unchanged(doc: Document, old: tuple[str, Mapping[str, Any] | None] | None) -> bool:
    if old is None or old[0] != doc.page_content:
        return False
    new_metadata = validate_metadata(doc.metadata, f"document {doc.id!r}")
    return _stored_metadata(old[1]) == _stored_metadata(new_metadata)


def plan_index(
    files: Sequence[LoadedFile],
    existing: Mapping[str, tuple[str, Mapping[str, Any] | None]],
    *,
    scope: Callable[[str], bool] | None = None,
    prune: bool = False,
    cwd: Path | None = None,
) -> IndexPlan:
    """Compare loaded files with the index; see the ``index`` help for the rules.

    Args:
        files: the files of this run (skipped ones included: they protect their chunks).
        existing: every indexed document's ``(text, metadata)`` by id.
        scope: mirroring: whether a file (resolved path) is one this run would have found;
            documents of such files not found are deleted. ``None``: keep them.
        prune: delete documents of every file not found in this run.
        cwd: the directory a 0.1 ``source`` is relative to (default: the current one).

    Raises:
        InvalidDocumentsError: two chunks of this run have the same id.
    """
    plan = IndexPlan(files=len(files))
    owner: dict[str, str] = {}
    for loaded in files:
        plan.skipped += loaded.skipped is not None
        for doc in loaded.documents:
            doc_id = str(doc.id)
            if doc_id in owner:
                msg = f"duplicate id {doc_id!r} in {owner[doc_id]} and {loaded.source}"
                raise InvalidDocumentsError(msg)
            owner[doc_id] = loaded.source
            plan.chunks += 1
            if not _unchanged(doc, existing.get(doc_id)):
                plan.add.append(doc)
    read = {f.resolved for f in files if f.skipped is None}
    found = {f.resolved for f in files}
    missing: set[str] = set()
    for doc_id, (_, metadata) in existing.items():
        path = None if doc_id in owner else stored_file(metadata, cwd)
        if path is None or (path in found and path not in read):
            continue  # this run's chunk, not from a file, or a skipped file's
        if path in read:
            plan.stale.append(doc_id)
        elif prune or (scope is not None and scope(path)):
            plan.missing.append(doc_id)
            missing.add(path)
    plan.missing_files = len(missing)
    return plan


class _Indexed(Mapping[str, tuple[str, Mapping[str, Any] | None]]):
    """Every indexed document's ``(text, metadata)`` by id, read from the BM25 index on demand.

    The BM25 index keeps texts and metadata in memory-mapped files: a lookup reads one
    document, so change detection never holds every text of the index in memory.
    """

    def __init__(self, index: BM25Index) -> None:
        self._index = index

    def __getitem__(self, doc_id: str) -> tuple[str, Mapping[str, Any] | None]:
        hit = self._index.get([doc_id])[0]
        if hit is None:
            raise KeyError(doc_id)
        return hit.text, hit.metadata

    def __iter__(self) -> Iterator[str]:
        return iter(self._index.ids)

    def __len__(self) -> int:
        return len(self._index)


def _indexed(index: BM25Index) -> Mapping[str, tuple[str, Mapping[str, Any] | None]]:
    return _Indexed(index)


def _run_index(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    split = SplitSettings(args.chunk_size, args.chunk_overlap)
    settings = _settings(args)
    try:
        paths = find_files(args.paths, args.glob)
    except (FileNotFoundError, InvalidDocumentsError) as e:
        raise UsageError(str(e)) from e
    if not paths:
        where = ", ".join(args.paths)
        msg = f"no supported files under {where}" + (
            f" matching {args.glob!r}" if args.glob else ""
        )
        raise UsageError(msg)
    # indexing needs the model: fail before anything is created or written without it
    embedding = make_embedding(settings.embedding)
    embedding.embed_query(PROG)
    loaded = []
    with _Progress(len(paths), "loading", "file", announce=False) as progress:
        for path in paths:
            result = load_file(path, split)
            if result.skipped:
                logger.warning("skipping %s: %s", result.source, result.skipped)
            loaded.append(result)
            progress.update(1)
    retriever = _open_retriever(settings, create=True, embedding=embedding)
    folders = [p for p in args.paths if Path(p).is_dir()]
    plan = plan_index(
        loaded,
        _indexed(retriever.bm25),
        scope=None if args.keep_missing else FileScope(folders, args.glob),
        prune=args.prune,
    )
    logger.info(
        "%d chunks: %d to write, %d unchanged, %d stale, %d of files not found",
        plan.chunks,
        len(plan.add),
        plan.unchanged,
        len(plan.stale),
        len(plan.missing),
    )
    deleted = plan.stale + plan.missing
    with retriever.deferred_save():
        # the ingest pipeline: one write per batch, the next batch embedded meanwhile, and
        # progress (files, chunks, passages/s, ETA); an interrupted run leaves whole batches,
        # which the next run finds unchanged and skips
        retriever.add_documents(plan.add, batch_size=args.batch_size)
        if deleted:
            retriever.delete(deleted)
    skipped = f" ({plan.skipped} skipped)" if plan.skipped else ""
    files = f"{plan.missing_files} file{'s' if plan.missing_files != 1 else ''}"
    gone = f" ({len(plan.missing)} from {files} no longer found)" if plan.missing else ""
    _print(
        f"{plan.files} files{skipped}, {plan.chunks} chunks: {len(plan.add)} added, "
        f"{plan.unchanged} unchanged, {len(deleted)} deleted{gone} in "
        f"{time.perf_counter() - started:.2f}s"
    )
    return 0


# ---------------------------------------------------------------------- query
class ResultRow(NamedTuple):
    """One search result as the ``query`` command prints it."""

    id: str
    score: float
    bm25_rank: int | None
    bm25_score: float | None
    vector_rank: int | None
    vector_score: float | None
    metadata: dict[str, Any]
    text: str


SearchMode = Callable[[HybridRetriever, str, int, dict[str, Any] | None], list[ResultRow]]


def _search_hybrid(
    retriever: HybridRetriever, query: str, k: int, where: dict[str, Any] | None
) -> list[ResultRow]:
    rows = []
    for doc in retriever.invoke(query, k=k, filter=where):
        metadata = dict(doc.metadata)
        notes = {key: metadata.pop(key, None) for key in _ANNOTATIONS}
        rows.append(
            ResultRow(
                str(doc.id),
                float(notes["hybrid_score"] or 0.0),
                notes["bm25_rank"],
                notes["bm25_score"],
                notes["vector_rank"],
                notes["vector_score"],
                metadata,
                doc.page_content,
            )
        )
    return rows


def _leg_mode(leg: Literal["bm25", "vector"]) -> SearchMode:
    def search(
        retriever: HybridRetriever, query: str, k: int, where: dict[str, Any] | None
    ) -> list[ResultRow]:
        hits = retriever.search_leg(leg, query, k=k, filter=where)
        rows = []
        for rank, hit in enumerate(hits, start=1):
            mine: tuple[int | None, float | None] = (rank, hit.score)
            other: tuple[int | None, float | None] = (None, None)
            bm25, vector = (mine, other) if leg == "bm25" else (other, mine)
            rows.append(
                ResultRow(hit.id, hit.score, *bm25, *vector, dict(hit.metadata), hit.text or "")
            )
        return rows

    return search


SEARCH_MODES: dict[str, SearchMode] = {
    "hybrid": _search_hybrid,
    "bm25": _leg_mode("bm25"),
    "vector": _leg_mode("vector"),
}


def _add_query(commands: Subcommands) -> None:
    parser = commands.add_parser(
        "query",
        help="search the index",
        description=(
            "Search the index. hybrid fuses both legs (the fusion settings of the config); "
            "bm25 and vector run one leg alone, scored by that leg."
        ),
    )
    parser.add_argument("query", metavar="TEXT", help="the query text")
    parser.add_argument(
        "-k",
        type=_positive_int,
        metavar="N",
        help="results to return (default: fusion.k, 4 by default)",
    )
    parser.add_argument(
        "--filter",
        metavar="JSON",
        help='Chroma-style metadata filter, e.g. \'{"source": "docs/faq.md"}\' or '
        '\'{"chunk": {"$lt": 3}}\'',
    )
    parser.add_argument(
        "--mode",
        choices=sorted(SEARCH_MODES),
        default="hybrid",
        help="hybrid (default), or one leg alone",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print a JSON list of {id, score, bm25_rank, bm25_score, vector_rank, "
        "vector_score, metadata, text}",
    )
    _common_options(parser, suppress=True)
    parser.set_defaults(handler=_run_query)


def _filter_arg(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        where = json.loads(text)
    except json.JSONDecodeError as e:
        msg = f"--filter is not valid JSON: {e.msg} at column {e.colno}"
        raise UsageError(msg) from e
    if not isinstance(where, dict):
        msg = f"--filter must be a JSON object, got {type(where).__name__}"
        raise UsageError(msg)
    return where


def _cell(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _print_table(rows: Sequence[ResultRow]) -> None:
    if not rows:
        _print("no results")
        return
    sources = [_cell(str(r.metadata.get("source", r.id)), 40) for r in rows]
    width = max(6, *(len(s) for s in sources))
    _print(f"{'#':>3}  {'score':>8}  {'bm25':>4}  {'vector':>6}  {'source':<{width}}  text")
    for rank, (row, source) in enumerate(zip(rows, sources, strict=True), start=1):
        bm25 = "-" if row.bm25_rank is None else str(row.bm25_rank)
        vector = "-" if row.vector_rank is None else str(row.vector_rank)
        _print(
            f"{rank:>3}  {_number(row.score):>8}  {bm25:>4}  {vector:>6}  "
            f"{source:<{width}}  {_cell(row.text, 80)}"
        )


def filter_keys(where: object) -> set[str]:
    """The metadata keys a filter tests (operators and ``$and``/``$or`` left out)."""
    if isinstance(where, list):
        return set().union(*(filter_keys(item) for item in where))
    if not isinstance(where, Mapping):
        return set()
    keys: set[str] = set()
    for key, value in where.items():
        if isinstance(key, str) and not key.startswith("$"):
            keys.add(key)
        elif key in {"$and", "$or"}:
            keys |= filter_keys(value)
    return keys


def _warn_unknown_keys(retriever: HybridRetriever, where: Mapping[str, Any]) -> None:
    """After an empty filtered answer, name the filter keys that no document has (once each)."""
    wanted = filter_keys(where)
    known: set[str] = set()
    for hit in retriever.bm25.get(retriever.bm25.ids):
        if hit is not None and hit.metadata:
            known.update(hit.metadata)
    for key in sorted(wanted - known):
        shown = ", ".join(sorted(known)[:20]) or "none"
        logger.warning(
            "no document has the metadata key %r used in --filter (keys present: %s)", key, shown
        )


def _run_query(args: argparse.Namespace) -> int:
    where = _filter_arg(args.filter)
    settings = _settings(args)
    retriever = _open_retriever(settings, create=False)
    rows = SEARCH_MODES[args.mode](retriever, args.query, args.k or settings.fusion.k, where)
    if not rows and where:
        _warn_unknown_keys(retriever, where)
    if args.json:
        _print_json([row._asdict() for row in rows])
    else:
        _print_table(rows)
    return 0


# ---------------------------------------------------------------------- stats
def _add_stats(commands: Subcommands) -> None:
    parser = commands.add_parser(
        "stats",
        help="document counts, BM25 statistics, sync state and sizes",
        description=(
            "Report the index as it is on disk, without changing it: documents in Chroma and "
            "in the saved BM25 index, vocabulary size, average document length, write "
            "generations, whether BM25 is in sync with Chroma (else it is rebuilt from Chroma "
            "when the index is next opened), sizes on disk and the effective settings."
        ),
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    _common_options(parser, suppress=True)
    parser.set_defaults(handler=_run_stats)


def _size(path: Path, exclude: Path | None = None) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for file in path.rglob("*"):
        if exclude is not None and file.is_relative_to(exclude):
            continue
        with contextlib.suppress(OSError):
            if file.is_file():
                total += file.stat().st_size
    return total


def _settings_summary(settings: HybridConfig) -> dict[str, Any]:
    store, bm25, fusion, embedding = (
        settings.store,
        settings.bm25,
        settings.fusion,
        settings.embedding,
    )
    location = store.path if store.mode == "persistent" else None
    if store.mode == "http":
        location = f"http{'s' if store.ssl else ''}://{store.host}:{store.port}"
    return {
        "store": {"mode": store.mode, "location": location, "collection": store.collection},
        "bm25": {
            "k1": bm25.k1,
            "b": bm25.b,
            "stemmer": bm25.tokenizer.stemmer,
            "stopwords": bm25.tokenizer.stopwords,
        },
        "fusion": {
            "method": fusion.method,
            "k": fusion.k,
            "fetch_k": fusion.fetch_k,
            "rrf_k": fusion.rrf_k,
            "weights": list(fusion.weights),
        },
        "embedding": {
            "provider": embedding.provider,
            "model": embedding.model,
            "model_dir": embedding.model_dir,
        },
    }


def collect_stats(settings: HybridConfig, store: ChromaStore) -> dict[str, Any]:
    """The ``stats`` report as a JSON-ready dict (reads only; nothing is rebuilt or saved).

    Raises:
        StoreError: the store did not answer.
    """
    params = settings.bm25.params()
    path = settings.bm25_path()
    index, status = _stats_bm25(store, path, params)
    collection = _stats_collection(store, index or BM25Index(params), path)
    problem = _sync_problem(index, status, params, collection)
    chroma_dir = Path(store.config.path) if store.config.mode == "persistent" else None
    return {
        "collection": settings.store.collection,
        "chroma": {
            "documents": collection.documents,
            "generation": collection.generation,
            "directory": str(chroma_dir) if chroma_dir else None,
            "directory_bytes": _size(chroma_dir, chroma_dir / "bm25") if chroma_dir else None,
        },
        "bm25": _bm25_report(index, status, path),
        "in_sync": problem is None,
        "sync_problem": problem,
        "settings": _settings_summary(settings),
    }


def _stats_bm25(
    store: ChromaStore, path: Path | None, params: BM25Params
) -> tuple[BM25Index | None, str]:
    """The BM25 index ``stats`` reports on (``None``: none usable) and its status."""
    if path is None:
        return HybridIndex.inspect(store, None, params).bm25, (
            "in memory (built from Chroma when opened)"
        )
    try:
        return BM25Index.load(path), "saved"
    except FileNotFoundError:
        return None, "missing"
    except IndexCorruptError as e:
        return None, f"corrupt: {e}"


def _stats_collection(store: ChromaStore, index: BM25Index, path: Path | None) -> CollectionState:
    """The collection as :meth:`HybridIndex.status` reads it (seqlock), or the store's error.

    Raises:
        StoreError: the store did not answer.
    """
    state = HybridIndex(store, index, path).status()
    if state.collection is None:
        if isinstance(state.store_error, HybridRetrieverError):
            raise state.store_error
        msg = f"the store did not answer: {state.store_error}"
        raise StoreError(msg) from state.store_error
    return state.collection


def _sync_problem(
    index: BM25Index | None, status: str, params: BM25Params, collection: CollectionState
) -> str | None:
    """Why BM25 is not in sync with the collection (``None``: it is)."""
    if index is None:
        return f"BM25 index {status}"
    if index.params != params:
        return "BM25 settings changed"
    if not collection.settled:
        return f"a write is under way (generation {collection.latest})"
    if index.generation != collection.generation or len(index) != collection.documents:
        return "BM25 index stale"
    return None


def _bm25_report(index: BM25Index | None, status: str, path: Path | None) -> dict[str, Any]:
    """The ``bm25`` section of the ``stats`` report."""
    return {
        "status": status,
        "documents": len(index) if index is not None else None,
        "vocabulary_size": index.vocabulary_size if index is not None else None,
        "avgdl": index.avgdl if index is not None else None,
        "generation": index.generation if index is not None else None,
        "path": str(path) if path else None,
        "bytes": _size(path) if path and path.exists() else None,
    }


def _bytes(value: int | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":  # noqa: PLR2004
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover


def _print_stats(report: Mapping[str, Any]) -> None:
    chroma, bm25, summary = report["chroma"], report["bm25"], report["settings"]

    def shown(value: object) -> str:
        return "-" if value is None else str(value)

    avgdl = "-" if bm25["avgdl"] is None else f"{bm25['avgdl']:.2f} tokens"
    sync = "yes" if report["in_sync"] else f"no ({report['sync_problem']})"
    fusion = summary["fusion"]
    store = summary["store"]
    lines = [
        ("collection", f"{report['collection']} ({store['mode']}, {shown(store['location'])})"),
        ("documents", f"chroma {chroma['documents']}, bm25 {shown(bm25['documents'])}"),
        ("vocabulary", f"{shown(bm25['vocabulary_size'])} terms"),
        ("avgdl", avgdl),
        ("generation", f"chroma {chroma['generation']}, bm25 {shown(bm25['generation'])}"),
        ("in sync", sync),
        ("bm25 files", f"{_bytes(bm25['bytes'])} at {shown(bm25['path'])} ({bm25['status']})"),
        ("chroma dir", f"{_bytes(chroma['directory_bytes'])} at {shown(chroma['directory'])}"),
        (
            "fusion",
            (
                f"{fusion['method']}, k={fusion['k']}, fetch_k={fusion['fetch_k']}, "
                f"rrf_k={fusion['rrf_k']}, weights={fusion['weights']}"
            ),
        ),
        ("bm25 params", ", ".join(f"{k}={v}" for k, v in summary["bm25"].items())),
        (
            "embedding",
            ", ".join(f"{k}={v}" for k, v in summary["embedding"].items() if v is not None),
        ),
    ]
    for label, value in lines:
        _print(f"{label:<12} {value}")


def _run_stats(args: argparse.Namespace) -> int:
    settings = _settings(args)
    report = collect_stats(settings, _open_store(settings, create=False))
    if args.json:
        _print_json(report)
    else:
        _print_stats(report)
    return 0


# ---------------------------------------------------------------------- config
def _add_config(commands: Subcommands) -> None:
    parser = commands.add_parser(
        "config",
        help="show or validate settings",
        description="Show the effective settings, or check a settings file.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser(
        "show",
        help="print the effective settings as YAML",
        description=(
            "Print the effective settings (--config file, environment, flags) as YAML. Secrets "
            "are shown as '***': store.token, store.headers values, and embedding.options "
            "values whose key contains key, token, secret, password or auth. Without a "
            "configured embedding.model_dir, the folder the model will be loaded from is shown "
            "($LANGCHAIN_HYBRID_MODEL_DIR, else Chroma's cache; null if neither has it)."
        ),
    )
    _common_options(show, suppress=True)
    show.set_defaults(handler=_run_config_show)
    validate = actions.add_parser(
        "validate",
        help="check a YAML settings file",
        description=(
            "Check FILE alone (environment variables and flags are not applied). Prints "
            "'FILE: ok', or the problems with their line numbers and exits with 2 (a "
            "configuration error, as for every command)."
        ),
    )
    validate.add_argument("file", metavar="FILE")
    _common_options(validate, suppress=True)
    validate.set_defaults(handler=_run_config_validate)
    _common_options(parser, suppress=True)


def masked_settings(settings: HybridConfig) -> dict[str, Any]:
    """The settings as plain data with secrets replaced by ``'***'``."""
    data = settings.model_dump(mode="json")
    store = data["store"]
    if store.get("token") is not None:
        store["token"] = _MASK
    store["headers"] = dict.fromkeys(store.get("headers") or {}, _MASK)
    options = data["embedding"].get("options") or {}
    for key in options:
        if any(word in key.lower() for word in _SECRET_WORDS):
            options[key] = _MASK
    return data


def default_model_dir() -> str | None:
    """Where the default model is found without a configured ``model_dir`` (no download)."""
    configured = os.environ.get(MODEL_DIR_ENV_VAR, "").strip()
    if configured:
        return configured
    cache = chroma_cache_dir()
    return str(cache) if (cache / "model.onnx").is_file() else None


def _run_config_show(args: argparse.Namespace) -> int:
    settings = _settings(args)
    data = masked_settings(settings)
    if settings.embedding.provider == "minilm" and settings.embedding.model_dir is None:
        data["embedding"]["model_dir"] = default_model_dir()  # the folder that will be used
    text = yaml.safe_dump(data, sort_keys=False)
    sys.stdout.write(text)
    return 0


def _run_config_validate(args: argparse.Namespace) -> int:
    try:
        load_config(args.file, environ={})
    except ConfigError as e:  # exit 2, as the program's help says of configuration errors
        sys.stderr.write(f"{PROG}: error: {_one_line(e)}\n")
        return 2
    _print(f"{args.file}: ok")
    return 0


# ---------------------------------------------------------------------- eval
def _add_eval(commands: Subcommands) -> None:
    parser = commands.add_parser(
        "eval",
        help="measure quality and latency on a BEIR-layout collection",
        description=(
            "Index a BEIR collection (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv) once into a "
            "cache directory (reused on later runs: nothing is embedded twice), run every "
            "judged query and report nDCG@10, Recall@100, MRR@10, MAP@100, P@1, P@5 (as "
            "trec_eval computes them) and latency p50/p95/p99 per mode. BM25, fusion and "
            "store.hnsw settings come from --config: changing BM25 or fusion settings (or "
            "ef_search) never re-embeds; each store.hnsw space, ef_construction and "
            "max_neighbors gets its own index in the cache directory."
        ),
    )
    parser.add_argument("--dataset", required=True, type=Path, help="the collection directory")
    parser.add_argument("--split", default="test", help="qrels split (default: test)")
    parser.add_argument(
        "--mode",
        choices=(*MODES, "all"),
        help="what to evaluate (default: all; --sweep always tunes the hybrid mode)",
    )
    parser.add_argument(
        "--baseline",
        choices=("langchain",),
        help="also evaluate LangChain's EnsembleRetriever(BM25Retriever, Chroma) on the same data",
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the rows as JSON")
    parser.add_argument(
        "--sweep",
        nargs="+",
        metavar="NAME=V1,V2",
        help="tune fusion: e.g. rrf_k=10,60 weights=0.5:0.5,0.3:0.7 fusion=rrf,relative_score "
        "fetch_k=20,50 (each leg runs once; every combination is fused offline, with the "
        "metrics the hybrid mode would report; not with --baseline or another --mode)",
    )
    parser.add_argument(
        "--cache-dir", type=Path, help="where evaluation indexes live (~/.cache/langchain-hybrid)"
    )
    parser.add_argument(
        "--exact-match",
        action="store_true",
        help="also run the exact-match benchmark: identifiers of 14 shapes (error codes, SKUs, "
        "code names, versions, CVE/KB/ticket ids, addresses, e-mails, URLs, status codes, "
        "signals) and CJK terms planted in a seeded sample of the collection, asked bare and "
        "with two words of context; printed after the BEIR table (cells: queries whose "
        "document ranks 1st / in the top 3 / in the top 5); with --json the file holds "
        '{"beir": [...], "exact_match": [...]}',
    )
    parser.add_argument(
        "--exact-match-base",
        type=_positive_int,
        metavar="N",
        help=f"collection documents in the exact-match corpus (default: {EXACT_MATCH_BASE_SIZE})",
    )
    parser.add_argument(
        "--tune",
        action="store_true",
        help="fit query-adaptive fusion weights on the split's judged queries (needs "
        "scikit-learn: pip install 'langchain-hybrid[tune]'); prints the fixed weights and the "
        "fitted model on those queries (in-sample: check on another split with --config) and "
        "the fusion.adaptive YAML to put in a config",
    )
    _common_options(parser, suppress=True)
    parser.set_defaults(handler=_run_eval)


def _check_eval_args(args: argparse.Namespace) -> None:
    """Reject option combinations that would otherwise be silently ignored."""
    if args.exact_match_base is not None and not args.exact_match:
        msg = "--exact-match-base only applies with --exact-match"
        raise UsageError(msg)
    if args.tune and (args.sweep or args.exact_match or args.baseline or args.mode):
        msg = (
            "--tune fits the hybrid mode's weights alone: "
            "drop --sweep, --exact-match, --baseline and --mode"
        )
        raise UsageError(msg)
    if not args.sweep:
        return
    if args.exact_match:
        msg = (
            "--exact-match cannot be combined with --sweep (the exact-match benchmark "
            "measures the configured settings); set the fusion in --config instead"
        )
        raise UsageError(msg)
    if args.baseline is not None:
        msg = (
            "--baseline cannot be combined with --sweep (a sweep only tunes the hybrid "
            "mode's fusion); run the baseline without --sweep"
        )
        raise UsageError(msg)
    if args.mode not in {None, "hybrid"}:
        msg = f"--mode {args.mode} cannot be combined with --sweep (a sweep tunes the hybrid mode)"
        raise UsageError(msg)


def _run_eval(args: argparse.Namespace) -> int:
    _check_eval_args(args)
    grid = parse_sweep(args.sweep) if args.sweep else None  # before loading any model
    settings = _settings(args)
    embedding = make_embedding(settings.embedding)
    progress = not _bars_disabled()
    modes = MODES if args.mode in {None, "all"} else (args.mode,)
    if args.tune:
        return _tune(args, settings, embedding, progress=progress)
    if grid is not None:
        dataset = load_beir(args.dataset, args.split)
        retriever = open_eval_index(
            args.dataset,
            dataset,
            embedding,
            settings=settings,
            cache_dir=args.cache_dir,
            progress=progress,
        )
        rows = sweep(retriever, dataset, grid, progress=progress)
        columns: Sequence[str] = ("fusion", "rrf_k", "weights", "fetch_k", *METRICS)
    else:
        rows = run_evaluation(
            args.dataset,
            embedding,
            split=args.split,
            modes=modes,
            baseline=args.baseline == "langchain",
            settings=settings,
            cache_dir=args.cache_dir,
            progress=progress,
        )
        columns = TABLE_COLUMNS
    _print(f"{args.dataset.name} ({args.split}, {len(rows)} rows)")
    _print(format_table(rows, columns))
    output: object = rows
    if args.exact_match:
        base_size = args.exact_match_base or EXACT_MATCH_BASE_SIZE
        exact = run_exact_match(
            args.dataset,
            embedding,
            split=args.split,
            modes=modes,
            settings=settings,
            cache_dir=args.cache_dir,
            base_size=base_size,
            progress=progress,
        )
        planted = next((r for r in exact if r["group"] == "all" and r["kind"] == "bare"), None)
        _print()
        _print(
            f"exact match ({base_size} {args.dataset.name} documents + planted; "
            f"{planted['n'] if planted else 0} identifiers; cells: top 1/3/5 counts)"
        )
        _print(format_report(exact))
        output = {"beir": rows, "exact_match": exact}
    if args.json:
        args.json.write_text(json.dumps(output, indent=2, default=list) + "\n", encoding="utf-8")
    return 0


def _tune(
    args: argparse.Namespace, settings: HybridConfig, embedding: Any, *, progress: bool
) -> int:
    dataset = load_beir(args.dataset, args.split)
    retriever = open_eval_index(
        args.dataset,
        dataset,
        embedding,
        settings=settings,
        cache_dir=args.cache_dir,
        progress=progress,
    )
    model, rows = tune_adaptive(retriever, dataset, progress=progress)
    _print(f"{args.dataset.name} ({args.split}, {len(dataset.queries)} queries, in-sample)")
    _print(format_table(rows, ("fusion", *SHALLOW_METRICS)))
    _print()
    _print(adaptive_yaml(model).rstrip("\n"))
    if args.json:
        output = {"rows": rows, "adaptive": model.model_dump()}
        args.json.write_text(json.dumps(output, indent=2) + "\n", encoding="utf-8")
    return 0


# ---------------------------------------------------------------------- health
def _add_health(commands: Subcommands) -> None:
    parser = commands.add_parser(
        "health",
        help="check that the index can serve queries",
        description=(
            "Open the configured index read-only (nothing is created, rebuilt or saved; no "
            "query runs) and check it: the vector store answers, the BM25 index is loaded and "
            "in sync with the collection, the saved BM25 files match it. Rules based on traffic "
            "(error rate, p95 latency, degraded answers) need a metrics handler in the process "
            "that serves queries, so they are skipped here. Exit codes: 0 healthy, 1 degraded, "
            "2 unhealthy (including an index that cannot be opened)."
        ),
    )
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")
    _common_options(parser, suppress=True)
    parser.set_defaults(handler=_run_health)


def _run_health(args: argparse.Namespace) -> int:
    from langchain_hybrid.health import HealthCheck, HealthMonitor, HealthStatus  # noqa: PLC0415

    settings = _settings(args)
    try:
        monitor = HealthMonitor.from_config(
            settings,
            store=_open_store(settings, create=False),
        )
    except (HybridRetrieverError, OSError) as e:
        status = HealthStatus.from_checks(
            [HealthCheck("vector_store", "unhealthy", f"cannot open the index: {e}")]
        )
        report: dict[str, Any] = {
            "health": status.to_dict(),
            "metrics": None,
            "recent_errors": [],
            "config": None,
        }
    else:
        status = monitor.health_check()
        report = monitor.report(status)
        # the check runs without a result cache; report what serving processes configure
        report["config"]["cache"] = settings.cache.enabled
    if args.json:
        _print_json(report)
    else:
        _print(status.format())
    return status.exit_code


# ---------------------------------------------------------------------- serve-metrics
def _add_serve_metrics(commands: Subcommands) -> None:
    parser = commands.add_parser(
        "serve-metrics",
        help="serve Prometheus metrics and health of the index",
        description=(
            "Serve http://ADDR:PORT/metrics (Prometheus text format) for the configured index, "
            "opened read-only: the health gauges (checked on every scrape) and the retrieval "
            "metric families, which stay empty here because queries run in other processes. "
            "Applications should serve their own traffic's metrics in-process: "
            "serve_metrics(RetrievalMetricsHandler(), HealthMonitor(retriever, handler)). "
            "Needs prometheus_client (pip install 'langchain-hybrid[prometheus]')."
        ),
    )
    parser.add_argument(
        "--port", type=int, default=9464, metavar="N", help="TCP port (default: 9464; 0: any)"
    )
    parser.add_argument(
        "--addr", default="127.0.0.1", help="address to bind (default: 127.0.0.1, loopback)"
    )
    parser.add_argument(
        "--seconds",
        type=float,
        metavar="S",
        help="stop after S seconds (default: serve until interrupted with Ctrl-C)",
    )
    _common_options(parser, suppress=True)
    parser.set_defaults(handler=_run_serve_metrics)


def _run_serve_metrics(args: argparse.Namespace) -> int:
    from langchain_hybrid.exporters import serve_metrics  # noqa: PLC0415
    from langchain_hybrid.health import HealthMonitor  # noqa: PLC0415
    from langchain_hybrid.metrics import RetrievalMetricsHandler  # noqa: PLC0415

    if args.seconds is not None and not args.seconds > 0:
        msg = f"--seconds must be a positive number, got {args.seconds}"
        raise UsageError(msg)
    if not 0 <= args.port <= 65535:  # noqa: PLR2004
        msg = f"--port must be between 0 and 65535, got {args.port}"
        raise UsageError(msg)
    settings = _settings(args)
    handler = RetrievalMetricsHandler(window=settings.monitoring.window)
    monitor = HealthMonitor.from_config(
        settings,
        store=_open_store(settings, create=False),
        metrics=handler,
    )
    with serve_metrics(handler, monitor, port=args.port, addr=args.addr) as server:
        _print(f"serving {server.url} (Ctrl-C to stop)")
        sys.stdout.flush()
        try:
            if args.seconds is not None:
                time.sleep(args.seconds)
            else:
                while True:
                    time.sleep(3600)
        except KeyboardInterrupt:
            _print("stopped")
    return 0


# ---------------------------------------------------------------------- quantize
def _add_quantize(commands: Subcommands) -> None:
    parser = commands.add_parser(
        "quantize",
        help="make the int8 all-MiniLM-L6-v2 (embedding.precision: int8) from the fp32 files",
        description=(
            "Write model_int8.onnx, onnxruntime's dynamic int8 quantisation of the fp32 "
            "model.onnx found as the embedding would find it (--model-dir, "
            f"${MODEL_DIR_ENV_VAR}, Chroma's cache). Offline; needs the onnx package "
            "(pip install langchain-hybrid[int8]). Without --out the file goes to "
            "~/.cache/langchain-hybrid/models/, where precision int8 looks after the model "
            "folder itself; an existing file is kept unless --force."
        ),
    )
    parser.add_argument(
        "--out", metavar="DIR", type=Path, default=None, help="folder to write model_int8.onnx to"
    )
    parser.add_argument("--force", action="store_true", help="replace an existing file")
    _common_options(parser, suppress=True)
    parser.set_defaults(handler=_run_quantize)


def _run_quantize(args: argparse.Namespace) -> int:
    from langchain_hybrid._quantize import quantize_model  # noqa: PLC0415

    model_dir = _settings(args).embedding.model_dir
    path = quantize_model(
        Path(model_dir) if model_dir else None, out_dir=args.out, overwrite=args.force
    )
    _print(str(path))
    return 0


# ---------------------------------------------------------------------- main
COMMANDS: tuple[Callable[[Subcommands], None], ...] = (
    _add_index,
    _add_query,
    _add_stats,
    _add_config,
    _add_eval,
    _add_health,
    _add_serve_metrics,
    _add_quantize,
)
"""One function per subcommand: it adds the subparser and sets ``handler``."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Index files into a hybrid BM25 + Chroma index and search it.",
        epilog=(
            "Settings: flags > LANGCHAIN_HYBRID_<SECTION>__<KEY> environment variables > "
            "--config file > defaults. Global options may also follow the subcommand. "
            "Exit codes: 0 ok, 1 runtime error, 2 usage or configuration error, "
            "130 interrupted."
        ),
    )
    _common_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(commands)
    return parser


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        kind = record.levelname.lower()
        if record.name == PROGRESS_LOGGER and record.levelno == logging.INFO:
            kind = "progress"
        return f"{PROG}: {kind}: {super().format(record)}"


PROGRESS_LOGGER = "langchain_hybrid.ingest"
"""Its ``INFO`` records (ingest progress without a terminal) are shown without ``-v``."""


@contextlib.contextmanager
def _logging(verbosity: int) -> Iterator[None]:
    """Send the package's log records to stderr for the duration of a command.

    Records at ``WARNING`` and above are shown (``-v``: ``INFO``, ``-vv``: ``DEBUG``), and the
    ingest pipeline's progress records (``INFO`` of :data:`PROGRESS_LOGGER`) always.
    """
    package = logging.getLogger("langchain_hybrid")
    progress = logging.getLogger(PROGRESS_LOGGER)
    level = (logging.WARNING, logging.INFO)[verbosity] if verbosity < 2 else logging.DEBUG  # noqa: PLR2004
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    handler.setLevel(min(level, logging.INFO))
    handler.addFilter(lambda r: r.levelno >= level or r.name == PROGRESS_LOGGER)
    saved = package.level, package.propagate, progress.level
    package.addHandler(handler)
    package.propagate = False
    if verbosity:
        package.setLevel(level)
    if progress.getEffectiveLevel() > logging.INFO:
        progress.setLevel(logging.INFO)
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(saved[0])
        package.propagate = saved[1]
        progress.setLevel(saved[2])


def _one_line(error: Exception) -> str:
    """The error's message on one line: the headline, then each further problem after a ``;``."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return " ".join([*lines[:1], "; ".join(lines[1:])]).strip() or type(error).__name__


def _fail(error: Exception, *, debug: bool) -> int:
    if debug:
        traceback.print_exception(type(error), error, error.__traceback__)
    message = _one_line(error)
    if not isinstance(error, (HybridRetrieverError, OSError, UsageError)):
        message = f"unexpected {type(error).__name__}: {message}"
        if not debug:
            message += " (run with --debug for the traceback)"
    sys.stderr.write(f"{PROG}: error: {message}\n")
    return 2 if isinstance(error, _USAGE_ERRORS) else 1


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Args:
        argv: the arguments (without the program name); ``None`` means ``sys.argv[1:]``.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a usage error argparse has already printed
        return e.code if isinstance(e.code, int) else 2
    handler: Handler = args.handler
    with _logging(args.verbose):
        try:
            return handler(args)
        except KeyboardInterrupt:
            sys.stderr.write(f"\n{PROG}: interrupted\n")
            return 130
        except Exception as e:  # noqa: BLE001 - every error becomes one line and an exit code
            return _fail(e, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
