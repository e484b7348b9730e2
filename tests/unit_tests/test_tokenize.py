"""Tests of the BM25 tokenizer: normalisation, stopwords, stemming, patterns, identifiers, CJK,
user tokenizers, thread safety."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from helpers import IDENTITY
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from langchain_hybrid._tokenize import (
    STANDARD_VERSION,
    Tokenizer,
    TokenizerConfig,
    register_tokenizer,
    registered_tokenizers,
)
from langchain_hybrid.bm25 import BM25Index, BM25Params
from langchain_hybrid.config import load_config
from langchain_hybrid.errors import ConfigError

RELEASE_1 = r"(?u)\b\w\w+\b"  # the default pattern of release 1


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
    # the default rules: identifiers whole and split, single characters dropped
    default = Tokenizer(TokenizerConfig(stopwords=None, stemmer=None))
    assert sorted(default("a b12 c-d e")) == ["12", "b12", "c-d"]
    # release 1's rules, as a pattern: two characters or more, \w only
    legacy = Tokenizer(TokenizerConfig(token_pattern=RELEASE_1, stopwords=None, stemmer=None))
    assert legacy("a b12 c-d e") == ["b12"]
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
        f"connection {i * 7} E-{i} get_by_ids{i} 東京タワー{i}です https://x.org/{i}"
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


# identifiers: kept whole (casefolded, not stemmed, not stopword-filtered) and as their parts


@pytest.mark.parametrize(
    ("text", "whole", "parts", "absent"),
    [
        ("E-4471", ["e-4471"], ["4471"], ["e"]),  # a part of one character is dropped
        ("1.5.9", ["1.5.9"], [], ["1", "5", "9"]),  # so are one-digit parts
        ("AB-1234-X", ["ab-1234-x"], ["ab", "1234"], ["x"]),
        ("get_by_ids", ["get_by_ids"], ["id"], ["by", "get"]),  # stopwords, stems as usual
        ("os.path.join", ["os.path.join"], ["os", "path", "join"], []),
        ("getByIds", ["getbyids"], ["id"], ["by"]),
        ("HTTPServerError", ["httpservererror"], ["http", "server", "error"], []),
        (
            "write to Jane.Doe+ops@Example.co.uk today",
            ["jane.doe+ops@example.co.uk", "example.co.uk"],  # the address and its host
            ["jane", "doe", "op", "exampl", "uk", "write", "today"],  # "co" is a stopword
            [],
        ),
        (
            "see https://Docs.Example.org/api/get_by_ids?x=1#Intro).",  # without the ")."
            ["https://docs.example.org/api/get_by_ids?x=1#intro", "docs.example.org", "get_by_ids"],
            ["doc", "exampl", "org", "api", "id", "intro"],
            ["https://docs.example.org/api/get_by_ids?x=1#intro)."],
        ),
        ("0x7fff5fbff8a8", ["0x7fff5fbff8a8"], [], ["fff", "fbff", "7fff5fbff8a8"]),  # hex: whole
        ("CVE-2024-12345", ["cve-2024-12345"], ["cve", "2024", "12345"], []),
        ("KB5034441", ["kb5034441"], ["kb", "5034441"], []),
        ("JIRA-1234", ["jira-1234"], ["jira", "1234"], []),
        ("sha256 x86_64", ["sha256", "x86_64"], ["sha", "256", "86", "64"], []),
        ("COVID-19", ["covid-19"], ["covid", "19"], []),
    ],
)
def test_identifiers_are_kept_whole_and_split(
    text: str, whole: list[str], parts: list[str], absent: list[str]
) -> None:
    tok = Tokenizer()
    tokens = tok(text)
    assert set(whole) <= set(tokens)
    assert set(parts) <= set(tokens)
    assert not set(absent) & set(tokens)
    assert tok.query(text) == tokens  # queries are tokenized as documents are
    if text.islower() or text.isupper():  # (camel case is only found in mixed case)
        assert tok(text.lower()) == tok(text.upper()) == tokens


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("SIGSEGV", ["sigsegv"]),  # a plain (upper-case) word
        ("HTTP 404 Not Found Error", ["http", "404", "error"]),  # "not", "found": stopwords
        ("the Running", ["run"]),  # plain words are still stemmed and stopword-filtered
    ],
)
def test_words_and_numbers(text: str, tokens: list[str]) -> None:
    assert Tokenizer()(text) == tokens


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("It broke at the end.Next we", ["broke", "end"]),  # "next" is a stopword
        ("values rose.The rest", ["valu", "rose", "rest"]),
        ("a well-\nknown fix", ["known", "fix"]),  # "word-" at a line end joins nothing
        ("Trailing dots... and, commas, here.", ["trail", "dot", "comma"]),
        ("lists, e.g. apples; i.e. fruit", ["list", "appl", "fruit"]),  # eg / ie: stopwords
        ("made in the U.S.A. today", ["usa", "today"]),  # an abbreviation is one word
        ("-4471 and 4471-", ["4471", "4471"]),
    ],
)
def test_sentence_punctuation_does_not_glue_words(text: str, tokens: list[str]) -> None:
    assert sorted(Tokenizer()(text)) == sorted(tokens)  # a bag of tokens: order is not kept


def test_identifiers_off_keeps_only_parts() -> None:
    parts = Tokenizer(TokenizerConfig(identifiers=False, stopwords=None, stemmer=None))
    tokens = parts("E-4471 get_by_ids HTTPServerError https://x.org/a-b")
    assert tokens == ["4471", "get", "by", "ids", "http", "server", "error", "org"]


def test_not_stemmed_not_filtered_whole_tokens() -> None:
    tok = Tokenizer()
    # the parts "the" / "and" are stopwords, "running" is stemmed; the wholes are as written
    assert {"the-and", "running_fast"} <= set(tok("the-and running_fast"))
    assert "run" in tok("running_fast")
    cased = Tokenizer(TokenizerConfig(lowercase=False, stopwords=None, stemmer=None))
    assert set(cased("getByIds E-4471")) == {"getByIds", "get", "By", "Ids", "E-4471", "4471"}


EXACT_CORPUS = {
    "e": "Boot failed with error E-4471 after the firmware update.",
    "c": "Boot failed with error C-4471 after the firmware update.",
    "port": "The service listens on port 4471 after the firmware update.",
    "cve": "Patched CVE-2024-12345 and CVE-2024-12346 in the kernel update.",
    "api": "Call get_by_ids on the store; see os.path.join for paths.",
    "d1": "Error codes are listed in the firmware manual.",
    "d2": "The update changed how boot errors are reported.",
}


@pytest.fixture(scope="module")
def exact_index() -> BM25Index:
    index = BM25Index()
    index.add(list(EXACT_CORPUS), list(EXACT_CORPUS.values()))
    return index


def test_bare_identifier_ranks_its_document_first(exact_index: BM25Index) -> None:
    hits = exact_index.search("E-4471", k=10)
    ranked = [h.id for h in hits]
    assert ranked[0] == "e"
    assert hits[0].score > hits[1].score  # strictly: C-4471 and port 4471 rank below
    assert set(ranked[1:3]) == {"c", "port"}  # the part "4471" still finds them
    assert [h.id for h in exact_index.search("C-4471", k=1)] == ["c"]
    assert exact_index.search("cve-2024-12346", k=10)[0].id == "cve"
    assert [h.id for h in exact_index.search("get_by_ids", k=10)] == ["api"]
    assert [h.id for h in exact_index.search("port 4471", k=1)] == ["port"]


# CJK: overlapping bigrams; documents also index unigrams; a one-character query matches


def test_cjk_bigrams_and_unigrams() -> None:
    tok = Tokenizer()
    assert tok.query("東京タワー") == ["東京", "京タ", "タワ", "ワー"]
    assert tok("東京タワー") == ["東京", "京タ", "タワ", "ワー", "東", "京", "タ", "ワ", "ー"]
    assert tok.query("東") == tok("東") == ["東"]  # a lone character: its unigram
    no_unigrams = Tokenizer(TokenizerConfig(cjk_unigrams=False))
    assert no_unigrams("東京タワー") == tok.query("東京タワー")
    assert no_unigrams("東") == ["東"]
    # mixed scripts: each script is tokenized by its own rules; punctuation ends a run
    mixed = tok.query("東京タワーはTokyo Towerです。\uff21\uff22\uff23・京都")  # full-width ABC
    assert sorted(mixed) == sorted(
        [
            "tokyo",
            "tower",
            "abc",
            "東京",
            "京タ",
            "タワ",
            "ワー",
            "ーは",
            "です",
            "京都",
        ]
    )


def test_korean_bigrams() -> None:
    tok = Tokenizer()
    assert tok.query("서울에서 만나요") == ["서울", "울에", "에서", "만나", "나요"]
    assert set(tok.query("서울")) <= set(tok("서울에서 만나요"))
    # Hangul stays composed through accent stripping (NFKD would leave Jamo)
    assert tok("한국") == ["한국", "한", "국"]


def test_voicing_marks_are_kept() -> None:
    tok = Tokenizer()
    assert tok("カラス") != tok("ガラス")  # crow, glass
    assert tok.query("ガラス") == ["ガラ", "ラス"]
    assert tok("カ\u3099ラス") == tok("ガラス")  # a decomposed voiced mark is recomposed
    assert tok("パン") != tok("ハン")  # the semi-voiced mark U+309A too
    assert tok("café") == tok("cafe") == ["cafe"]  # Latin accents are still stripped
    assert tok("Ёлка") == tok("елка")  # and Cyrillic ones, as before


def test_words_keep_their_combining_marks() -> None:
    tok = Tokenizer()
    # Indic vowel signs and viramas are inside words (release 1 cut हिन्दी into fragments)
    assert tok("हिन्दी भाषा बोलते हैं।") == ["हिन्दी", "भाषा", "बोलते", "हैं"]
    assert tok("ภาษาไทย") == ["ภาษาไทย"]  # (Thai is unspaced: no bigrams for it yet)
    # Hebrew points and Arabic harakat are optional in writing: stripped like accents
    assert tok("שָׁלוֹם עולם") == tok("שלום עולם") == ["שלום", "עולם"]
    assert tok("مَرْحَبًا") == tok("مرحبا") == ["مرحبا"]
    kept = Tokenizer(TokenizerConfig(strip_accents=False, stemmer=None))
    assert kept("שָׁלוֹם") == ["שָׁלוֹם"]  # kept, and still one word
    assert sorted(tok("E-4471 हिन्दी-भाषा")) == sorted(
        ["e-4471", "4471", "हिन्दी-भाषा", "हिन्दी", "भाषा"]
    )


CJK_CORPUS = {
    "tower": "東京タワーは港区にある電波塔です。",
    "kyoto": "京都の寺は秋がきれいです。",
    "glass": "ガラスのコップを買いました。",
    "crow": "カラスが鳴いています。",
    "zh": "北京是中国的首都\uff0c上海是最大的城市。",  # a full-width comma
    "ko": "서울에서 친구를 만났어요.",
    "en": "Tokyo Tower is a radio tower.",
}


@pytest.fixture(scope="module")
def cjk_index() -> BM25Index:
    index = BM25Index()
    index.add(list(CJK_CORPUS), list(CJK_CORPUS.values()))
    return index


@pytest.mark.parametrize(
    ("query", "first"),
    [
        ("港区", "tower"),  # a word inside an unspaced sentence
        ("タワー", "tower"),
        ("首都", "zh"),
        ("上海", "zh"),
        ("ガラス", "glass"),
        ("カラス", "crow"),
        ("서울", "ko"),
        ("塔", "tower"),  # one character: matches the documents' unigrams
        ("寺", "kyoto"),
    ],
)
def test_cjk_word_found_inside_unspaced_text(cjk_index: BM25Index, query: str, first: str) -> None:
    hits = cjk_index.search(query, k=10)
    assert hits
    assert hits[0].id == first


def test_kana_voicing_separates_documents(cjk_index: BM25Index) -> None:
    # they share the bigram ラス, so each also finds the other, but strictly below
    crow = cjk_index.search("カラス", k=10)
    glass = cjk_index.search("ガラス", k=10)
    assert [h.id for h in crow[:2]] == ["crow", "glass"]
    assert [h.id for h in glass[:2]] == ["glass", "crow"]
    assert crow[0].score > crow[1].score
    assert glass[0].score > glass[1].score
    assert "カラ" not in Tokenizer()(CJK_CORPUS["glass"])


# release 1's settings: saved indexes differ from the new default and are rebuilt


def test_release_1_config_differs_and_tokenizes_as_before() -> None:
    saved = {  # a release-1 manifest's tokenizer: no name, no version, its pattern
        "lowercase": True,
        "stopwords": "english",
        "stemmer": "english",
        "token_pattern": RELEASE_1,
        "normalize": "NFKC",
        "strip_accents": True,
    }
    old = TokenizerConfig.model_validate(saved)
    assert old != TokenizerConfig()  # so sync_bm25 rebuilds the saved index once
    assert BM25Params(tokenizer=old) != BM25Params()
    assert Tokenizer(old)("E-4471 1.5.9 AB-1234-X Running") == ["4471", "ab", "1234", "run"]
    assert TokenizerConfig().version == STANDARD_VERSION
    assert TokenizerConfig().model_dump()["name"] == "standard"


# user tokenizers


def _name() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


class Whitespace:
    """A user tokenizer: lowercase whitespace split; queries also drop a leading '?'."""

    def __init__(self, config: TokenizerConfig) -> None:
        self.marker = str(config.options.get("marker", ""))

    def __call__(self, text: str) -> list[str]:
        return [self.marker + t for t in text.lower().split()]

    def query(self, text: str) -> list[str]:
        return self(text.lstrip("?"))


def test_registered_tokenizer_is_used_and_recorded(tmp_path: Path) -> None:
    name = _name()
    register_tokenizer(name, 1, Whitespace)
    assert registered_tokenizers()[name] == "1"
    config = TokenizerConfig(name=name, options={"marker": "w:"})
    assert config.version == "1"  # filled in from the registry
    index = BM25Index(BM25Params(tokenizer=config))
    index.add(["a", "b"], ["E-4471 Running", "C-4471 ran"])
    assert index.tokenizer("E-4471 Running") == ["w:e-4471", "w:running"]
    assert index.tokenizer.query("?E-4471") == ["w:e-4471"]
    assert [h.id for h in index.search("?e-4471", k=5)] == ["a"]
    index.save(tmp_path / "bm25")
    loaded = BM25Index.load(tmp_path / "bm25")
    assert loaded.params.tokenizer == config  # name, version and options are saved
    assert [h.id for h in loaded.search("c-4471", k=5)] == ["b"]

    # a new version: configs built from now on differ from the saved one (so it is rebuilt),
    # and the saved one still loads but refuses to tokenize with the wrong version
    register_tokenizer(name, "2", Whitespace)
    assert TokenizerConfig(name=name, options={"marker": "w:"}) != config
    stale = BM25Index.load(tmp_path / "bm25")
    assert stale.params != BM25Params(
        tokenizer=TokenizerConfig(name=name, options={"marker": "w:"})
    )
    with pytest.raises(ConfigError, match="version 2"):
        stale.search("e-4471", k=5)


def test_configs_stay_hashable() -> None:
    # options is a dict, yet configs (and BM25Params) hash, equal configs alike
    one = TokenizerConfig(options={"a": 1, "b": "x"})
    two = TokenizerConfig(options={"b": "x", "a": 1})
    assert one == two
    assert hash(one) == hash(two)
    assert hash(BM25Params(tokenizer=one)) == hash(BM25Params(tokenizer=two))
    assert len({one, two, TokenizerConfig()}) == 2


def test_unknown_tokenizer_is_an_error_naming_the_registered_ones(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"registered: .*'standard'"):
        TokenizerConfig(name="no-such-tokenizer")
    path = tmp_path / "hybrid.yaml"
    path.write_text("bm25:\n  tokenizer:\n    name: no-such-tokenizer\n")
    with pytest.raises(ConfigError, match=r"no-such-tokenizer.*'standard'"):
        load_config(path, environ={})
    # a saved config (it names its version) loads; tokenizing with it is a ConfigError
    saved = TokenizerConfig.model_validate({"name": "gone", "version": "3"})
    tok = Tokenizer(saved)
    with pytest.raises(ConfigError, match=r"unknown tokenizer 'gone'; registered: .*'standard'"):
        tok("text")
    with pytest.raises(ConfigError):
        tok.query("text")


def test_registered_tokenizer_by_name_from_yaml(tmp_path: Path) -> None:
    name = _name()
    register_tokenizer(name, "7", Whitespace)
    path = tmp_path / "hybrid.yaml"
    path.write_text(f"bm25:\n  tokenizer:\n    name: {name}\n    options: {{marker: 'y:'}}\n")
    config = load_config(path, environ={}).bm25.tokenizer
    assert (config.name, config.version, config.options) == (name, "7", {"marker": "y:"})
    assert Tokenizer(config)("A b") == ["y:a", "y:b"]


@pytest.mark.parametrize(
    ("name", "version", "factory"),
    [
        pytest.param("standard", "9", Whitespace, id="reserved"),
        pytest.param("", "1", Whitespace, id="empty-name"),
        pytest.param("has space", "1", Whitespace, id="bad-name"),
        pytest.param("ok", "", Whitespace, id="empty-version"),
        pytest.param("ok", 1.5, Whitespace, id="float-version"),
        pytest.param("ok", "1", "not callable", id="not-callable"),
    ],
)
def test_register_tokenizer_rejects(name: str, version: Any, factory: Any) -> None:
    before = registered_tokenizers()
    with pytest.raises(ConfigError):
        register_tokenizer(name, version, factory)
    assert registered_tokenizers() == before


def test_registry_is_thread_safe() -> None:
    names = [_name() for _ in range(64)]
    barrier = threading.Barrier(8)

    def work(offset: int) -> list[list[str]]:
        barrier.wait()
        out = []
        for name in names[offset::8]:
            register_tokenizer(name, offset, Whitespace)
            tok = Tokenizer(TokenizerConfig(name=name, options={"marker": name}))
            out.append(tok("X y"))
        return out

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(8)))
    assert all(name in registered_tokenizers() for name in names)
    for offset, tokens in enumerate(results):
        assert tokens == [[f"{n}x", f"{n}y"] for n in names[offset::8]]


# ASCII text, other text and text with a URL take three paths: all give the same tokens

PATH_TEXTS = [
    "E-4471 1.5.9 AB-1234-X get_by_ids os.path.join getByIds HTTPServerError",
    "0x7fff5fbff8a8 CVE-2024-12345 KB5034441 JIRA-1234 SIGSEGV 404 a+b x+y@z.org",
    "end.Next e.g. U.S.A. word-\nthen 2.The ____ __init__ _x x_ -4471 4471-",
    "Jane.Doe+ops@Example.co.uk iPhone McDonald x86_64 sha256 a1b2c3 3.14 COVID-19",
    "東京タワーはTokyo Towerです abc東京 Ωmega-2 naïve café-au-lait ガラス",
]


def _same_on_every_path(tok: Tokenizer, text: str) -> None:
    tokens = tok(text)
    assert sorted([*tokens, "東"]) == sorted(tok(text + " 東"))  # not ASCII
    assert sorted([*tokens, "x://東", "東"]) == sorted(tok(text + " x://東"))  # a URL


@pytest.mark.parametrize("text", PATH_TEXTS)
def test_paths_agree(text: str) -> None:
    _same_on_every_path(Tokenizer(), text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="aZbY09_-.@+ \n,;()xXé東京ガΩभि\u05b8ש", max_size=40))
def test_paths_agree_on_any_text(text: str) -> None:
    for tok in (Tokenizer(), Tokenizer(TokenizerConfig(lowercase=False, stopwords=None))):
        _same_on_every_path(tok, text)
