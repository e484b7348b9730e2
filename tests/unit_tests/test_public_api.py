"""The public surface: the README's component table, each module's ``__all__`` and the package.

What the README documents is the API. Its component table names every public module and
exactly the names of that module's ``__all__``; a module is either in the table, ``_``-prefixed
(internal), or in :data:`NOT_IN_TABLE` with the reason. The package's own ``__all__`` is pinned
in test_init.py.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest

import langchain_hybrid
import langchain_hybrid.errors

ROOT = Path(__file__).parents[2]
PACKAGE = ROOT / "langchain_hybrid"

NOT_IN_TABLE = {  # public modules the component table leaves out, and why
    "cli": "its API is the `langchain-hybrid` command (README 'Command line'); __all__ = [main]",
    "callbacks": "the deprecated 0.2 home of the monitoring classes: a forwarder, no own names",
}
RENAMED = ("locking", "loaders", "quantize", "exact_match", "feed")  # made private in 0.3
NAMEDTUPLE_API = frozenset({"_asdict", "_replace", "_fields", "_make"})
THIRD_PARTY_PRIVATE = frozenset({"argparse._SubParsersAction"})  # typeshed's name for it


def _module_names() -> list[str]:
    return sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def _public_modules() -> list[str]:
    return [m for m in _module_names() if not m.startswith("_")]


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"langchain_hybrid.{name}")


def _component_table() -> dict[str, set[str]]:
    """Module -> the names the README's component table lists for it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("| component | module |")
    table = readme[start : readme.index("\n\n", start)].splitlines()[2:]
    out: dict[str, set[str]] = {}
    for row in table:
        names, module = (cell.strip() for cell in row.strip("|").split("|")[:2])
        found = re.match(r"`(\w+)`", module)
        assert found, row
        # only bare identifiers: `retriever.index` is where to find one, not a name
        out.setdefault(found.group(1), set()).update(re.findall(r"`(\w+)`", names))
        if "and subclasses" in names:
            out[found.group(1)] |= _error_tree()
    return out


def _error_tree() -> set[str]:
    return {
        name
        for name, value in vars(langchain_hybrid.errors).items()
        if isinstance(value, type) and issubclass(value, langchain_hybrid.HybridRetrieverError)
    }


@pytest.mark.parametrize("name", [m for m in _public_modules() if m != "callbacks"])
def test_every_public_module_declares_its_own_names_in_all(name: str) -> None:
    module = _module(name)
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, list), f"langchain_hybrid.{name} has no __all__"
    assert exported, name
    assert len(set(exported)) == len(exported), name
    for attr in exported:
        assert isinstance(attr, str)
        assert not attr.startswith("_"), attr
        value = getattr(module, attr)  # AttributeError: __all__ names a missing name
        if inspect.isclass(value) or inspect.isfunction(value):
            # defined here, not re-exported from another module (one home per name)
            assert value.__module__ == module.__name__, (attr, value.__module__)


def test_readme_component_table_is_each_modules_all() -> None:
    table = _component_table()
    tokenize = table.pop("_tokenize")  # its names are re-exported by the package
    assert tokenize == {"TokenizerConfig", "register_tokenizer"}
    tokenize_module = _module("_tokenize")
    for attr in tokenize:
        assert attr in langchain_hybrid.__all__
        assert getattr(langchain_hybrid, attr) is getattr(tokenize_module, attr)
    for name, listed in sorted(table.items()):
        exported = set(_module(name).__all__)
        assert listed == exported, (name, sorted(listed - exported), sorted(exported - listed))


def test_every_module_is_in_the_table_private_or_explained() -> None:
    table = set(_component_table())
    public = set(_public_modules())
    assert public - table == set(NOT_IN_TABLE), sorted(public - table - set(NOT_IN_TABLE))
    assert table <= set(_module_names()), sorted(table - set(_module_names()))
    assert not table & set(NOT_IN_TABLE)


def test_the_modules_outside_the_table_are_what_the_allow_list_says() -> None:
    import tomllib  # noqa: PLC0415 - Python 3.11+, where the tests run

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["scripts"]["langchain-hybrid"] == "langchain_hybrid.cli:main"
    assert _module("cli").__all__ == ["main"]
    callbacks = _module("callbacks")
    own = {n for n, v in vars(callbacks).items() if not n.startswith("_") and n != "annotations"}
    assert own <= {"importlib", "warnings"}, own  # nothing but what the forwarder needs


def test_package_exports_only_documented_names() -> None:
    table = _component_table()
    documented = {attr: module for module, names in table.items() for attr in names}
    for attr in langchain_hybrid.__all__:
        assert attr in documented, attr
        home = _module(documented[attr])
        assert getattr(langchain_hybrid, attr) is getattr(home, attr), attr


@pytest.mark.parametrize("old", RENAMED)
def test_internal_modules_left_no_public_path(old: str) -> None:
    assert (PACKAGE / f"_{old}.py").is_file()
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(f"langchain_hybrid.{old}")


@pytest.mark.parametrize("name", [m for m in _module_names() if m != "callbacks"])
def test_no_module_imports_a_private_name_of_another(name: str) -> None:
    # a name shared between modules is not _-prefixed (it is internal by staying out of
    # __all__, or by living in a _-prefixed module)
    tree = ast.parse((PACKAGE / f"{name}.py").read_text(encoding="utf-8"))
    private = [
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("langchain_hybrid")
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert private == []


@pytest.mark.parametrize("name", ["cli", "evaluation"])
def test_cli_and_evaluation_use_no_private_name_of_another_module(name: str) -> None:
    # they go through public functions and methods, not other modules' internals
    tree = ast.parse((PACKAGE / f"{name}.py").read_text(encoding="utf-8"))
    private = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            private += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in {"self", "cls"}:
                continue
            if node.attr.startswith("__") or node.attr in NAMEDTUPLE_API:
                continue
            if ast.unparse(node) in THIRD_PARTY_PRIVATE:
                continue
            private.append(ast.unparse(node))
    assert private == []
