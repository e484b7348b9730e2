"""The exact-match benchmark: planted corpus, queries, runs, report, and the eval option."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
from pathlib import Path
from typing import Any

import pytest
from helpers import HashEmbeddings

from langchain_hybrid import ConfigError, cli
from langchain_hybrid._exact_match import (
    SHAPES,
    TARGET_RANK,
    ExactMatchSet,
    PlantedQuery,
    build_exact_match_set,
    evaluate_exact_match,
    format_report,
    occurrences,
    query_ranks,
    run_exact_match,
    summarize,
    write_collection,
)
from langchain_hybrid.evaluation import load_beir, open_eval_index

_VOCABULARY = [
    "insulin",
    "resistance",
    "tumour",
    "growth",
    "patients",
    "cohort",
    "mutation",
    "receptor",
    "signalling",
    "kinase",
    "protein",
    "expression",
    "neurons",
    "memory",
    "infection",
    "vaccine",
    "antibody",
    "mortality",
    "therapy",
    "trial",
    "placebo",
    "dosage",
    "obesity",
    "diabetes",
    "cardiac",
    "muscle",
    "stroke",
    "inflammation",
    "macrophage",
    "genome",
    "sequence",
    "variant",
    "methylation",
    "chromatin",
    "bacteria",
    "microbiome",
    "pregnancy",
    "infants",
    "smoking",
]
BASE_SIZE, PER_SHAPE = 60, 2
CJK_SCRIPTS = {"zh", "ja", "ko"}
CJK = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7af]")


def base_corpus(n: int = 120, seed: int = 3) -> dict[str, tuple[str, str]]:
    """A seeded English corpus: ``n`` documents of three sentences each, with a title."""
    rng = random.Random(seed)  # noqa: S311 - seeded test data
    corpus = {}
    for i in range(n):
        sentences = [" ".join(rng.choices(_VOCABULARY, k=8)).capitalize() + "." for _ in range(3)]
        corpus[f"d{i}"] = (" ".join(rng.choices(_VOCABULARY, k=4)).title(), " ".join(sentences))
    return corpus


def write_beir(root: Path, corpus: dict[str, tuple[str, str]]) -> Path:
    """The corpus as a BEIR collection with a few judged queries (load_beir needs some)."""
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(
        "".join(
            json.dumps({"_id": d, "title": t, "text": x}) + "\n" for d, (t, x) in corpus.items()
        )
    )
    ids = list(corpus)[:5]
    (root / "queries.jsonl").write_text(
        "".join(
            json.dumps({"_id": f"q{i}", "text": corpus[d][0]}) + "\n" for i, d in enumerate(ids)
        )
    )
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\t{d}\t1\n" for i, d in enumerate(ids))
    )
    return root


@pytest.fixture(scope="module")
def planted() -> ExactMatchSet:
    return build_exact_match_set(base_corpus(), base_size=BASE_SIZE, per_shape=PER_SHAPE, seed=5)


# ---------------------------------------------------------------------- the corpus
def test_every_planted_term_occurs_in_its_own_document_only(planted: ExactMatchSet) -> None:
    assert len(SHAPES) >= 12
    for doc_id, term in planted.planted.items():
        assert occurrences(term, planted.corpus) == [doc_id], term
        title, text = planted.corpus[doc_id]
        assert f"{title}\n{text}".casefold().count(term.casefold()) == 1, term
    shapes = [q.group for q in planted.queries if q.kind == "bare"]
    assert {s: shapes.count(s) for s in shapes} == dict.fromkeys(SHAPES, PER_SHAPE)
    identifiers = [planted.planted[q.doc_id] for q in planted.queries if q.kind == "bare"]
    assert len(set(identifiers)) == len(identifiers)


def test_identifiers_have_their_shapes(planted: ExactMatchSet) -> None:
    patterns = {
        "error_code": r"(ORA-\d{5}|E\d{4}|AADSTS\d{5}|MSB\d{4})",
        "sku": r"([A-Z]{2}-\d{4,5}-[A-Z0-9]+|ab\d{6})",
        "snake_case": r"[a-z]+(_[a-z]+){2,}",
        "dotted": r"[a-z]+(\.[a-z_]+){3}",
        "camel_case": r"([A-Z][a-z]+){3}",
        "version": r"v\d+\.\d+\.\d+([-+][a-z]+\.\d)?",
        "cve": r"CVE-\d{4}-\d{5}",
        "kb": r"KB\d{7}",
        "ticket": r"[A-Z]{3,5}-\d{4,5}",
        "hex_address": r"0x[0-9a-fA-F]{12,16}",
        "email": r"[a-z]\.[a-z]+@[a-z-]+\.[a-z]+",
        "url": r"https://[a-z.]+/[a-z]+/\d+",
        "status_code": r"HTTP [45]0\d\.\d{1,2}",
        "signal": r"SIG[A-Z0-9]+",
    }
    assert set(patterns) == set(SHAPES)
    for q in planted.queries:
        if q.kind == "bare":
            assert re.fullmatch(patterns[q.group], q.text), (q.group, q.text)


def test_planted_documents_read_like_the_base(planted: ExactMatchSet) -> None:
    base = base_corpus()
    assert len(planted.base_ids) == BASE_SIZE
    for doc_id in planted.base_ids:
        assert planted.corpus[doc_id] == base[doc_id]
    base_titles = {base[d][0] for d in planted.base_ids}
    for q in planted.queries:
        if q.kind != "bare":
            continue
        title, text = planted.corpus[q.doc_id]
        # a title and sentences borrowed from a base document left out of the sample
        assert title in {t for t, _ in base.values()}
        assert title not in base_titles
        rest = text.replace(q.text, "")
        assert any(w in rest.casefold().split() for w in _VOCABULARY), text


def test_cjk_terms_sit_in_unspaced_sentences_among_others(planted: ExactMatchSet) -> None:
    cjk = [q for q in planted.queries if q.kind == "cjk"]
    assert {q.group for q in cjk} == CJK_SCRIPTS
    for q in cjk:
        _, text = planted.corpus[q.doc_id]
        sentences = [s for s in re.split(r"(?<=[。.])\s*", text) if s]
        assert len(sentences) == 3, text
        holding = [s for s in sentences if q.text in s]
        assert len(holding) == 1
        if q.group != "ko":
            assert " " not in text
            assert len(holding[0]) > len(q.text) + 5
        else:  # Korean: the word carries a particle
            assert q.text not in holding[0].split()
        # the other documents of the script share characters with the term, never the term
        others = [
            x
            for d, (_, x) in planted.corpus.items()
            if d != q.doc_id and d.startswith(f"em-{q.group}-")
        ]
        assert all(q.text not in x for x in others)
        assert any(set(q.text) & set(x) for x in others), q.text
    assert all(not CJK.search(planted.corpus[d][1]) for d in planted.base_ids)


def test_queries_bare_and_with_two_words_of_their_document(planted: ExactMatchSet) -> None:
    by_doc: dict[str, dict[str, PlantedQuery]] = {}
    for q in planted.queries:
        by_doc.setdefault(q.doc_id, {})[q.kind] = q
    for doc_id, kinds in by_doc.items():
        term = planted.planted[doc_id]
        if "cjk" in kinds:
            assert set(kinds) == {"cjk"}
            assert kinds["cjk"].text == term
            continue
        assert set(kinds) == {"bare", "context"}
        assert kinds["bare"].text == term
        context = kinds["context"].text
        assert context.startswith(f"{term} ")
        words = context[len(term) + 1 :].split()
        assert len(words) == 2
        assert words[0] != words[1]
        title, text = planted.corpus[doc_id]
        document_words = set(re.findall(r"[a-z]+", f"{title} {text}".casefold()))
        for word in words:
            assert word in document_words, (word, doc_id)
            assert len(word) >= 5
            assert word not in term.casefold()
    assert len({q.qid for q in planted.queries}) == len(planted.queries)


def test_the_set_is_deterministic(planted: ExactMatchSet) -> None:
    again = build_exact_match_set(base_corpus(), base_size=BASE_SIZE, per_shape=PER_SHAPE, seed=5)
    assert again == planted
    assert again.digest() == planted.digest()
    other = build_exact_match_set(base_corpus(), base_size=BASE_SIZE, per_shape=PER_SHAPE, seed=6)
    assert other.digest() != planted.digest()
    assert set(other.planted.values()) != set(planted.planted.values())


def test_identifiers_found_in_the_base_corpus_are_never_planted() -> None:
    size = BASE_SIZE + len(SHAPES)  # every document is in the sample or lends sentences
    corpus = base_corpus(size)
    signals = [
        "SIGUSR1", "SIGUSR2", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH",
        "SIGTTOU", "SIGTTIN", "SIGPIPE", "SIGALRM", "SIGCHLD", "SIGSEGV", "SIGBUS", "SIGTRAP",
        "SIGHUP", "SIGQUIT", "SIGABRT", "SIGTERM", "SIGKILL",
    ]  # fmt: skip
    title, text = corpus["d0"]
    corpus["d0"] = (title, text + " Workers got " + ", ".join(s.lower() for s in signals[1:]))
    em = build_exact_match_set(corpus, base_size=BASE_SIZE, per_shape=1, seed=1)
    assert [q.text for q in em.queries if q.group == "signal" and q.kind == "bare"] == ["SIGUSR1"]
    corpus["d1"] = (corpus["d1"][0], corpus["d1"][1] + " and sigusr1.")
    with pytest.raises(ConfigError, match="no signal identifier"):
        build_exact_match_set(corpus, base_size=BASE_SIZE, per_shape=1, seed=1)


def test_a_base_corpus_too_small_is_refused() -> None:
    with pytest.raises(ConfigError, match="needs 60 \\+ 28"):
        build_exact_match_set(base_corpus(80), base_size=60, per_shape=2)
    with pytest.raises(ConfigError, match=">= 1"):
        build_exact_match_set(base_corpus(), base_size=0)


def test_written_collection_loads_and_is_not_rewritten(
    planted: ExactMatchSet, tmp_path: Path
) -> None:
    root = write_collection(planted, tmp_path / "em")
    loaded = load_beir(root)
    assert loaded.corpus == planted.corpus
    assert loaded.queries == planted.dataset().queries
    assert loaded.qrels == planted.dataset().qrels
    rows = [json.loads(line) for line in (root / "queries.jsonl").read_text().splitlines()]
    assert {(r["group"], r["kind"]) for r in rows} == {(q.group, q.kind) for q in planted.queries}
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    for path in stamps:
        os.utime(path, ns=(1, 1))
    write_collection(planted, root)  # same content: nothing is written
    assert all(p.stat().st_mtime_ns == 1 for p in stamps)
    assert sorted(p.name for p in root.rglob("*")) == [
        "corpus.jsonl",
        "qrels",
        "queries.jsonl",
        "test.tsv",
    ]


# ---------------------------------------------------------------------- runs and report
def _queries() -> list[PlantedQuery]:
    return [
        PlantedQuery("a-bare", "E1234", "a", "error_code", "bare"),
        PlantedQuery("a-context", "E1234 tumour growth", "a", "error_code", "context"),
        PlantedQuery("b-bare", "E5678", "b", "error_code", "bare"),
        PlantedQuery("b-context", "E5678 cardiac muscle", "b", "error_code", "context"),
        PlantedQuery("c-cjk", "糖尿病", "c", "zh", "cjk"),
    ]


def test_summarize_counts_ranks_against_the_targets() -> None:
    ranks: dict[str, int | None] = {
        "a-bare": 1,
        "a-context": 4,
        "b-bare": 2,
        "b-context": 3,
        "c-cjk": None,
    }
    rows = {(r["group"], r["kind"]): r for r in summarize("hybrid", _queries(), ranks)}
    assert list(rows) == [
        ("error_code", "bare"),
        ("error_code", "context"),
        ("zh", "cjk"),
        ("all", "bare"),
        ("all", "context"),
        ("all", "cjk"),
    ]
    bare = rows["error_code", "bare"]
    assert (bare["n"], bare["top1"], bare["top3"], bare["top5"]) == (2, 1, 2, 2)
    assert (bare["target"], bare["in_target"], bare["mrr@10"]) == (1, 1, 0.75)
    context = rows["error_code", "context"]
    assert (context["top1"], context["top3"], context["top5"], context["in_target"]) == (0, 1, 2, 1)
    assert context["mrr@10"] == pytest.approx((1 / 4 + 1 / 3) / 2)
    cjk = rows["zh", "cjk"]
    assert (cjk["top5"], cjk["in_target"], cjk["mrr@10"], cjk["target"]) == (0, 0, 0.0, 5)
    assert rows["all", "bare"] == {**bare, "group": "all"}
    assert TARGET_RANK == {"bare": 1, "context": 3, "cjk": 5}


def test_query_ranks_and_the_report_table() -> None:
    results = {"E1234": ["a", "x"], "E1234 tumour growth": ["x", "y", "a"], "E5678": []}

    def search(text: str, k: int) -> list[str]:
        assert k == 10
        return results.get(text, ["c", "b"])

    ranks = query_ranks(search, _queries())
    assert ranks == {"a-bare": 1, "a-context": 3, "b-bare": None, "b-context": 2, "c-cjk": 1}
    rows = summarize("hybrid", _queries(), ranks)
    rows += summarize("bm25", _queries(), dict.fromkeys(ranks, 1))
    table = format_report(rows).splitlines()
    assert table[0] == (
        "| group | query | n | target | hybrid @1/@3/@5 | bm25 @1/@3/@5 | hybrid in target |"
    )
    assert table[2] == "| error_code | bare | 2 | top 1 | 1/1/1 | 2/2/2 | 1/2 |"
    assert table[3] == "| error_code | context | 2 | top 3 | 0/2/2 | 2/2/2 | 2/2 |"
    assert table[4] == "| zh | cjk | 1 | top 5 | 1/1/1 | 1/1/1 | 1/1 |"
    assert len(table) == 2 + 6


def test_run_on_a_real_index_matches_the_retriever(tmp_path: Path) -> None:
    dataset = write_beir(tmp_path / "base", base_corpus())
    embedding = HashEmbeddings()
    cache = tmp_path / "cache"
    rows = run_exact_match(
        dataset, embedding, cache_dir=cache, base_size=BASE_SIZE, per_shape=PER_SHAPE, seed=5
    )
    em = build_exact_match_set(base_corpus(), base_size=BASE_SIZE, per_shape=PER_SHAPE, seed=5)
    assert embedding.embedded_documents == len(em.corpus)
    groups = {*SHAPES, *CJK_SCRIPTS, "all"}
    assert {r["mode"] for r in rows} == {"hybrid", "bm25", "vector"}
    for mode in ("hybrid", "bm25", "vector"):
        mine = [r for r in rows if r["mode"] == mode]
        assert {r["group"] for r in mine} == groups
        for r in mine:
            assert 0 <= r["top1"] <= r["top3"] <= r["top5"] <= r["n"], r
    # the same ranks as asking the retriever directly, on the cached index (nothing embedded)
    directory = next(p for p in cache.iterdir() if (p / "corpus.jsonl").is_file())
    retriever = open_eval_index(directory, em.dataset(directory.name), embedding, cache_dir=cache)
    assert embedding.embedded_documents == len(em.corpus)
    again = evaluate_exact_match(retriever, em, ["bm25"])
    assert again == [r for r in rows if r["mode"] == "bm25"]
    direct: dict[str, int | None] = {}
    for q in em.queries:
        found = [h.id for h in retriever.search_leg("bm25", q.text, k=10)]
        direct[q.qid] = found.index(q.doc_id) + 1 if q.doc_id in found else None
    assert summarize("bm25", em.queries, direct) == again
    all_bare = next(r for r in again if r["group"] == "all" and r["kind"] == "bare")
    assert all_bare["top1"] > 0  # BM25 finds some bare identifiers first, whatever the tokenizer


# ---------------------------------------------------------------------- the eval command
def run_eval(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["eval", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_eval_exact_match_prints_both_tables_and_writes_both_row_sets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], embedding: HashEmbeddings
) -> None:
    dataset = write_beir(tmp_path / "base", base_corpus(200))
    cache, out = tmp_path / "cache", tmp_path / "rows.json"
    args = ["--dataset", str(dataset), "--cache-dir", str(cache), "--json", str(out)]
    code, stdout, stderr = run_eval(capsys, *args, "--exact-match", "--exact-match-base", "90")
    assert code == 0, stderr
    base_docs = 200
    planted = len(build_exact_match_set(base_corpus(200), base_size=90).corpus)
    assert embedding.embedded_documents == base_docs + planted
    lines = stdout.splitlines()
    assert lines[0] == "base (test, 3 rows)"
    title = next(i for i, line in enumerate(lines) if line.startswith("exact match"))
    assert lines[title].startswith("exact match (90 base documents + planted; 70 identifiers")
    assert lines[title + 1] == (
        "| group | query | n | target | hybrid @1/@3/@5 | bm25 @1/@3/@5 | vector @1/@3/@5 "
        "| hybrid in target |"
    )
    written = json.loads(out.read_text())
    assert set(written) == {"beir", "exact_match"}
    assert [r["mode"] for r in written["beir"]] == ["hybrid", "bm25", "vector"]
    api = run_exact_match(dataset, HashEmbeddings(), cache_dir=cache, base_size=90)
    assert written["exact_match"] == api
    assert format_report(api) == "\n".join(lines[title + 1 :])
    # a second run embeds nothing; one mode runs one mode in both tables
    code, stdout, stderr = run_eval(
        capsys, *args, "--exact-match", "--exact-match-base", "90", "--mode", "bm25"
    )
    assert code == 0, stderr
    assert embedding.embedded_documents == base_docs + planted
    again = json.loads(out.read_text())
    assert {r["mode"] for r in again["exact_match"]} == {"bm25"}
    assert again["exact_match"] == [r for r in api if r["mode"] == "bm25"]
    # without the option the JSON file is the BEIR rows, as before
    assert run_eval(capsys, *args)[0] == 0
    assert [r["mode"] for r in json.loads(out.read_text())] == ["hybrid", "bm25", "vector"]


@pytest.mark.parametrize(
    "case",
    [
        (["--exact-match", "--sweep", "rrf_k=10,60"], "--exact-match cannot be combined"),
        (["--exact-match-base", "100"], "--exact-match-base only applies with --exact-match"),
    ],
    ids=["sweep", "base without the option"],
)
def test_eval_exact_match_rejects_ignored_options(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    embedding: HashEmbeddings,
    case: tuple[list[str], str],
) -> None:
    args, message = case
    dataset = write_beir(tmp_path / "base", base_corpus())
    cache = tmp_path / "cache"
    code, stdout, stderr = run_eval(
        capsys, "--dataset", str(dataset), "--cache-dir", str(cache), *args
    )
    assert (code, stdout) == (2, "")
    assert stderr.strip().splitlines() == [f"langchain-hybrid: error: {message}"] or (
        message in stderr and len(stderr.strip().splitlines()) == 1
    )
    assert embedding.embedded_documents == 0
    assert not cache.exists()


@pytest.mark.usefixtures("embedding")
def test_eval_exact_match_on_a_corpus_too_small_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = write_beir(tmp_path / "base", base_corpus(100))
    code, stdout, stderr = run_eval(
        capsys, "--dataset", str(dataset), "--cache-dir", str(tmp_path / "c"), "--exact-match"
    )
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1
    assert "the base corpus has 100 documents; the exact-match set needs 500 + 70" in lines[0]
    assert stdout.startswith("base (test, 3 rows)")  # the BEIR table came first


# ---------------------------------------------------------------------- the language reference
def _langref() -> Any:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "langref_check.py"
    spec = importlib.util.spec_from_file_location("langref_check", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_langref_words_occur_in_one_topic_only() -> None:
    langref = _langref()
    topics = langref.PYDOC_TOPICS
    assert len(topics) >= 79
    sample = langref.sample_words(langref.unique_words(topics), 30, 12)
    assert sample == langref.sample_words(langref.unique_words(topics), 30, 12)
    assert len(sample) == 30
    assert len({topic for _, topic in sample}) == 30
    for word, topic in sample:
        assert len(word) >= 6
        holders = [
            name
            for name, text in topics.items()
            if re.search(rf"(?<![a-z]){word}(?![a-z])", text.casefold())
        ]
        assert holders == [topic], word


def test_langref_summary_counts_first_places() -> None:
    langref = _langref()
    results = [
        {"word": "a", "topic": "t", "hybrid": 1, "bm25": 1, "vector": None},
        {"word": "b", "topic": "u", "hybrid": 4, "bm25": 1, "vector": 2},
        {"word": "c", "topic": "v", "hybrid": None, "bm25": 3, "vector": 1},
    ]
    rows = {r["mode"]: r for r in langref.summary(results)}
    assert rows["hybrid"] == {"mode": "hybrid", "words": 3, "first": 1, "top3": 1, "top10": 2}
    assert rows["bm25"] == {"mode": "bm25", "words": 3, "first": 2, "top3": 3, "top10": 3}
    assert rows["vector"] == {"mode": "vector", "words": 3, "first": 1, "top3": 2, "top10": 2}
