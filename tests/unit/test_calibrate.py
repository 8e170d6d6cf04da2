import math
import random

import pytest

from compound.routing.calibrate import learn_threshold, lower_bound, min_points


def test_lower_bound_matches_known_clopper_pearson_values():
    # 95% one-sided lower bounds: all-success case has the closed form delta ** (1 / n)
    assert lower_bound(20, 20, 0.05) == pytest.approx(0.05 ** (1 / 20), abs=1e-6)
    assert lower_bound(0, 10, 0.05) == 0.0
    assert lower_bound(90, 100, 0.05) == pytest.approx(0.8363, abs=2e-3)  # scipy.stats.beta.ppf(0.05, 90, 11)
    assert min_points(0.9, 0.05) == 29


def draw(rng, n):
    """Synthetic stage: confidence c ~ U(0,1); the answer agrees with the reference with prob. 0.5 + 0.5 c."""
    out = []
    for _ in range(n):
        c = rng.random()
        out.append((c, rng.random() < 0.5 + 0.5 * c))
    return out


@pytest.mark.parametrize("target,delta,start", [(0.9, 0.1, 0.0), (0.95, 0.05, 0.0), (0.85, 0.1, 0.25)])
def test_learned_thresholds_meet_the_target_on_fresh_data_at_the_stated_failure_rate(target, delta, start):
    rng = random.Random(1234)
    draws, failures, accepted = 300, 0, []
    for _ in range(draws):
        calib = draw(rng, 400)
        t = learn_threshold([c for c, _ in calib], [a for _, a in calib], target, delta, start=start)
        if not math.isfinite(t.value):
            continue
        fresh = [a for c, a in draw(rng, 4000) if c >= t.value]
        accepted.append(len(fresh) / 4000)
        if fresh and sum(fresh) / len(fresh) < target:
            failures += 1
    # the failure rate over many calibration draws stays within delta (with a little sampling slack)
    assert failures / draws <= delta + 0.03, failures
    # and the thresholds are not trivially strict: a useful share of fresh rows is accepted
    assert sum(accepted) / len(accepted) > 0.15


def test_no_threshold_when_the_stage_is_never_good_enough():
    confs = [i / 100 for i in range(100)]
    t = learn_threshold(confs, [i % 2 == 0 for i in range(100)], target=0.9, delta=0.05)
    assert t.value == math.inf and t.accepted == 0


def test_starting_at_a_quarter_a_few_early_disagreements_do_not_end_the_search():
    # 400 points, most confident first: 3 disagreements among the first 3, then 197 agreements, then a coin
    confs = [1 - i / 400 for i in range(400)]
    agrees = [i >= 3 if i < 200 else i % 2 == 0 for i in range(400)]
    early = learn_threshold(confs, agrees, target=0.9, delta=0.1)
    assert early.value == math.inf  # its first test, on 22 points with 3 disagreements, fails
    later = learn_threshold(confs, agrees, target=0.9, delta=0.1, start=0.25)
    assert later.accepted >= 200 and later.bound >= 0.9 and later.agreement < 1
