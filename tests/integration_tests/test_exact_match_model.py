"""The exact-match benchmark with the real model: 500 SciFact documents + the planted ones.

Floors: what the defaults achieve (measured 2026-12-04 on commit ad69349: z-score fusion, the
tokenizer that keeps identifiers whole and as parts and cuts CJK into bigrams), per group and
query kind, in hybrid mode and BM25 alone. They keep the figures from regressing; raise them
as the fusion improves. :data:`~langchain_hybrid.exact_match.TARGET_RANK` is issue 12's
requirement (every bare identifier first, with context in the top 3, every CJK term in the
top 5); ``test_the_defaults_meet_issue_12`` holds it as a strict xfail until they do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from helpers import report

from langchain_hybrid.embeddings import MiniLMEmbeddings
from langchain_hybrid.exact_match import SHAPES, format_report, run_exact_match

pytestmark = pytest.mark.model

SCIFACT = Path(__file__).resolve().parents[3] / "shared" / "data" / "scifact"
BASE_SIZE = 500

# (group, kind) -> queries whose planted document reached TARGET_RANK[kind], as measured on
# ad69349 (d2592f0's tokenizer, z-score fusion); in comments, where 81db720 (the `\w\w+`
# tokenizer) differed
HYBRID_FLOOR: dict[tuple[str, str], int] = {
    ("error_code", "bare"): 1,
    ("sku", "bare"): 2,  # 0
    ("snake_case", "bare"): 4,  # 2
    ("dotted", "bare"): 4,
    ("camel_case", "bare"): 3,
    ("version", "bare"): 3,
    ("cve", "bare"): 3,
    ("kb", "bare"): 2,  # 1
    ("ticket", "bare"): 2,
    ("hex_address", "bare"): 1,
    ("email", "bare"): 1,  # 0
    ("url", "bare"): 3,  # 4: BM25 alone still puts all 5 first; the fusion loses one
    ("status_code", "bare"): 4,
    ("signal", "bare"): 2,
    **{(shape, "context"): 5 for shape in SHAPES},
    ("zh", "cjk"): 8,  # 6
    ("ja", "cjk"): 6,  # 5
    ("ko", "cjk"): 4,  # 3
}
BM25_FLOOR: dict[tuple[str, str], int] = {
    **{(shape, kind): 5 for (shape, kind) in HYBRID_FLOOR if kind != "cjk"},  # status_code 4
    ("zh", "cjk"): 8,  # 0 (an unspaced sentence was one token)
    ("ja", "cjk"): 8,  # 0
    ("ko", "cjk"): 4,  # 0
}


def _scifact() -> Path:
    configured = os.environ.get("LANGCHAIN_HYBRID_SCIFACT")
    path = Path(configured) if configured else SCIFACT
    if not (path / "corpus.jsonl").is_file():
        pytest.fail(
            f"SciFact (BEIR layout) not found at {path}: set LANGCHAIN_HYBRID_SCIFACT "
            "(or deselect with -m 'not model')"
        )
    return path


@pytest.fixture(scope="module")
def rows(
    minilm: MiniLMEmbeddings, tmp_path_factory: pytest.TempPathFactory
) -> list[dict[str, Any]]:
    """The benchmark's rows for hybrid, BM25 and vector modes with the default settings."""
    out = run_exact_match(
        _scifact(), minilm, cache_dir=tmp_path_factory.mktemp("exact"), base_size=BASE_SIZE
    )
    report("exact match (500 SciFact documents + planted), cells: top 1/3/5 counts")
    for line in format_report(out).splitlines():
        report(line)
    for r in out:
        if r["group"] == "all":
            report(
                f"exact match, {r['mode']}, {r['kind']}: {r['in_target']}/{r['n']} within top "
                f"{r['target']} (issue 12 asks {r['n']}/{r['n']}); top 1/3/5: "
                f"{r['top1']}/{r['top3']}/{r['top5']}"
            )
    return out


def _in_target(rows: list[dict[str, Any]], mode: str) -> dict[tuple[str, str], int]:
    return {
        (r["group"], r["kind"]): r["in_target"]
        for r in rows
        if r["mode"] == mode and r["group"] != "all"
    }


def test_the_figures_do_not_regress(rows: list[dict[str, Any]]) -> None:
    hybrid, bm25 = _in_target(rows, "hybrid"), _in_target(rows, "bm25")
    assert set(hybrid) == set(HYBRID_FLOOR)
    below = {
        f"{mode} {group} {kind}": f"{got[group, kind]} < {floor}"
        for mode, got, floors in (("hybrid", hybrid, HYBRID_FLOOR), ("bm25", bm25, BM25_FLOOR))
        for (group, kind), floor in floors.items()
        if got[group, kind] < floor
    }
    assert not below, below
    sizes = {(r["group"], r["kind"]): r["n"] for r in rows if r["mode"] == "hybrid"}
    assert sizes["all", "bare"] == sizes["all", "context"] == 70  # 14 shapes x 5
    assert sizes["all", "cjk"] == 20  # 8 Chinese, 8 Japanese, 4 Korean terms


@pytest.mark.xfail(
    reason="issue 12's target; the defaults of ad69349 reach it for 70/70 identifiers with "
    "context, but only 35/70 bare identifiers come first and 18/20 CJK terms in the top 5",
    strict=True,
)
def test_the_defaults_meet_issue_12(rows: list[dict[str, Any]]) -> None:
    missed = {
        f"{r['group']} {r['kind']}": f"{r['in_target']}/{r['n']} within top {r['target']}"
        for r in rows
        if r["mode"] == "hybrid" and r["group"] != "all" and r["in_target"] < r["n"]
    }
    assert not missed, missed
