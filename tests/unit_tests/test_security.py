"""Security: no code execution from files, no writes outside the index, no secrets in messages.

* The package source (parsed with ``ast``, so comments and strings do not count) uses no
  ``pickle``-family module, no ``eval``/``exec``, no unsafe YAML loader, and every ``numpy.load``
  passes ``allow_pickle=False``.
* A BM25 postings file carrying a pickled object array is refused (:class:`IndexCorruptError`)
  without unpickling it; the retriever rebuilds the index from Chroma instead.
* YAML configuration with python tags is refused (:class:`ConfigError`) without running them.
* ``bm25.path`` outside ``store.path`` (``..``, an absolute path, a symlink) is refused.
* A BM25 path that is Chroma's data directory, or contains it, is refused on every construction
  path before anything is opened, and a BM25 save removes only files of its own format.
* Tokens and headers appear in no repr, str or error message. (Logs while talking to a real
  server with a token: ``tests/integration_tests/test_server_faults.py``.)
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import HashEmbeddings
from langchain_core.documents import Document

import langchain_hybrid
from langchain_hybrid import BM25Index, ConfigError, HybridRetriever, IndexCorruptError
from langchain_hybrid.config import HybridConfig, load_config
from langchain_hybrid.retrievers import default_bm25_path

PACKAGE = Path(langchain_hybrid.__file__).parent
SOURCES = sorted(PACKAGE.glob("*.py"))
UNSAFE_MODULES = {
    "pickle",
    "cPickle",
    "_pickle",
    "dill",
    "cloudpickle",
    "marshal",
    "shelve",
    "joblib",
}
UNSAFE_YAML = {"load", "load_all", "unsafe_load", "unsafe_load_all", "full_load", "full_load_all"}
UNSAFE_YAML_LOADERS = {"Loader", "UnsafeLoader", "FullLoader", "CLoader", "CFullLoader"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _import_findings(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [f"import {a.name}" for a in node.names if a.name.split(".")[0] in UNSAFE_MODULES]
    module = node.module or ""
    found = [f"from {module} import ..."] if module.split(".")[0] in UNSAFE_MODULES else []
    if module == "yaml":
        unsafe = UNSAFE_YAML | UNSAFE_YAML_LOADERS
        found += [f"from yaml import {a.name}" for a in node.names if a.name in unsafe]
    return found


def _is_false(value: ast.expr) -> bool:
    return isinstance(value, ast.Constant) and value.value is False


def _call_findings(node: ast.Call) -> list[str]:
    name = _dotted(node.func)
    found = []
    if name in {"eval", "exec", "builtins.eval", "builtins.exec", "__import__"}:
        found.append(f"{name}()")
    if name.startswith("yaml.") and name.split(".", 1)[1] in UNSAFE_YAML:
        found.append(f"{name}()")
    for kw in node.keywords:
        if kw.arg in {"allow_pickle", "shell"} and not _is_false(kw.value):
            found.append(f"{name}({kw.arg}={ast.unparse(kw.value)})")
        if kw.arg == "Loader" and _dotted(kw.value).split(".")[-1] in UNSAFE_YAML_LOADERS:
            found.append(f"{name}(Loader={_dotted(kw.value)})")
    if name in {"np.load", "numpy.load"} and not any(
        kw.arg == "allow_pickle" for kw in node.keywords
    ):
        found.append(f"{name}() without allow_pickle=False")
    return found


def _findings(path: Path) -> list[str]:
    """Unsafe deserialization in one source file, found in its syntax tree."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    loaders = {f"yaml.{loader}" for loader in UNSAFE_YAML_LOADERS}
    for node in ast.walk(tree):
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            found += [f"{where} {f}" for f in _import_findings(node)]
        elif isinstance(node, ast.Call):
            found += [f"{where} {f}" for f in _call_findings(node)]
        elif isinstance(node, ast.Attribute) and _dotted(node) in loaders:
            found.append(f"{where} {_dotted(node)}")
    return found


def test_the_scanner_catches_what_it_looks_for(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import pickle\nfrom yaml import load\nimport numpy as np\nimport yaml\n"
        "eval('1')\nexec('x=1')\nyaml.load(s, Loader=yaml.Loader)\n"
        "np.load(f, allow_pickle=True)\nnp.load(f)\n"
        "# pickle.loads(eval(x)) in a comment\ns = 'yaml.load(eval)'\n",
        encoding="utf-8",
    )
    found = _findings(bad)
    assert len(found) == 9, found  # the comment and the string are not findings


def test_no_unsafe_deserialization_in_the_package() -> None:
    assert len(SOURCES) >= 10
    found = [f for path in SOURCES for f in _findings(path)]
    assert not found, found


