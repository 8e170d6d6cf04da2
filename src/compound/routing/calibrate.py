"""Learning confidence thresholds with a finite-sample guarantee.

A stage accepts its answer when its confidence is at least a threshold. We want the accepted answers
to agree with a reference (the largest model's answers, or gold labels) at a target rate, with failure
probability at most ``delta`` over the draw of the calibration sample.

Method (learn-then-test with fixed-sequence testing, as in Angelopoulos et al. 2021 and the
BARGAIN/LOTUS line of work): order candidate thresholds from strict to lenient; at each, test
"agreement among accepted calibration points < target" with an exact one-sided binomial
(Clopper-Pearson) bound at level ``delta``; keep going while the test rejects, and return the most
lenient threshold that passed. Fixed-sequence testing needs no union bound, so each test uses the full
``delta``. With probability at least ``1 - delta``, the agreement of the accepted answers on fresh data
from the same distribution is at least the target.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from compound.core.errors import InputError


def _log_binom_tail(k: int, n: int, p: float) -> float:
    """log P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 0.0
    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return 0.0
    terms = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * math.log(p) + (n - i) * math.log1p(-p)
        for i in range(k, n + 1)
    ]
    top = max(terms)
    return top + math.log(sum(math.exp(t - top) for t in terms))


def lower_bound(successes: int, trials: int, delta: float) -> float:
    """Clopper-Pearson lower confidence bound: the smallest p with P(X >= successes | p) >= delta."""
    if trials == 0 or successes == 0:
        return 0.0
    lo, hi, log_delta = 0.0, successes / trials, math.log(delta)
    for _ in range(60):
        mid = (lo + hi) / 2
        if _log_binom_tail(successes, trials, mid) < log_delta:
            lo = mid
        else:
            hi = mid
    return lo


@dataclass(frozen=True)
class Threshold:
    value: float  # accept when confidence >= value; math.inf means never accept
    target: float
    delta: float
    accepted: int  # calibration points at or above the threshold
    agreement: float  # observed agreement among them
    bound: float  # its lower confidence bound

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value if math.isfinite(self.value) else None,
            "target": self.target,
            "delta": self.delta,
            "accepted": self.accepted,
            "agreement": self.agreement,
            "bound": self.bound,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Threshold:
        return cls(**{**d, "value": math.inf if d["value"] is None else d["value"]})


def min_points(target: float, delta: float) -> int:
    """Fewer accepted points than this can never show ``target`` at level ``delta``, even all agreeing."""
    return 1 if target <= delta else math.ceil(math.log(delta) / math.log(target))


def learn_threshold(
    confidences: Sequence[float],
    agrees: Sequence[bool],
    target: float,
    delta: float = 0.05,
    min_accepted: int | None = None,
    steps: int = 20,
    start: float = 0.0,
) -> Threshold:
    """The most lenient threshold whose accepted calibration points agree at ``target`` with prob. ``1 - delta``.

    The fixed sequence is a coarse grid: the strictest threshold that accepts ``min_accepted`` points (by
    default the fewest that could pass at all, at least a ``steps``-th of the points, and at least a
    ``start`` share of them), then one every ``steps``-th of the points. Testing every distinct confidence
    would let one early disagreement, among the first few points where the bound is weakest, end the
    search; a grid of about ``steps`` tests, each on a growing share of the points, does not. A caller that
    has no use for a small accepted share (``auto``: a student certified for a few rows saves little)
    starts later, where one unlucky disagreement weighs less. The grid depends on the confidences only
    (``start`` is fixed in advance), so the guarantee of the fixed-sequence test holds."""
    if len(confidences) != len(agrees):
        raise InputError("confidences and agrees must have the same length")
    if not 0 < target < 1 or not 0 < delta < 1:
        raise InputError("target must be in (0, 1) and delta in (0, 1)")
    stride = max(1, math.ceil(len(confidences) / max(1, steps)))
    if min_accepted is None:
        min_accepted = max(min_points(target, delta), stride, math.ceil(start * len(confidences)))
    pairs = sorted(zip(confidences, agrees, strict=False), key=lambda p: -p[0])
    best = Threshold(math.inf, target, delta, 0, 0.0, 0.0)
    ok = 0
    i = 0
    next_test = min_accepted
    while i < len(pairs):
        conf = pairs[i][0]
        while i < len(pairs) and pairs[i][0] == conf:  # ties enter together
            ok += pairs[i][1]
            i += 1
        if i < next_test and i < len(pairs):
            continue  # between grid points
        next_test = i + stride
        bound = lower_bound(ok, i, delta)
        if bound >= target:
            best = Threshold(conf, target, delta, i, ok / i, bound)
        else:
            break  # fixed sequence: the first failure ends the search
    return best


def recall_threshold(positive_scores: Sequence[float], target: float, delta: float = 0.05) -> float:
    """The strictest score threshold that keeps ``target`` of the positives, with probability ``1 - delta``.

    ``positive_scores`` are the scores (a similarity, say) of the calibration points the reference called
    positive. Rejecting every point that scores below the returned threshold loses, on fresh data from the
    same distribution, at most ``1 - target`` of the positives with probability at least ``1 - delta``.
    Fixed-sequence testing from lenient to strict: the k-th test drops the k lowest-scoring positives and
    passes while the Clopper-Pearson lower bound on the share kept is at least ``target``; the first failure
    ends the search. ``-inf`` (reject nothing) when even keeping every positive cannot show ``target``:
    too few positives for the guarantee."""
    if not 0 < target < 1 or not 0 < delta < 1:
        raise InputError("target must be in (0, 1) and delta in (0, 1)")
    scores = sorted(positive_scores)
    n = len(scores)
    best = -math.inf
    k = 0
    while k < n:
        kept = n - k  # the points scoring at least scores[k] (ties are kept or dropped together)
        if lower_bound(kept, n, delta) < target:
            break
        best = scores[k]
        value = scores[k]
        while k < n and scores[k] == value:
            k += 1
    return best
