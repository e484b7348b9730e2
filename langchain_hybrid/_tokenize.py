r"""Text to BM25 tokens: identifiers, CJK scripts, stopwords, stemming, and user tokenizers.

One :class:`Tokenizer` serves documents (:meth:`Tokenizer.__call__`) and queries
(:meth:`Tokenizer.query`); its :class:`TokenizerConfig` is saved with the BM25 index, so queries
are always tokenized as the documents were.

The built-in tokenizer (``name="standard"``) applies these rules after Unicode normalisation
and accent stripping:

* **Words** (letters, or digits) are casefolded, dropped if they are stopwords or shorter than
  two characters, and stemmed.
* **Identifiers** are kept whole *and* as their parts, in documents and queries alike: the
  whole token is rare (a high IDF), so an exact lookup ranks its document first, while the
  parts still match partial queries. An identifier is a run of letters and digits joined by
  ``-``, ``.``, ``_`` (``E-4471``, ``1.5.9``, ``os.path.join``, ``get_by_ids``,
  ``CVE-2024-12345``), mixed letters and digits (``KB5034441``, ``0x7fff5fbff8a8``), camel
  case (``getByIds``, ``HTTPServerError``), an e-mail address (also its host) or a URL (also
  its host and path parts). The whole is casefolded but neither stemmed nor stopword-filtered;
  the parts go through the word rules (so parts of one character, like the ``E`` of
  ``E-4471`` or the digits of ``1.5.9``, are dropped as noise). Hexadecimal runs
  (``0x1f``, ``a1b2c3``) are kept whole only: their letter/digit pieces mean nothing.
  Sentence punctuation does not glue words: a joiner counts only between two word
  characters (``word-`` at a line end, trailing dots and commas stay outside), ``end.Next``
  (lowercase, dot, capitalised word) is two words, and dotted single letters (``e.g.``,
  ``U.S.A.``) are an abbreviation, one word (``eg``, ``usa``).
* **CJK** (Han, Hiragana, Katakana, Hangul) has no spaces between words: a run of these
  characters becomes overlapping bigrams (``東京タワー`` -> ``東京 京タ タワ ワー``), as Lucene's
  ``CJKBigramFilter`` does. Documents also index each character (``cjk_unigrams``), and a query
  emits a unigram only for a run of one character, so a one-character query still matches
  while longer queries match on bigrams alone (the unigram + bigram scheme of LUCENE-4286).
* Accent stripping removes the diacritics of Latin, Greek and Cyrillic letters (``café``
  matches ``cafe``), Hebrew points and Arabic harakat, but not the Japanese voicing marks
  (``ガ`` stays ``ガ``, so ``カラス`` and ``ガラス`` differ) nor Indic vowel signs; Hangul stays
  composed. Words keep their combining marks (``हिन्दी`` is one word, not fragments).

A ``token_pattern`` replaces these rules with a plain regular expression (the tokenizer of
earlier releases is ``token_pattern: '(?u)\b\w\w+\b'``).

Other tokenizers are plugged in from Python with :func:`register_tokenizer` and chosen by
``name``; YAML only names them. The name, version and settings are part of the config saved
with the index, so an index built by another tokenizer or version is rebuilt.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Callable
from typing import Any, Literal, NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from langchain_hybrid._stopwords import ENGLISH_STOP_WORDS
from langchain_hybrid.errors import ConfigError

logger = logging.getLogger(__name__)

STANDARD = "standard"
"""Name of the built-in tokenizer."""
STANDARD_VERSION = "2"
"""Version of the built-in rules (1 was the ``(?u)\\b\\w\\w+\\b`` pattern); saved with the index."""

_MAX_STEMS = 500_000
_MAX_CHUNKS = 200_000
_MIN_LENGTH = 2  # words and identifier parts shorter than this are dropped (not CJK)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")

# Han, Hiragana, Katakana, Hangul (and the iteration / voicing marks inside their words)
_CJK = (
    "\u1100-\u11ff"  # Hangul Jamo
    "\u3005-\u3007"  # iteration mark, closing mark, ideographic zero
    "\u3041-\u3096\u3099-\u309f"  # Hiragana, voicing marks, iteration marks
    "\u30a1-\u30fa\u30fc-\u30ff"  # Katakana (not the middle dot U+30FB)
    "\u3131-\u318e"  # Hangul compatibility Jamo
    "\u31f0-\u31ff"  # Katakana phonetic extensions
    "\u3400-\u4dbf\u4e00-\u9fff"  # Han (extension A, unified)
    "\ua960-\ua97f\uac00-\ud7a3\ud7b0-\ud7ff"  # Hangul Jamo extended, syllables
    "\uf900-\ufaff"  # Han compatibility ideographs
    "\uff66-\uff9f"  # half-width Katakana
    "\U00020000-\U0003134f"  # Han extensions B to H
)
# combining marks inside words (Python's \w has none): Indic vowel signs and viramas, Thai and
# Lao vowels and tones, Hebrew points, Arabic harakat, Latin/Greek/Cyrillic diacritics (unless
# stripped): with them a word stays one word
_MARKS = (
    "\u0300-\u036f\u0483-\u0489\u0591-\u05bd\u05bf\u05c1\u05c2\u05c4\u05c5\u05c7"
    "\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06dc\u06df-\u06e4\u06e7\u06e8\u06ea-\u06ed"
    "\u0900-\u0963\u0966-\u0dff"  # Devanagari to Sinhala, but for the dandas
    "\u0e31\u0e34-\u0e3a\u0e47-\u0e4e\u0eb1\u0eb4-\u0ebc\u0ec8-\u0ecd"
    "\u1000-\u109f\u17b4-\u17d3\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
)
_HAS_MARKS = re.compile(f"[{_MARKS}]").search
_ASCII_WORD = r"\w+"
_WORD = rf"[^\W{_CJK}]+"
_MARKED_WORD = rf"(?:[^\W{_CJK}]|[{_MARKS}])+"
_LETTERS_MARKS = re.compile(rf"(?:[^\W\d_]|[{_MARKS}])+").fullmatch


def _chunk(word: str) -> str:
    """Words joined by ``-`` / ``.``, an optional ``+tag`` and ``@host`` (e-mail addresses)."""
    return rf"{word}(?:[-.]{word})*(?:\+{word}(?=@{word}))?(?:@{word}(?:[-.]{word})*)?"


_URL = r"[A-Za-z][A-Za-z0-9+.-]*://[^\s<>\"'`]+"
# One pass: group 1 a plain ASCII word or number (not joined to more), group 2 any other chunk
# (not followed by what would extend it into a chunk; a superset is fine, only slower)
_ASCII_PLAIN = r"([a-z]+|[A-Z][a-z]*|[A-Z]+|[0-9]+)(?!\w|[-.@]\w|\+\w+@\w)"
_W_OR_MARK = rf"(?:\w|[{_MARKS}])"
_PLAIN = (
    rf"([a-z]+|[A-Z][a-z]*|[A-Z]+|[0-9]+)"
    rf"(?!{_W_OR_MARK}|[-.@]{_W_OR_MARK}|\+{_W_OR_MARK}+@{_W_OR_MARK})"
)
_ASCII_SPLIT = re.compile(rf"{_ASCII_PLAIN}|({_chunk(_ASCII_WORD)})")
_SPLIT = re.compile(rf"{_PLAIN}|([{_CJK}]+|{_chunk(_WORD)})")
_SPLIT_MARKS = re.compile(rf"{_PLAIN}|([{_CJK}]+|{_chunk(_MARKED_WORD)})")
_URL_PATTERN = re.compile(rf"{_URL}|[{_CJK}]+|{_chunk(_MARKED_WORD)}")
_IS_CJK = re.compile(rf"[{_CJK}]").match
_FIRST_CJK = "\u1100"  # no CJK character comes before it
_JOINERS = re.compile(r"[-.@+_]+")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")  # ASCII pieces
_LETTERS_DIGITS = re.compile(rf"(?:[^\W\d_]|[{_MARKS}])+|\d+")  # pieces of a non-ASCII one
_HEX = re.compile(r"(?:0[xX])?[0-9a-fA-F]+")
# stripped diacritics: Latin, Greek, Cyrillic accents, Hebrew points, Arabic harakat (optional
# in writing); not the Japanese voicing marks nor Indic vowel signs (they make other words)
_DIACRITICS = re.compile(
    "[\u0300-\u036f\u0591-\u05bd\u05bf\u05c1\u05c2\u05c4\u05c5\u05c7\u0610-\u061a"
    "\u064b-\u065f\u0670\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+"
)
_URL_TRAIL = ".,;:!?'\")]}>"
_ENGLISH = "english"
_HEX_PIECES = 2  # a hexadecimal run that splits into more letter/digit pieces is kept whole


def _plain(word: str) -> bool:
    """A word of letters that is not camel case (lower, Title, UPPER, or not ASCII)."""
    return word.islower() or word.istitle() or word.isupper() or not word.isascii()


def _marked(word: str) -> bool:
    """A word of letters and combining marks (Hindi, Thai, pointed Hebrew): a plain word."""
    return not word.isascii() and _LETTERS_MARKS(word) is not None


class TokenizerConfig(BaseModel):
    """How text becomes BM25 tokens; saved with the index, so queries match documents.

    Attributes:
        name: a registered tokenizer (:func:`register_tokenizer`); ``"standard"`` is built in.
        version: the registered tokenizer's version, filled in when left ``None``. A saved
            index records it, so a new version of a tokenizer rebuilds the index.
        lowercase: casefold text.
        stopwords: ``"english"`` (scikit-learn's list), ``None``, or an explicit list.
        stemmer: a Snowball algorithm name for PyStemmer (``"english"``, ``"porter"``, ...)
            or ``None``.
        token_pattern: ``None`` for the built-in rules (identifiers, CJK bigrams); else a
            regular expression whose matches are the tokens (Unicode-aware).
        normalize: Unicode normalisation form applied first (``NFKC`` folds ligatures and
            full-width forms), or ``None``.
        strip_accents: drop the diacritics of Latin, Greek and Cyrillic letters, so ``café``
            and ``cafe`` match (Japanese voicing marks and other scripts' marks are kept).
        identifiers: keep identifiers (``E-4471``, ``get_by_ids``, URLs) whole besides their
            parts; ``False`` keeps only the parts.
        cjk_unigrams: documents index each CJK character besides the bigrams, so a
            one-character query matches; ``False`` indexes bigrams only (a lone character
            is still a unigram) and makes the index smaller.
        options: settings for a registered tokenizer (scalars only); saved with the index.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = STANDARD
    version: str | None = None
    lowercase: bool = True
    stopwords: Literal["english"] | tuple[str, ...] | None = "english"
    stemmer: str | None = _ENGLISH
    token_pattern: str | None = None
    normalize: Literal["NFC", "NFKC", "NFD", "NFKD"] | None = "NFKC"
    strip_accents: bool = True
    identifiers: bool = True
    cjk_unigrams: bool = True
    options: dict[str, str | int | float | bool | None] = Field(default_factory=dict)

    def __hash__(self) -> int:
        """Hash as a frozen model does, with ``options`` (a dict) as sorted items."""
        return hash(
            tuple(
                (k, tuple(sorted(v.items())) if isinstance(v, dict) else v)
                for k, v in self.__dict__.items()
            )
        )

    @model_validator(mode="before")
    @classmethod
    def _resolve_version(cls, data: Any) -> Any:
        """Fill ``version`` from the registry; an unknown ``name`` is an error here."""
        if not isinstance(data, dict) or data.get("version") is not None:
            return data  # a saved config names its version: it loads even if unregistered
        name = data.get("name", STANDARD)
        entry = _REGISTRY.get(name) if isinstance(name, str) else None
        if entry is None:
            raise ValueError(_unknown(name))
        return {**data, "version": entry.version}

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("token_pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            re.compile(value)
        except re.error as e:
            msg = f"token_pattern {value!r} is not a valid regular expression: {e}"
            raise ValueError(msg) from e
        return value

    @field_validator("stemmer")
    @classmethod
    def _known_stemmer(cls, value: str | None) -> str | None:
        if value is None:
            return None
        import Stemmer  # noqa: PLC0415

        if value not in Stemmer.algorithms():
            msg = f"unknown stemmer {value!r}; PyStemmer offers {sorted(Stemmer.algorithms())}"
            raise ValueError(msg)
        return value


class TextTokenizer(Protocol):
    """What a registered factory returns: text in, tokens out.

    An object that also has a ``query(text) -> list[str]`` method tokenizes queries with it;
    else queries are tokenized as documents are.
    """

    def __call__(self, text: str, /) -> list[str]:
        """Tokenize one document."""
        ...


TokenizerFactory = Callable[[TokenizerConfig], TextTokenizer]
"""Builds a tokenizer from its (validated) config; called once per index."""


class _Entry(NamedTuple):
    version: str
    factory: TokenizerFactory


_REGISTRY: dict[str, _Entry] = {}
_REGISTRY_LOCK = threading.Lock()


def _unknown(name: object) -> str:
    return f"unknown tokenizer {name!r}; registered: {sorted(_REGISTRY)}"


def register_tokenizer(name: str, version: str | int, factory: TokenizerFactory) -> None:
    """Make a tokenizer available to ``TokenizerConfig(name=...)`` (and to YAML by name).

    Register before the config is built. Registering a name again replaces it: give the new
    one a new ``version`` when its tokens change, so saved indexes built by the old one are
    rebuilt (the version is saved with the index and compared when it is opened).

    Args:
        name: letters, digits and ``_ . : -`` (up to 64); ``"standard"`` is reserved.
        version: any string (or int) that changes whenever the tokens would.
        factory: called with the :class:`TokenizerConfig` (its ``options`` and the shared
            settings) and returning a :class:`TextTokenizer`; it must be thread-safe.

    Raises:
        ConfigError: the name is malformed or reserved, the version empty, or the factory not
            callable.

    Example:
        ```python
        from langchain_hybrid import register_tokenizer

        register_tokenizer("whitespace", 1, lambda config: str.split)
        params = BM25Params(tokenizer=TokenizerConfig(name="whitespace"))
        ```
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        msg = f"tokenizer name {name!r} must be 1-64 letters, digits or '_.:-'"
        raise ConfigError(msg)
    if name == STANDARD:
        msg = f"tokenizer name {STANDARD!r} is the built-in tokenizer's; choose another"
        raise ConfigError(msg)
    text = str(version) if isinstance(version, int) and not isinstance(version, bool) else version
    if not isinstance(text, str) or not text.strip():
        msg = f"tokenizer version {version!r} must be a non-empty string or an int"
        raise ConfigError(msg)
    if not callable(factory):
        msg = f"tokenizer factory for {name!r} is not callable: {factory!r}"
        raise ConfigError(msg)
    with _REGISTRY_LOCK:
        if name in _REGISTRY:
            logger.debug("tokenizer %r re-registered (version %s)", name, text)
        _REGISTRY[name] = _Entry(text, factory)


def registered_tokenizers() -> dict[str, str]:
    """The registered tokenizers' names and versions."""
    return {name: entry.version for name, entry in sorted(_REGISTRY.items())}


class Tokenizer:
    """Turn text into tokens as a :class:`TokenizerConfig` says. Thread-safe.

    The tokens are a bag for BM25: their order is not the text's (plain words come first).

    A config naming a tokenizer that is not registered, or registered at another version (a
    saved index built by an older one), still makes a :class:`Tokenizer`, so the index can be
    loaded and found out of date; tokenizing with it raises :class:`ConfigError`.
    """

    def __init__(self, config: TokenizerConfig | None = None) -> None:
        """Build the configured tokenizer (from the registry)."""
        self.config = config or TokenizerConfig()
        self._problem = ""
        self._document: Callable[[str], list[str]] = self._refuse
        self._query: Callable[[str], list[str]] = self._refuse
        entry = _REGISTRY.get(self.config.name)
        if entry is None:
            self._problem = _unknown(self.config.name)
        elif entry.version != self.config.version:
            self._problem = (
                f"tokenizer {self.config.name!r} is registered at version {entry.version}, "
                f"not {self.config.version}: rebuild the index with the current version"
            )
        else:
            impl = entry.factory(self.config)
            self._document = impl
            self._query = getattr(impl, "query", impl)

    def _refuse(self, text: str) -> list[str]:
        raise ConfigError(self._problem)

    def __call__(self, text: str) -> list[str]:
        """Tokenize one document."""
        return self._document(text)

    def query(self, text: str) -> list[str]:
        """Tokenize a query (as documents are, except that CJK unigrams are not emitted)."""
        return self._query(text)


class _Standard:
    """The built-in tokenizer (see the module docstring). Thread-safe."""

    def __init__(self, config: TokenizerConfig) -> None:
        self.config = config
        self._pattern = re.compile(config.token_pattern) if config.token_pattern else None
        if config.stopwords == _ENGLISH:
            self._stopwords: frozenset[str] = ENGLISH_STOP_WORDS
        else:
            self._stopwords = frozenset(config.stopwords or ())
        self._local = threading.local()
        self._stems: dict[str, str] = {}  # word -> stem (bounded; dict ops are thread-safe)
        # chunk -> (words, exact tokens) of a chunk that is not a plain word (read-only lists)
        self._chunks: dict[str, tuple[list[str], list[str]]] = {}

    def __call__(self, text: str) -> list[str]:
        return self._tokenize(text, query=False)

    def query(self, text: str) -> list[str]:
        return self._tokenize(text, query=True)

    def _prepare(self, text: str) -> str:
        config = self.config
        if config.normalize:
            text = unicodedata.normalize(config.normalize, text)
        if config.strip_accents and not text.isascii():
            # decompose, drop the diacritics, recompose what is left (kana + voicing mark, Hangul)
            text = unicodedata.normalize(
                "NFC", _DIACRITICS.sub("", unicodedata.normalize("NFKD", text))
            )
        return text

    def _tokenize(self, text: str, *, query: bool) -> list[str]:
        text = self._prepare(text)
        if self._pattern is not None:  # a plain regular expression
            if self.config.lowercase:
                text = text.casefold()
            return self._stem_words(
                [w for w in self._pattern.findall(text) if w not in self._stopwords]
            )
        exact: list[str] = []  # final as they are (whole identifiers, CJK grams)
        words = self._words(text, exact, query=query)  # to stopword-filter and stem
        return self._stem_words(words) + exact if exact else self._stem_words(words)

    def _words(self, text: str, exact: list[str], *, query: bool) -> list[str]:
        """Plain ASCII words in bulk (one regex pass, a comprehension), other chunks one by one."""
        if "://" in text:
            words: list[str] = []
            self._scan(text, words, exact, query=query)
            return words
        stop = self._stopwords
        if text.isascii():
            pairs = _ASCII_SPLIT.findall(text)
        else:  # a word class with combining marks is slower: only where there are some
            pairs = (_SPLIT_MARKS if _HAS_MARKS(text) else _SPLIT).findall(text)
        if self.config.lowercase:
            words = [w for p, _ in pairs if len(p) > 1 and (w := p.lower()) not in stop]
        else:
            words = [p for p, _ in pairs if len(p) > 1 and p not in stop]
        chunks = self._chunks
        for chunk in [c for _, c in pairs if c]:
            if chunk[0] >= _FIRST_CJK and _IS_CJK(chunk):
                self._cjk(chunk, exact, query=query)
                continue
            hit = chunks.get(chunk)  # identifiers repeat (mRNA, long-term, 0.05): cached
            if hit is None:
                hit = ([], [])
                self._word(chunk, *hit)
                if len(chunks) > _MAX_CHUNKS:
                    chunks.clear()
                chunks[chunk] = hit
            words.extend(hit[0])
            exact.extend(hit[1])
        return words

    def _scan(self, text: str, words: list[str], exact: list[str], *, query: bool) -> None:
        """Text with a URL: chunk by chunk."""
        ascii_only = text.isascii()
        pattern = _URL_PATTERN
        lower = self.config.lowercase
        stop = self._stopwords
        for w in pattern.findall(text):  # the hot loop: plain words inline, the rest in _other
            if w.isalpha() and (ascii_only or w[0] < _FIRST_CJK):
                if len(w) < _MIN_LENGTH:
                    continue
                if w.islower() or w.istitle() or w.isupper() or not w.isascii():
                    lw = w.casefold() if lower else w
                    if lw not in stop:
                        words.append(lw)
                else:  # camel case: getByIds, HTTPServerError
                    self._identifier(w, words, exact)
            elif w.isdigit():
                if len(w) >= _MIN_LENGTH:
                    words.append(w)
            else:
                self._other(w, words, exact, query=query)

    def _other(self, w: str, words: list[str], exact: list[str], *, query: bool) -> None:
        """A CJK run, a URL, an identifier, or a word of a script after U+1100."""
        if w[0] >= _FIRST_CJK and _IS_CJK(w):
            self._cjk(w, exact, query=query)
        elif "://" in w:
            self._url(w, words, exact, query=query)
        else:
            self._word(w, words, exact)

    def _cjk(self, run: str, exact: list[str], *, query: bool) -> None:
        if len(run) == 1:
            exact.append(run)
            return
        exact.extend([run[i : i + 2] for i in range(len(run) - 1)])
        if self.config.cjk_unigrams and not query:
            exact.extend(run)

    def _word(self, w: str, words: list[str], exact: list[str]) -> None:
        """A word, or an identifier if it is not a plain word (no CJK, no URL)."""
        if w.isdigit() or (w.isalpha() and _plain(w)) or _marked(w):
            self._part(w, words)
        else:
            self._compound(w, words, exact)

    def _part(self, w: str, words: list[str]) -> None:
        if len(w) >= _MIN_LENGTH:
            lw = w.casefold() if self.config.lowercase else w
            if lw not in self._stopwords:
                words.append(lw)

    def _compound(self, w: str, words: list[str], exact: list[str]) -> None:
        """A chunk with joiners (``- . _ @``) or mixed letters and digits."""
        if "." in w and "@" not in w and "-" not in w:
            segments = w.split(".")
            if all(len(s) == 1 and s.isalpha() for s in segments):  # e.g. U.S.A.
                self._part("".join(segments), words)
                return
            left, *rest = segments
            if (
                len(rest) == 1
                and left == left.lower()
                and rest[0][:1].isupper()
                and rest[0][1:2].islower()
            ):  # end.Next: two sentences without a space
                self._word(left, words, exact)
                self._word(rest[0], words, exact)
                return
        self._identifier(w, words, exact)

    def _identifier(self, w: str, words: list[str], exact: list[str]) -> None:
        """Emit the whole identifier (as is, casefolded) and its parts (through the word rules)."""
        lower = self.config.lowercase
        if not w.strip("_.-+@"):  # "____": a rule, not an identifier
            return
        if self.config.identifiers:
            exact.append(w.casefold() if lower else w)
            if "@" in w:
                host = w.rpartition("@")[2]
                if "." in host:
                    exact.append(host.casefold() if lower else host)
        for segment in _JOINERS.split(w):
            if not segment:
                continue
            if segment.isdigit() or (segment.isalpha() and _plain(segment)) or _marked(segment):
                self._part(segment, words)
                continue
            pieces = (_CAMEL if segment.isascii() else _LETTERS_DIGITS).findall(segment)
            if len(pieces) > _HEX_PIECES and _HEX.fullmatch(segment):  # 0x7fff5fbff8a8: no parts
                continue
            for piece in pieces:
                self._part(piece, words)

    def _url(self, url: str, words: list[str], exact: list[str], *, query: bool) -> None:
        """A URL: the whole (without trailing punctuation), then its host and path parts."""
        while url and url[-1] in _URL_TRAIL:
            if url[-1] == ")" and url.count("(") >= url.count(")"):
                break
            url = url[:-1]
        body = url.partition("://")[2]
        if not body:
            return
        if self.config.identifiers:
            exact.append(url.casefold() if self.config.lowercase else url)
        words.extend(self._words(body.replace("://", " "), exact, query=query))

    def _stem_words(self, words: list[str]) -> list[str]:
        if self.config.stemmer is None or not words:
            return words
        cache = self._stems
        found = [cache.get(w) for w in words]
        missing = [w for w, stem in zip(words, found, strict=True) if stem is None]
        if not missing:
            return found  # type: ignore[return-value]
        stemmer = getattr(self._local, "stemmer", None)
        if stemmer is None:  # PyStemmer objects are not thread-safe: one per thread
            import Stemmer  # noqa: PLC0415

            stemmer = self._local.stemmer = Stemmer.Stemmer(self.config.stemmer)
        stems = dict(zip(missing, stemmer.stemWords(missing), strict=True))
        if len(cache) > _MAX_STEMS:
            cache.clear()
        cache.update(stems)
        return [
            stem if stem is not None else stems[w] for w, stem in zip(words, found, strict=True)
        ]


_REGISTRY[STANDARD] = _Entry(STANDARD_VERSION, _Standard)