# ---------------------------------------------------------------------- pickled npz
class _Tripwire:
    """Unpickling this creates ``path``: proof that a loader executed pickle data."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.path),))


def _plant_pickled_postings(directory: Path, tripwire: Path) -> None:
    """Replace a postings file with an object array and fix the manifest's size and checksum."""
    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    name = next(n for n in manifest["files"] if n.startswith("terms-"))
    objects = np.empty(3, dtype=object)
    objects[:] = [_Tripwire(tripwire), 1, 2]
    buffer = io.BytesIO()
    np.save(buffer, objects, allow_pickle=True)  # pickles the objects
    data = buffer.getvalue()
    (directory / name).write_bytes(data)
    manifest["files"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    manifest_path.write_text(json.dumps(manifest))  # size and checksum pass: the header is read


def test_bm25_load_refuses_a_pickle_bearing_npy(tmp_path: Path) -> None:
    index = BM25Index()
    index.add(["a", "b"], ["red apples", "green pears"])
    index.save(tmp_path / "bm25")
    tripwire = tmp_path / "unpickled"
    _plant_pickled_postings(tmp_path / "bm25", tripwire)
    for verify in (False, True):
        with pytest.raises(IndexCorruptError):
            BM25Index.load(tmp_path / "bm25", verify=verify)
    assert not tripwire.exists(), "the loader unpickled data from the index files"


def test_retriever_rebuilds_instead_of_unpickling(tmp_path: Path) -> None:
    built = HybridRetriever.from_documents(
        [Document(id="a", page_content="red apples"), Document(id="b", page_content="pears")],
        embedding=HashEmbeddings(),
        persist_directory=tmp_path / "index",
        collection_name="kb",
    )
    built.store.client.close()
    tripwire = tmp_path / "unpickled"
    _plant_pickled_postings(default_bm25_path(tmp_path / "index", "kb"), tripwire)
    reopened = HybridRetriever.load(
        tmp_path / "index", collection_name="kb", embedding=HashEmbeddings()
    )
    assert not tripwire.exists()
    assert sorted(reopened.bm25.ids) == ["a", "b"]
    assert reopened.invoke("apples")[0].id == "a"
    reopened.store.client.close()


# ---------------------------------------------------------------------- YAML tags
@pytest.mark.parametrize(
    "template",
    [
        "store:\n  path: !!python/object/apply:os.mkdir ['{marker}']\n",
        "store: !!python/object/apply:os.mkdir ['{marker}']\n",
        "fusion:\n  k: !!python/object/new:os.mkdir ['{marker}']\n",
        "store:\n  path: !!python/name:os.system\n",
        "!!python/object/apply:os.mkdir ['{marker}']\n",
        "cache:\n  enabled: !!python/module:os\n",
        "store: &a !!python/object/apply:os.mkdir ['{marker}']\nfusion: *a\n",
    ],
)
def test_yaml_python_tags_are_refused_without_running(tmp_path: Path, template: str) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "config.yaml"
    path.write_text(template.format(marker=marker), encoding="utf-8")
    with pytest.raises(ConfigError):
        load_config(path, environ={})
    assert not marker.exists()


def test_python_tags_in_environment_values_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    # a setting that is parsed as YAML (text settings such as store.path are taken as written)
    environ = {"LANGCHAIN_HYBRID_STORE__PORT": f"!!python/object/apply:os.mkdir ['{marker}']"}
    with pytest.raises(ConfigError):
        load_config({}, environ=environ)
    assert not marker.exists()


# ---------------------------------------------------------------------- bm25.path
def test_bm25_path_may_not_escape_store_path(tmp_path: Path) -> None:
    store = tmp_path / "index"
    store.mkdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (store / "link").symlink_to(outside, target_is_directory=True)
    for bad in (
        str(store / ".." / "elsewhere"),
        str(outside),
        "/etc/langchain",
        str(store / "link" / "bm25"),
    ):
        with pytest.raises(ConfigError, match=r"outside store\.path"):
            load_config({"store": {"path": str(store)}, "bm25": {"path": bad}}, environ={})
    for good in (str(store / "bm25" / "kb"), str(store / "lex"), str(store / "a" / ".." / "b")):
        config = load_config({"store": {"path": str(store)}, "bm25": {"path": good}}, environ={})
        assert config.bm25.path == good
    allowed = load_config(
        {
            "store": {"path": str(store)},
            "bm25": {"path": str(outside), "allow_outside_store": True},
        },
        environ={},
    )
    assert allowed.bm25.path == str(outside)


@pytest.mark.parametrize("mode", ["http", "ephemeral"])
def test_bm25_path_may_not_escape_store_path_in_any_mode(tmp_path: Path, mode: str) -> None:
    store = {"mode": mode, "path": str(tmp_path / "data")}
    with pytest.raises(ConfigError, match=r"outside store\.path"):
        load_config({"store": store, "bm25": {"path": str(tmp_path / "elsewhere")}}, environ={})
    inside = str(tmp_path / "data" / "bm25")
    assert load_config({"store": store, "bm25": {"path": inside}}, environ={}).bm25.path == inside


def test_from_config_with_an_escaping_bm25_path_writes_nothing(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    config = {
        "store": {"mode": "persistent", "path": str(tmp_path / "index"), "collection": "kb"},
        "bm25": {"path": str(tmp_path / "index" / ".." / "outside")},
    }
    with pytest.raises(ConfigError):
        HybridRetriever.from_config(config, embedding=HashEmbeddings())
    assert not outside.exists()
    assert not (tmp_path / "index").exists()


# ---------------------------------------------------------------------- secrets
TOKEN = "tok-5ecr3t-Hq8Vn2"  # noqa: S105 - a test value
HEADER = "hdr-5ecr3t-Rt6Yb0"


def _secret_config(**store: Any) -> dict[str, Any]:
    return {"store": {"mode": "http", "token": TOKEN, "headers": {"X-Api-Key": HEADER}, **store}}


def test_reprs_hide_token_and_headers() -> None:
    config = load_config(_secret_config(), environ={})
    assert config.store.token is not None
    assert config.store.token.get_secret_value() == TOKEN
    again = load_config(config, environ={})  # a HybridConfig passed back keeps its secrets
    assert again.store.headers["X-Api-Key"].get_secret_value() == HEADER
    for text in (
        repr(config),
        str(config),
        repr(config.store),
        repr(config.model_dump()),
        config.model_dump_json(),
        repr(HybridConfig.model_validate(_secret_config())),
    ):
        assert TOKEN not in text
        assert HEADER not in text


@pytest.mark.parametrize(
    ("config", "environ"),
    [
        (_secret_config(port="not-a-port"), {}),
        (_secret_config(bogus=1), {}),
        (_secret_config(mode="persistent", path="/srv/a") | {"bm25": {"path": "/srv/b"}}, {}),
        ({"bm25": {"path": "/srv/b"}}, {"LANGCHAIN_HYBRID_STORE__TOKEN": TOKEN}),
        ({}, {"LANGCHAIN_HYBRID_STORE__HEADERS": f"{{X-Api-Key: [{TOKEN}}}"}),  # not valid YAML
        ({}, {"LANGCHAIN_HYBRID_STORE__TOKEN": TOKEN, "LANGCHAIN_HYBRID_FUSION__K": "0"}),
        (_secret_config(headers={"X-Api-Key": HEADER, "X-Other": None}), {}),
    ],
)
def test_config_errors_never_echo_secrets(config: dict[str, Any], environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(config, environ=environ)
    message = str(raised.value)
    assert TOKEN not in message, message
    assert HEADER not in message, message


# ---------------------------------------------------------------------- Chroma's directory
def _built_index(directory: Path) -> None:
    built = HybridRetriever.from_documents(
        [Document(id="a", page_content="red apples"), Document(id="b", page_content="pears")],
        embedding=HashEmbeddings(),
        persist_directory=directory,
        collection_name="kb",
    )
    built.store.client.close()


def _dangerous_openings(directory: Path) -> dict[str, Any]:
    """Every construction path, each given a BM25 path that is (or holds) Chroma's directory."""
    store = {"mode": "persistent", "path": str(directory), "collection": "kb"}

    def from_store(path: Path) -> Any:
        from langchain_hybrid import ChromaStore, StoreConfig  # noqa: PLC0415

        chroma = ChromaStore(StoreConfig(**store), create_if_missing=False)
        try:
            return HybridRetriever.from_store(chroma, HashEmbeddings(), bm25_path=path)
        finally:
            chroma.client.close()

    def constructor(path: Path) -> Any:
        from langchain_hybrid import ChromaStore, StoreConfig  # noqa: PLC0415

        chroma = ChromaStore(StoreConfig(**store), create_if_missing=False)
        try:
            return HybridRetriever(
                store=chroma, bm25=BM25Index(), embedding=HashEmbeddings(), bm25_path=path
            )
        finally:
            chroma.client.close()

    return {
        "from_config": lambda path: HybridRetriever.from_config(
            {"store": store, "bm25": {"path": str(path), "allow_outside_store": True}},
            embedding=HashEmbeddings(),
        ),
        "from_store": from_store,
        "from_documents": lambda path: HybridRetriever.from_documents(
            [Document(id="c", page_content="plums")],
            embedding=HashEmbeddings(),
            persist_directory=directory,
            collection_name="kb",
            bm25_path=path,
        ),
        "load": lambda path: HybridRetriever.load(
            directory, collection_name="kb", embedding=HashEmbeddings(), bm25_path=path
        ),
        "constructor": constructor,
    }


@pytest.mark.parametrize(
    "how", ["from_config", "from_store", "from_documents", "load", "constructor"]
)
@pytest.mark.parametrize("where", ["same", "parent", "dotted"])
def test_a_bm25_path_holding_chromas_directory_is_refused(
    tmp_path: Path, how: str, where: str
) -> None:
    directory = tmp_path / "index"
    _built_index(directory)
    before = sorted(p.name for p in directory.iterdir())
    bm25_path = {
        "same": directory,
        "parent": tmp_path,
        "dotted": directory / "bm25" / ".." / ".." / "index",
    }[where]
    with pytest.raises(ConfigError, match="Chroma's data directory"):
        _dangerous_openings(directory)[how](bm25_path)
    assert sorted(p.name for p in directory.iterdir()) == before
    assert (directory / "chroma.sqlite3").is_file()
    reopened = HybridRetriever.load(directory, collection_name="kb", embedding=HashEmbeddings())
    assert sorted(reopened.bm25.ids) == ["a", "b"]
    assert reopened.store.count() == 2
    reopened.store.client.close()


def test_the_default_bm25_path_and_siblings_stay_valid(tmp_path: Path) -> None:
    directory = tmp_path / "index"
    _built_index(directory)
    for path in (default_bm25_path(directory, "kb"), directory / "lexical", tmp_path / "beside"):
        opened = HybridRetriever.load(
            directory, collection_name="kb", embedding=HashEmbeddings(), bm25_path=path
        )
        assert sorted(opened.bm25.ids) == ["a", "b"]
        assert (path / "manifest.json").is_file()
        opened.store.client.close()


def test_a_save_removes_only_its_own_files(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    directory.mkdir()
    foreign = {
        "chroma.sqlite3": b"SQLite format 3\x00",
        ".writer.lock": b"123",
        "notes.txt": b"mine",
        "docs-backup.json": b"[]",
        "postings-1-0123456789abcdef.npz.bak": b"x",
        "vocab-1-0123456789ABCDEF.json": b"[]",
    }
    for name, data in foreign.items():
        (directory / name).write_bytes(data)
    (directory / "sub").mkdir()
    index = BM25Index()
    index.add(["a"], ["red apples"])
    index.save(directory)
    index.add(["b"], ["green pears"])
    index.save(directory)  # the second save removes the first one's data files, nothing else
    for name, data in foreign.items():
        assert (directory / name).read_bytes() == data, name
    assert (directory / "sub").is_dir()
    own = {p.name for p in directory.iterdir()} - set(foreign) - {"sub", "manifest.json"}
    manifest = json.loads((directory / "manifest.json").read_bytes())
    assert own == set(manifest["files"]), "stale files of its own format were removed"
    assert sorted(BM25Index.load(directory).ids) == ["a", "b"]


# ---------------------------------------------------------------------- network
def test_the_tests_cannot_reach_the_network() -> None:
    """pytest-socket (pyproject addopts) lets tests connect to loopback servers only.

    127.0.0.2 is loopback too (nothing leaves the machine) but not in the allowed list, so the
    guard refuses it before any packet is sent: a download would fail just as loudly.
    """
    import socket  # noqa: PLC0415

    from pytest_socket import SocketConnectBlockedError  # noqa: PLC0415

    with (
        pytest.warns(UserWarning, match=r"127\.0\.0\.2"),
        pytest.raises(SocketConnectBlockedError),
        socket.create_connection(("127.0.0.2", 9), 1),
    ):
        pass


@pytest.mark.parametrize("shape", ["file", "dangling link", "manifest is a directory"])
def test_an_unwritable_bm25_directory_is_a_typed_error_and_nothing_is_removed(
    tmp_path: Path, shape: str
) -> None:
    directory = tmp_path / "index"
    _built_index(directory)
    bm25 = default_bm25_path(directory, "kb")
    for child in bm25.iterdir():
        child.unlink()
    bm25.rmdir()
    if shape == "file":
        bm25.write_text("someone's notes")
    elif shape == "dangling link":
        bm25.symlink_to(tmp_path / "nowhere")
    else:
        (bm25 / "manifest.json").mkdir(parents=True)
    with pytest.raises(IndexCorruptError, match="cannot write the BM25 index"):
        HybridRetriever.load(directory, collection_name="kb", embedding=HashEmbeddings())
    if shape == "file":
        assert bm25.read_text() == "someone's notes"
    elif shape == "dangling link":
        assert bm25.is_symlink()
        assert not (tmp_path / "nowhere").exists()
    else:
        assert (bm25 / "manifest.json").is_dir()
    assert (directory / "chroma.sqlite3").is_file()
