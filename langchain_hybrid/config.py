"""Settings: typed models for every section, loaded from YAML, a dict and the environment.

Source order, highest first: explicit overrides (constructor arguments) > environment
(``LANGCHAIN_HYBRID_<SECTION>__<KEY>``, nested keys joined by ``__``) > the YAML file > defaults.
Sources are deep-merged. Every model forbids unknown keys, so a typo is an error naming the key,
and the file and line (or the environment variable) it came from. YAML is read with
``yaml.safe_load`` semantics only. Nothing is read at import time.

Text settings (``str``, ``SecretStr``, ``Literal`` of strings, paths, optionally ``None``) keep
their value as written, wherever YAML would read it as something else: an environment value is
taken verbatim (``LANGCHAIN_HYBRID_STORE__COLLECTION=2024`` is the collection ``"2024"``,
``LANGCHAIN_HYBRID_STORE__HOST=on`` the host ``"on"``; for a setting that may be null, an empty
value, ``null`` or ``~`` mean ``None``), and in a file ``collection: 2024`` or ``token: 0123``
keep the text ``"2024"`` and ``"0123"``. Every other environment value is parsed as YAML
(``LANGCHAIN_HYBRID_STORE__PORT=8001``, ``LANGCHAIN_HYBRID_FUSION__WEIGHTS=[0.4, 0.6]``,
``LANGCHAIN_HYBRID_CACHE__ENABLED=false``). Sections given as a Python dict are validated as
they are (a number is not a string there).
"""

from __future__ import annotations

__all__ = [
    "BM25Settings",
    "CacheSettings",
    "EmbeddingSettings",
    "FusionSettings",
    "HybridConfig",
    "MonitoringSettings",
    "load_config",
]

import os
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any, Literal, NamedTuple

import yaml
from langchain_core.embeddings import Embeddings
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from langchain_hybrid.adaptive import AdaptiveWeights
from langchain_hybrid.bm25 import BM25Params
from langchain_hybrid.errors import ConfigError
from langchain_hybrid.fusion import FusionMethod, check_count, check_rrf_k, check_weights
from langchain_hybrid.stores import StoreConfig

ENV_PREFIX = "LANGCHAIN_HYBRID_"
CONFIG_ENV = "LANGCHAIN_HYBRID_CONFIG"


class BM25Settings(BM25Params):
    """The ``bm25`` section: BM25 parameters, tokenizer, and where the files live.

    ``path`` defaults to ``<store.path>/bm25/<collection>`` in persistent mode; in other modes
    the index is kept in memory and rebuilt from Chroma at start unless a path is given. A
    ``path`` outside ``store.path`` (the local data directory, in every mode; after resolving
    ``..`` and symlinks) is rejected unless ``allow_outside_store`` is set, so a config file
    cannot point writes at arbitrary places.
    """

    path: str | None = None
    allow_outside_store: bool = False

    def params(self) -> BM25Params:
        """The parameters saved with the index (everything but the location)."""
        return BM25Params(k1=self.k1, b=self.b, tokenizer=self.tokenizer)


