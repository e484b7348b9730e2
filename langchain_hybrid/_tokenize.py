"""Text to BM25 tokens: normalisation, token pattern, stopwords and stemming.

One :class:`Tokenizer` serves documents (:meth:`Tokenizer.__call__`) and queries
(:meth:`Tokenizer.query`); its :class:`TokenizerConfig` is saved with the BM25 index, so queries
are always tokenized as the documents were.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

_MAX_STEMS = 500_000
DEFAULT_TOKEN_PATTERN = r"(?u)\b\w\w+\b"  # noqa: S105 - a regex, not a secret


class TokenizerConfig(BaseModel):
    """How text becomes BM25 tokens; saved with the index, so queries match documents.

    Attributes:
        lowercase: casefold text before matching.
        stopwords: ``"english"`` (scikit-learn's list), ``None``, or an explicit list.
        stemmer: a Snowball algorithm name for PyStemmer (``"english"``, ``"porter"``, ...)
            or ``None``.
        token_pattern: regular expression whose matches are tokens (Unicode-aware).
        normalize: Unicode normalisation form applied first (``NFKC`` folds ligatures and
            full-width forms), or ``None``.
        strip_accents: drop combining marks, so ``café`` and ``cafe`` match.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    lowercase: bool = True
    stopwords: Literal["english"] | tuple[str, ...] | None = "english"
    stemmer: str | None = "english"
    token_pattern: str = DEFAULT_TOKEN_PATTERN
    normalize: Literal["NFC", "NFKC", "NFD", "NFKD"] | None = "NFKC"
    strip_accents: bool = True

    @field_validator("token_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
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


class Tokenizer:
    """Turn text into tokens as a :class:`TokenizerConfig` says. Thread-safe."""

    def __init__(self, config: TokenizerConfig | None = None) -> None:
        """Compile the pattern and load the stopword list and stemmer."""
        self.config = config or TokenizerConfig()
        self._pattern = re.compile(self.config.token_pattern)
        if self.config.stopwords == "english":
            from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS  # noqa: PLC0415

            self._stopwords: frozenset[str] = frozenset(ENGLISH_STOP_WORDS)
        else:
            self._stopwords = frozenset(self.config.stopwords or ())
        self._local = threading.local()
        self._stems: dict[str, str] = {}  # word -> stem (bounded; dict ops are thread-safe)

    def _stem_words(self, words: list[str]) -> list[str]:
        if self.config.stemmer is None:
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

    def __call__(self, text: str) -> list[str]:
        """Tokenize one text."""
        if self.config.normalize:
            text = unicodedata.normalize(self.config.normalize, text)
        if self.config.strip_accents and not text.isascii():
            text = "".join(
                c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
            )
        if self.config.lowercase:
            text = text.casefold()
        words = [w for w in self._pattern.findall(text) if w not in self._stopwords]
        return self._stem_words(words)

    def query(self, text: str) -> list[str]:
        """Tokenize a query (as documents are tokenized)."""
        return self(text)
