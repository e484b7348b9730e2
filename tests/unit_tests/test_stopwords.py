"""The shipped English stopword list equals scikit-learn's (indexes tokenize as before)."""

from __future__ import annotations

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS as SKLEARN_STOP_WORDS

from langchain_hybrid._stopwords import ENGLISH_STOP_WORDS


def test_the_shipped_list_equals_scikit_learns() -> None:
    assert frozenset(SKLEARN_STOP_WORDS) == ENGLISH_STOP_WORDS
    assert len(ENGLISH_STOP_WORDS) == 318
    assert all(w == w.lower().strip() and w for w in ENGLISH_STOP_WORDS)