class FusionSettings(BaseModel):
    """The ``fusion`` section: how the legs are combined, and the default result size.

    ``group_by`` names a metadata key: only each group's best document is kept (one chunk per
    source). ``rerank_k`` is how many fused candidates a reranker sees; the reranker itself is
    a Python object (``HybridRetriever(reranker=...)``), never imported from YAML.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: FusionMethod = "zscore"
    rrf_k: float = 60.0
    weights: tuple[float, float] = (0.5, 0.5)
    fetch_k: int = 50
    k: int = 4
    on_leg_error: Literal["degrade", "raise"] = "degrade"
    rerank_k: int = 20
    group_by: str | None = Field(default=None, min_length=1)
    adaptive: AdaptiveWeights | None = None
    """Query-adaptive weights (``langchain-hybrid eval --tune`` prints them; ``None``: fixed)."""

    @field_validator("weights", mode="before")
    @classmethod
    def _weights(cls, value: object) -> tuple[float, ...]:
        return check_weights(value, 2)

    @field_validator("rrf_k", mode="before")
    @classmethod
    def _rrf_k(cls, value: object) -> float:
        return check_rrf_k(value)

    @field_validator("fetch_k", "k", "rerank_k", mode="before")
    @classmethod
    def _count(cls, value: object, info: ValidationInfo) -> int:
        return check_count(str(info.field_name), value)


class CacheSettings(BaseModel):
    """The ``cache`` section: fused results and query embeddings, in memory.

    Every write through the retriever clears the result cache before it returns; writes by
    other processes are noticed within ``refresh_interval_seconds`` (a query then checks the
    collection's write generation and count, and resyncs BM25 if they moved).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    max_entries: int = Field(default=10_000, gt=0)
    ttl_seconds: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_bytes: int | None = Field(default=None, gt=0)
    """Budget of the result cache's estimated size (``None``: only ``max_entries`` bounds it)."""
    refresh_interval_seconds: float | None = Field(default=5.0, gt=0, allow_inf_nan=False)


class MonitoringSettings(BaseModel):
    """The ``monitoring`` section: metrics window and health thresholds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: int = Field(default=10_000, gt=0)
    p95_threshold_ms: float = Field(default=500.0, gt=0, allow_inf_nan=False)
    error_rate_threshold: float = Field(default=0.05, ge=0, le=1)
    degraded_rate_threshold: float = Field(default=0.05, ge=0, le=1)
    min_requests: int = Field(default=20, ge=1)
    health_cache_seconds: float = Field(default=2.0, ge=0, allow_inf_nan=False)
    """How long a scrape reuses the last health result (0: run the checks on every scrape)."""


EmbeddingProvider = Literal["minilm", "openai", "huggingface", "ollama", "fastembed"]


class EmbeddingSettings(BaseModel):
    """The ``embedding`` section: which model embeds documents and queries.

    ``minilm`` (default) is the bundled offline all-MiniLM-L6-v2 runner; the others are optional
    LangChain integrations (``pip install langchain-openai`` etc.) given ``model`` and
    ``options`` (extra keyword arguments of the integration's class). ``precision`` and
    ``threads`` apply to ``minilm`` only (``threads`` None: one per CPU this process may use).
    ``allow_mismatch``: open an index that records another model or precision than this one
    (a warning instead of ``EmbeddingMismatchError``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: EmbeddingProvider = "minilm"
    model: str | None = None
    model_dir: str | None = None
    batch_size: int = Field(default=32, gt=0)
    threads: int | None = Field(default=None, gt=0)
    precision: Literal["fp32", "int8"] = "fp32"
    options: dict[str, Any] = Field(default_factory=dict)
    allow_mismatch: bool = False

    @model_validator(mode="after")
    def _precision_is_minilm(self) -> EmbeddingSettings:
        if self.precision != "fp32" and self.provider != "minilm":
            msg = (
                f"precision {self.precision!r} applies to the minilm provider only "
                f"(provider is {self.provider!r})"
            )
            raise ValueError(msg)
        return self


class HybridConfig(BaseModel):
    """The whole configuration (see ``examples/hybrid.yaml`` for every key and default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    store: StoreConfig = Field(default_factory=StoreConfig)
    bm25: BM25Settings = Field(default_factory=BM25Settings)
    fusion: FusionSettings = Field(default_factory=FusionSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)

    @model_validator(mode="after")
    def _bm25_path_inside_store(self) -> HybridConfig:
        if self.bm25.path is None:
            return self
        check_bm25_path(self.bm25.path, self.store)
        if self.bm25.allow_outside_store:
            return self
        root = Path(self.store.path).resolve()
        target = Path(self.bm25.path).resolve()
        if target != root and root not in target.parents:
            msg = (
                f"bm25.path {self.bm25.path!r} is outside store.path {self.store.path!r}; "
                "set bm25.allow_outside_store: true to allow it"
            )
            raise ValueError(msg)
        return self

    def retriever_fields(self) -> dict[str, Any]:
        """The ``fusion`` section as :class:`HybridRetriever` field values."""
        fusion = self.fusion
        return {
            "k": fusion.k,
            "fetch_k": fusion.fetch_k,
            "rrf_k": fusion.rrf_k,
            "weights": fusion.weights,
            "fusion": fusion.method,
            "adaptive": fusion.adaptive,
            "on_leg_error": fusion.on_leg_error,
            "rerank_k": fusion.rerank_k,
            "group_by": fusion.group_by,
            "refresh_interval_seconds": self.cache.refresh_interval_seconds,
        }

    def bm25_path(self) -> Path | None:
        """Where the BM25 files live (``None``: in memory, rebuilt from Chroma at start)."""
        if self.bm25.path is not None:
            return Path(self.bm25.path)
        if self.store.mode == "persistent":
            return Path(self.store.path) / "bm25" / self.store.collection
        return None


def check_bm25_path(path: str | os.PathLike[str], store: StoreConfig) -> None:
    """Refuse a BM25 directory that is Chroma's data directory or holds it.

    The BM25 files and Chroma's files must never share a directory: a BM25 save replaces and
    removes files of its own format in its directory, and Chroma's directory is Chroma's alone.
    The default ``<store.path>/bm25/<collection>`` is always accepted. Called by every
    construction path (configuration, :class:`HybridRetriever` and its factories).

    Raises:
        ConfigError: in persistent mode, ``path`` resolves to ``store.path`` or to a directory
            that contains it.
    """
    if store.mode != "persistent":
        return
    chroma_dir = Path(store.path).resolve()
    target = Path(path).resolve()
    if target == chroma_dir or target in chroma_dir.parents:
        relation = "is" if target == chroma_dir else "contains"
        msg = (
            f"bm25 path {os.fspath(path)!r} {relation} Chroma's data directory "
            f"{store.path!r}: BM25 files need a directory of their own (the default is "
            f"<store.path>/bm25/<collection>)"
        )
        raise ConfigError(msg)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``override`` into ``base`` recursively (dicts merge, everything else replaces)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


# ---------------------------------------------------------------------- text settings
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})  # YAML's spellings of null
_TEXT_TYPES = (str, SecretStr, PurePath)
_YAML_STR = "tag:yaml.org,2002:str"


def _members(annotation: object) -> tuple[object, ...]:
    """The alternatives of a union annotation (``Annotated`` unwrapped), else the annotation."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in {typing.Union, types.UnionType}:
        return tuple(m for a in typing.get_args(annotation) for m in _members(a))
    return (annotation,)


def _is_text_member(member: object) -> bool:
    origin = typing.get_origin(member)
    if origin is Literal:
        return all(isinstance(a, str) for a in typing.get_args(member))
    return origin is None and isinstance(member, type) and issubclass(member, _TEXT_TYPES)


def _is_text(annotation: object) -> bool:
    """Whether a field holds text: every alternative but ``None`` is a string type or literal."""
    members = [m for m in _members(annotation) if m is not type(None)]
    return bool(members) and all(_is_text_member(m) for m in members)


def _field_annotation(member: object, key: str | int) -> object | None:
    """The annotation of field ``key`` if ``member`` is a settings model that has it."""
    if isinstance(member, type) and issubclass(member, BaseModel) and isinstance(key, str):
        field = member.model_fields.get(key)
        return field.annotation if field is not None else None
    return None


def _mapping_value(args: tuple[object, ...], key: str | int) -> object | None:
    """``dict[K, V]`` / ``Mapping[K, V]``: every string key holds a ``V``."""
    return args[1] if len(args) == 2 and isinstance(key, str) else None  # noqa: PLR2004


def _tuple_item(args: tuple[object, ...], key: str | int) -> object | None:
    """``tuple[X, ...]``: every index holds an ``X``; ``tuple[X, Y]``: index 0 an X, 1 a Y."""
    if not isinstance(key, int):
        return None
    if len(args) == 2 and args[1] is Ellipsis:  # noqa: PLR2004
        return args[0]
    return args[key] if 0 <= key < len(args) else None


def _list_item(args: tuple[object, ...], key: str | int) -> object | None:
    """``list[X]`` / ``Sequence[X]``: every index holds an ``X``."""
    return args[0] if len(args) == 1 and isinstance(key, int) else None


_CHILD_OF_GENERIC: dict[object, Callable[[tuple[object, ...], str | int], object | None]] = {
    dict: _mapping_value,
    Mapping: _mapping_value,
    tuple: _tuple_item,
    list: _list_item,
    Sequence: _list_item,
}
"""How to find the annotation of a key inside a generic, by the generic's origin."""


def _child_type(annotation: object, key: str | int) -> object | None:
    """The annotation of ``key`` inside a value of type ``annotation`` (``None``: unknown)."""
    for member in _members(annotation):
        origin = typing.get_origin(member)
        if origin is None:
            child = _field_annotation(member, key)
        else:
            pick = _CHILD_OF_GENERIC.get(origin)
            child = pick(typing.get_args(member), key) if pick is not None else None
        if child is not None:
            return child
    return None


def _field_type(path: Sequence[str]) -> object | None:
    """The annotation of the setting at ``path`` (``None``: no such setting)."""
    annotation: object | None = HybridConfig
    for part in path:
        if annotation is None:
            return None
        annotation = _child_type(annotation, part)
    return annotation


def _keep_text(value: Any, node: yaml.Node | None, annotation: object | None) -> Any:
    """Put back the text as written where YAML read a text setting as a number, bool or date.

    ``collection: 2024``, ``host: on`` and ``token: 0123`` (an octal int to YAML 1.1) become
    ``"2024"``, ``"on"`` and ``"0123"``; nulls stay ``None``. ``value`` is what
    ``yaml.safe_load`` made of ``node``; only places the models type as text change.
    """
    if annotation is None or node is None:
        return value
    if isinstance(node, yaml.ScalarNode):
        return _keep_scalar_text(value, node, annotation)
    if isinstance(node, yaml.MappingNode) and isinstance(value, dict):
        return _keep_text_in_mapping(value, node, annotation)
    if isinstance(node, yaml.SequenceNode) and isinstance(value, list):
        return _keep_text_in_list(value, node, annotation)
    return value


def _keep_scalar_text(value: Any, node: yaml.ScalarNode, annotation: object) -> Any:
    if value is not None and not isinstance(value, str) and _is_text(annotation):
        return node.value
    return value


def _keep_text_in_mapping(
    value: dict[Any, Any], node: yaml.MappingNode, annotation: object
) -> dict[Any, Any]:
    nodes = {
        k.value: v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.tag == _YAML_STR
    }
    return {
        k: _keep_text(v, nodes.get(k), _child_type(annotation, k)) if isinstance(k, str) else v
        for k, v in value.items()
    }


def _keep_text_in_list(value: list[Any], node: yaml.SequenceNode, annotation: object) -> list[Any]:
    if len(value) != len(node.value):
        return value
    return [
        _keep_text(v, n, _child_type(annotation, i))
        for i, (v, n) in enumerate(zip(value, node.value, strict=True))
    ]


# ---------------------------------------------------------------------- sources
def _key_lines(node: yaml.Node, path: tuple[str, ...], out: dict[tuple[str, ...], int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*path, str(key_node.value))
            out[key] = key_node.start_mark.line + 1
            _key_lines(value_node, key, out)


def read_yaml(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    """Read a YAML config file safely; returns the data and the line of every key.

    Text settings keep the text as written (``collection: 2024`` is ``"2024"``).

    Raises:
        ConfigError: the file is missing, unreadable, not YAML, or not a mapping.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as e:
        msg = f"cannot read config file {file}: {e.strerror or e}"
        raise ConfigError(msg) from e
    except UnicodeDecodeError as e:
        msg = f"config file {file} is not UTF-8 text: {e.reason} at byte {e.start}"
        raise ConfigError(msg) from None
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        msg = f"{file}: invalid YAML: {e}"
        raise ConfigError(msg) from e
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        msg = f"{file}: the top level must be a mapping of sections, got {type(data).__name__}"
        raise ConfigError(msg)
    lines: dict[tuple[str, ...], int] = {}
    if node is not None:
        _key_lines(node, (), lines)
    return _keep_text(data, node, HybridConfig), lines


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Settings from ``LANGCHAIN_HYBRID_<SECTION>__<KEY>`` variables.

    A text setting takes the value verbatim (for one that may be null, an empty value, ``null``
    or ``~`` mean ``None``); any other value is parsed as YAML. Variables without ``__`` (such
    as ``LANGCHAIN_HYBRID_MODEL_DIR``) are not settings overrides.

    Raises:
        ConfigError: a variable name is malformed, two variables set the same setting, or a
            value is not valid YAML. The message names the variables, never their values.
    """
    return _env_settings(environ)[0]


def _env_settings(
    environ: Mapping[str, str],
) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """The settings from the environment, and the variable that set each key path."""
    out: dict[str, Any] = {}
    names: dict[tuple[str, ...], str] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        parts = tuple(p.lower() for p in name[len(ENV_PREFIX) :].split("__"))
        if not all(parts):
            msg = f"malformed settings variable {name}"
            raise ConfigError(msg)
        for path, other in names.items():
            if path[: len(parts)] == parts or parts[: len(path)] == path:
                first, second = sorted((other, name))
                shared = ".".join(path if len(path) < len(parts) else parts)
                msg = f"environment variables {first} and {second} both set {shared}"
                raise ConfigError(msg)
        names[parts] = name
        value = _env_value(name, raw, _field_type(parts))
        cursor = out
        for part in parts[:-1]:
            cursor = cursor.setdefault(part, {})
        cursor[parts[-1]] = value
    return out, names


def _env_value(name: str, raw: str, annotation: object | None) -> Any:
    if annotation is not None and _is_text(annotation):
        if type(None) in _members(annotation) and raw.strip() in _NULLS:
            return None
        return raw
    if not raw.strip():
        return None
    try:
        value = yaml.safe_load(raw)
        node = yaml.compose(raw, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        # the value may be a secret: name the variable, never echo what it holds
        msg = f"environment {name}: the value is not valid YAML"
        raise ConfigError(msg) from None
    return _keep_text(value, node, annotation)


class _Sources(NamedTuple):
    """Every source of a merged configuration, to say where a bad value came from."""

    base: str  # the file, "config dict", "HybridConfig" or "defaults"
    data: Mapping[str, Any]
    lines: Mapping[tuple[str, ...], int]
    env: Mapping[str, Any]
    env_names: Mapping[tuple[str, ...], str]
    overrides: Mapping[Any, Any]

    def where(self, loc: tuple[str, ...]) -> str:
        """The source of the value at ``loc``: the most specific key found, highest source first."""
        for n in range(len(loc), 0, -1):
            key = loc[:n]
            if _has_key(self.overrides, key):
                return "overrides"
            if _has_key(self.env, key):
                names = {
                    name
                    for path, name in self.env_names.items()
                    if path[:n] == key or key[: len(path)] == path
                }
                return "environment " + ", ".join(sorted(names))
            if _has_key(self.data, key):
                line = next(
                    (self.lines[key[:i]] for i in range(n, 0, -1) if key[:i] in self.lines), None
                )
                return f"{self.base}:{line}" if line else self.base
        used = [
            label
            for label, present in (
                (self.base, bool(self.data)),
                ("environment", bool(self.env)),
                ("overrides", bool(self.overrides)),
            )
            if present
        ]
        return " + ".join(used) or self.base


_MISSING = object()


def _has_key(data: object, key: tuple[str, ...]) -> bool:
    for part in key:
        if not isinstance(data, Mapping):
            return False
        found = next((k for k in data if str(k) == part), _MISSING)
        if found is _MISSING:
            return False
        data = data[found]
    return True


def load_config(
    path: str | os.PathLike[str] | Mapping[str, Any] | HybridConfig | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> HybridConfig:
    """Build the effective configuration (see :func:`_load_config`)."""
    try:
        return _load_config(path, overrides=overrides, environ=environ)
    except RecursionError:
        msg = "invalid configuration: nested too deeply"
        raise ConfigError(msg) from None


def _load_config(
    path: str | os.PathLike[str] | Mapping[str, Any] | HybridConfig | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> HybridConfig:
    """Build the effective configuration.

    Args:
        path: a YAML file, a dict of sections, a ready :class:`HybridConfig`, or ``None`` (the
            file named by ``LANGCHAIN_HYBRID_CONFIG`` if set, else defaults only).
        overrides: sections that win over everything else (e.g. from command-line flags).
        environ: the environment to read overrides from (default ``os.environ``).

    Raises:
        ConfigError: a key is unknown or a value invalid; the message names the key and where
            it came from: the file and line, ``environment <VARIABLE>`` or ``overrides``.
            Secret values (``store.token``, ``store.headers``) are never shown.
    """
    environ = os.environ if environ is None else environ
    valid_source = path is None or isinstance(path, (str, os.PathLike, Mapping, HybridConfig))
    if not valid_source or not isinstance(overrides, (Mapping, type(None))):
        msg = "load_config takes a path, a dict of sections or a HybridConfig (and dict overrides)"
        raise ConfigError(msg)
    if path is None and environ.get(CONFIG_ENV):
        path = environ[CONFIG_ENV]
    lines: dict[tuple[str, ...], int] = {}
    source = "defaults"
    if isinstance(path, HybridConfig):
        data: dict[str, Any] = path.model_dump(mode="json", exclude_unset=True)
        data, source = _with_secrets(path, data), "HybridConfig"
    elif isinstance(path, Mapping):
        data, source = dict(path), "config dict"
    elif path is not None:
        data, lines = read_yaml(path)
        source = str(path)
    else:
        data = {}
    env, env_names = _env_settings(environ)
    try:
        merged = deep_merge(data, env)
        merged = deep_merge(merged, overrides or {})
    except (TypeError, AttributeError) as e:
        msg = f"invalid configuration in {source}: sections must be mappings ({e})"
        raise ConfigError(msg) from None
    try:
        return HybridConfig.model_validate(merged)
    except ValidationError as e:
        sources = _Sources(source, data, lines, env, env_names, overrides or {})
        raise _config_error(e, sources) from None


def _with_secrets(config: HybridConfig, data: dict[str, Any]) -> dict[str, Any]:
    store = data.get("store")
    if isinstance(store, dict):
        if config.store.token is not None:
            store["token"] = config.store.token.get_secret_value()
        store["headers"] = {k: v.get_secret_value() for k, v in config.store.headers.items()}
    return data


_SECRET_KEYS = frozenset({"token", "headers", "options"})


def _config_error(error: ValidationError, sources: _Sources) -> ConfigError:
    problems = []
    for item in error.errors():
        loc = tuple(str(p) for p in item["loc"])
        key = ".".join(loc) or "(top level)"
        where = sources.where(loc)
        if item["type"] == "extra_forbidden":
            problems.append(f"{where}: unknown key {key!r}")
            continue
        value = item.get("input")
        secret = not _SECRET_KEYS.isdisjoint(loc)
        # our validators' messages (pydantic prefixes them) already name the value
        message = item["msg"].removeprefix("Value error, ")
        named = message.endswith(f"got {value!r}")
        shown = "" if secret or named or isinstance(value, (dict, list)) else f" (got {value!r})"
        problems.append(f"{where}: {key}: {message}{shown}")
    return ConfigError("invalid configuration:\n  " + "\n  ".join(problems))


_PROVIDERS: dict[str, tuple[str, str, str, str]] = {
    # provider: (module, class, keyword for the model name, pip package)
    "openai": ("langchain_openai", "OpenAIEmbeddings", "model", "langchain-openai"),
    "huggingface": (
        "langchain_huggingface",
        "HuggingFaceEmbeddings",
        "model_name",
        "langchain-huggingface",
    ),
    "ollama": ("langchain_ollama", "OllamaEmbeddings", "model", "langchain-ollama"),
    "fastembed": (
        "langchain_community.embeddings.fastembed",
        "FastEmbedEmbeddings",
        "model_name",
        "langchain-community fastembed",
    ),
}


def make_embedding(settings: EmbeddingSettings) -> Embeddings:
    """Instantiate the embedding model an :class:`EmbeddingSettings` names.

    Raises:
        ConfigError: the provider's package is not installed, or its class rejected the options.
    """
    if settings.provider == "minilm":
        from langchain_hybrid.embeddings import MiniLMEmbeddings  # noqa: PLC0415

        return MiniLMEmbeddings(
            model_dir=Path(settings.model_dir) if settings.model_dir else None,
            batch_size=settings.batch_size,
            intra_op_threads=settings.threads,
            precision=settings.precision,
            **settings.options,
        )
    module_name, class_name, model_key, package = _PROVIDERS[settings.provider]
    import importlib  # noqa: PLC0415

    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        msg = (
            f"embedding provider {settings.provider!r} needs `pip install {package}` "
            f"({module_name} is not installed)"
        )
        raise ConfigError(msg) from e
    kwargs = dict(settings.options)
    if settings.model:
        kwargs[model_key] = settings.model
    try:
        embedding: Embeddings = getattr(module, class_name)(**kwargs)
    except Exception as e:
        msg = f"cannot create {class_name} from embedding settings: {e}"
        raise ConfigError(msg) from e
    return embedding
