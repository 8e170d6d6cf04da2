"""The vitals example's parts on vignettes written here: the gold reader, its refusals, the two checks that
need no gold, and the per-field score."""

import json
import sys
from pathlib import Path

from compound import ScriptedBackend

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))
import vitals  # noqa: E402

CASE = (
    "A 39-year-old woman is brought to the emergency department because of fevers and chills. Her "
    "temperature is 39.1°C (102.3°F), pulse is 126/min, respirations are 28/min, and blood pressure is "
    "80/50 mm Hg. Which of the following is the most likely diagnosis?"
)


def test_gold_reads_the_fixed_phrasing():
    assert vitals.gold_fields(CASE) == {
        "age": 39,
        "sex": "female",
        "temperature_c": 39.1,
        "pulse": 126,
        "respiratory_rate": 28,
        "oxygen_saturation": None,
        "systolic_bp": 80,
        "diastolic_bp": 50,
    }
    baby = vitals.gold_fields("A 3-week-old boy is brought to the physician. His pulse is 160/min.")
    assert baby is not None and (baby["age"], baby["sex"], baby["pulse"]) == (0, "male", 160)


def test_gold_refuses_what_it_cannot_read_for_sure():
    # two different pulses: which one is "the" value is a judgement, not a reading
    assert vitals.gold_fields(CASE + " After fluids, his pulse is 98/min.") is None
    # a phrasing the reader does not know would leave a wrong null gold
    assert vitals.gold_fields("A 50-year-old man has a heart rate of about 90 beats per minute.") is None
    # a temperature only in °F: the °C gold would be a conversion
    assert vitals.gold_fields("A 20-year-old man. His temperature is 101°F.") is None


def answer(**fields):
    return vitals.Vitals(**{**dict.fromkeys(vitals.FIELDS), **fields})


def test_grounded_refuses_numbers_that_are_not_in_the_case():
    inputs = {"case": CASE}
    assert vitals.grounded(answer(age=39, temperature_c=39.1, pulse=126), inputs)[0]
    ok, reason = vitals.grounded(answer(age=39, temperature_c=38.9), inputs)
    assert not ok and "temperature_c=38.9" in reason
    assert not vitals.grounded(answer(age=40), inputs)[0]
    assert vitals.grounded(answer(age=0), {"case": "A 3-day-old girl"})[0]  # a baby's age is 0 by the rule
    assert not vitals.grounded(answer(pulse=12), {"case": "pulse is 126/min"})[0]  # not a part of another number


def test_plausible_refuses_impossible_values():
    assert vitals.plausible(answer(systolic_bp=120, diastolic_bp=80))[0]
    assert not vitals.plausible(answer(systolic_bp=80, diastolic_bp=120))[0]
    assert not vitals.plausible(answer(temperature_c=102.3))[0]


def test_field_scores_count_nulls_and_a_missing_answer():
    gold = vitals.gold_fields(CASE)
    right = answer(**gold)
    assert all(vitals.field_scores(right, gold).values())
    wrong = answer(**{**gold, "oxygen_saturation": 95, "temperature_c": 39.0})
    scores = vitals.field_scores(wrong, gold)
    assert [f for f, ok in scores.items() if not ok] == ["temperature_c", "oxygen_saturation"]
    assert not any(vitals.field_scores(None, gold).values())


def test_the_step_repairs_an_invented_number():
    """The program as a user runs it: the first answer invents a temperature, Repair feeds the failure
    back, the second answer is kept."""
    replies = iter(
        [
            json.dumps({**dict.fromkeys(vitals.FIELDS), "age": 39, "sex": "female", "temperature_c": 38.0}),
            json.dumps({**dict.fromkeys(vitals.FIELDS), "age": 39, "sex": "female", "temperature_c": 39.1}),
        ]
    )
    backend = ScriptedBackend(lambda request: next(replies))
    result = vitals.extract_step(backend, attempts=2).result(case=CASE)
    assert result.value.temperature_c == 39.1
    assert len(result.candidates) == 2
