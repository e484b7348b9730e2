"""Tests of the BM25 tokenizer: normalisation, stopwords, stemming, patterns, thread safety."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from pydantic import ValidationError

from langchain_hybrid._tokenize import Tokenizer, TokenizerConfig

IDENTITY = TokenizerConfig(
    lowercase=False,
    stopwords=None,
    stemmer=None,
    token_pattern=r"\S+",  # noqa: S106 - a regex, not a secret
    normalize=None,
    strip_accents=False,
)


def test_tokenizer_lowercases_and_removes_stopwords() -> None:
    tok = Tokenizer()
    assert tok("The Quick BROWN fox") == ["quick", "brown", "fox"]
    assert tok("the and of to") == []
    keep = Tokenizer(TokenizerConfig(stopwords=None, stemmer=None))
    assert keep("The fox") == ["the", "fox"]
    custom = Tokenizer(TokenizerConfig(stopwords=("fox",), stemmer=None))
    assert custom("The fox") == ["the"]
    cased = Tokenizer(TokenizerConfig(lowercase=False, stopwords=None, stemmer=None))
    assert cased("The Fox") == ["The", "Fox"]


def test_tokenizer_stems() -> None:
    tok = Tokenizer()
    assert tok("running")[0] == tok("runs")[0] == tok("run")[0] == "run"
    assert tok("connection connected connecting") == ["connect"] * 3
    assert Tokenizer(TokenizerConfig(stemmer=None))("running runs") == ["running", "runs"]
    assert Tokenizer(TokenizerConfig(stemmer="porter"))("running") == ["run"]


def test_tokenizer_strips_accents_and_normalizes() -> None:
    tok = Tokenizer()
    assert tok("café") == tok("cafe") == ["cafe"]
    assert tok("cafe\u0301") == ["cafe"]  # decomposed accent
    assert tok("naïve résumé") == tok("naive resume")
    keep = Tokenizer(TokenizerConfig(strip_accents=False, stemmer=None))
    assert keep("café") == ["café"]
    # NFKC: ligatures and full-width forms fold to plain letters
    assert tok("\ufb01nance") == tok("finance")  # the "fi" ligature
    assert tok("\uff21\uff30\uff30\uff2c\uff25") == tok("apple")  # full-width APPLE
    nfkc = Tokenizer(TokenizerConfig(strip_accents=False, stemmer=None))  # NFKC on its own
    assert nfkc("\uff21\uff30\uff30\uff2c\uff25 \u2460") == ["apple"]  # circled 1 -> "1"
    assert nfkc("\u2460\u2461") == ["12"]
    raw = Tokenizer(TokenizerConfig(normalize=None, strip_accents=False, stemmer=None))
    assert raw("\uff21\uff30\uff30\uff2c\uff25") == ["\uff41\uff50\uff50\uff4c\uff45"]
    assert raw("\u2460\u2461") == ["\u2460\u2461"]


def test_tokenizer_other_scripts() -> None:
    plain = Tokenizer(TokenizerConfig(stemmer=None))
    assert plain("Καλημέρα κόσμε") == ["καλημερα", "κοσμε"]
    assert plain("ΚΑΛΗΜΈΡΑ") == plain("καλημέρα")
    assert plain("Привет, мир!") == ["привет", "мир"]
    assert plain("ПРИВЕТ") == plain("привет")
    tok = Tokenizer()
    assert tok("Привет мир") == tok("ПРИВЕТ МИР")
    assert len(tok("Привет мир")) == 2


def test_token_pattern_is_configurable() -> None:
    default = Tokenizer(TokenizerConfig(stopwords=None, stemmer=None))
    assert default("a b12 c-d e") == ["b12"]  # two characters or more, \w only
    letters = Tokenizer(
        TokenizerConfig(token_pattern=r"[a-z]+", stopwords=None, stemmer=None)  # noqa: S106
    )
    assert letters("abc123 def x") == ["abc", "def", "x"]
    spaces = Tokenizer(IDENTITY)
    assert spaces("C++ e-mail x") == ["C++", "e-mail", "x"]


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"token_pattern": "("}, id="invalid-regex"),
        pytest.param({"token_pattern": "[a-"}, id="invalid-class"),
        pytest.param({"stemmer": "klingon"}, id="unknown-stemmer"),
        pytest.param({"normalize": "NFX"}, id="unknown-normal-form"),
        pytest.param({"stopwords": "french"}, id="unknown-stopword-list"),
        pytest.param({"lowercase": "maybe"}, id="not-a-bool"),
        pytest.param({"unknown": 1}, id="extra-key"),
    ],
)
def test_tokenizer_config_rejects(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        TokenizerConfig(**kwargs)


def test_tokenizer_is_thread_safe() -> None:
    texts = [
        f"Running runners ran {i} races; café \uff26\uff35\uff2c\uff2c \ufb01nance Καλημέρα "
        f"connection {i * 7}"
        for i in range(300)
    ]
    tok = Tokenizer()  # one shared instance: every thread creates its own stemmer lazily
    expected = [Tokenizer()(t) for t in texts]
    barrier = threading.Barrier(16)

    def work(offset: int) -> list[list[str]]:
        barrier.wait()
        out: list[list[str]] = [[] for _ in texts]
        for _ in range(3):
            for j in range(len(texts)):
                i = (j + offset) % len(texts)
                out[i] = tok(texts[i])
        return out

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(work, range(0, 16 * 17, 17)))
    assert all(r == expected for r in results)
