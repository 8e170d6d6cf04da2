"""Character n-grams: the surface features a sentence embedding smooths away, for the embedding student.

A sentence embedding places "How do I parse JSON in Python?" near "How to read a YAML file in Ruby?": close
in meaning, different in the tokens that decide a topic label. ``char_ngrams`` gives each text the
TF-IDF weights of its character 2- to 4-grams within word bounds (sublinear term frequency, the inverse
document frequency learned on the job's own texts, no labels), hashed into a fixed ``2**15`` columns, so
nothing is stored per vocabulary and a misspelling still shares most of its grams with the right word.
``auto``'s first stage (``optimize.staged``) appends them to the embedding; the student stays one
logistic regression, at the cost of an embedding per row.

Measured (``benchmarks/auto_scale.py``; ``docs/benchmarks.md``, "auto at job scale"): with the n-grams
(and the stop rule of the same day) the embedding student answered 58 to 64% of a 2,000-row job of
Stack Overflow titles (20 tags) over five plans, against 23 to 53% before, at the large model's accuracy;
on movie-review and VADER sentiment no student was certified either way. All of it is local work, counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from compound.core.usage import local_work

#: hashed columns: 32,768 (collisions among a job's few hundred thousand distinct grams cost little)
FEATURES = 2**15
#: character n-gram lengths, within word bounds (``char_wb``)
NGRAMS = (2, 4)


def ngram_counts(texts: Sequence[str]) -> Any:
    """Rows x ``FEATURES`` sparse counts of each text's character n-grams (a row at a time: no state)."""
    from sklearn.feature_extraction.text import HashingVectorizer

    with local_work():
        raw: Any = None  # counts: ``tf_idf`` weighs and normalises them (the stubs allow only a norm's name)
        return HashingVectorizer(
            analyzer="char_wb", ngram_range=NGRAMS, n_features=FEATURES, alternate_sign=False, norm=raw
        ).transform(list(texts))


def tf_idf(counts: Any) -> Any:
    """The counts of a job's texts weighed by sublinear TF-IDF, the IDF learned on those texts; rows of unit
    length."""
    from sklearn.feature_extraction.text import TfidfTransformer

    with local_work():
        return TfidfTransformer(sublinear_tf=True).fit_transform(counts).tocsr()


def char_ngrams(texts: Sequence[str]) -> Any:
    """``tf_idf(ngram_counts(texts))``: the features ``auto``'s first stage appends to the embedding. Their CPU
    time is counted in every active tracker."""
    return tf_idf(ngram_counts(texts))
