"""What a JSON-schema constraint costs per engine: the same short free-text answers, with and without it.

    python benchmarks/grammar_cost.py --json out.json [--rows 48] [--model smollm2-135m]

For each engine (xllamacpp, compound's default, and llama-cpp-python, whose grammar code is also what
``python -m llama_cpp.server`` runs), in its own fresh process, the same rows are answered twice per round,
alternating: under a one-field JSON schema (as a ``table map`` step asks) and as plain text, greedy,
48 tokens at most, 2 threads. Reported: process CPU seconds per row and generated tokens per row, and the
ratio of the two modes. The rows are synthetic support messages made here (no data set is read).
"""

from __future__ import annotations

import json
import statistics
import time

from _common import parse, parser, report, run_phase

ENGINES = ["xllamacpp", "llama-cpp-python"]
INSTRUCTION = "Name the topic of the text in at most five words."
SCHEMA = {
    "type": "object",
    "properties": {"topic": {"type": "string"}},
    "required": ["topic"],
    "additionalProperties": False,
}


def text(i: int) -> str:
    things = ["my order", "the invoice", "a refund", "the app", "my password", "the delivery", "a discount"]
    moods = ["still waiting on", "confused about", "happy with", "angry about", "asking again about"]
    return f"Hi, this is customer {i}. I am {moods[i % len(moods)]} {things[i % len(things)]}, ref {1000 + 7 * i}."


def phase(engine: str, model: str, rows: int, rounds: int) -> dict:
    from compound.models.engines import EngineConfig, open_engine
    from compound.models.llama_cpp import resolve_model_path
    from compound.models.typed import describe_schema

    note = "\n\n" + describe_schema(SCHEMA)  # what a typed step adds to its instructions
    eng = open_engine(engine, EngineConfig(path=resolve_model_path(model), n_ctx=2048, n_threads=2))
    out: dict[str, list[tuple[float, int]]] = {"schema": [], "plain": []}
    for r in range(rounds):
        for mode in ("schema", "plain") if r % 2 == 0 else ("plain", "schema"):
            c0, tokens = time.process_time(), 0
            for i in range(rows):
                system = INSTRUCTION + (note if mode == "schema" else "")
                request = {
                    "messages": [
                        {"role": "system", "content": system},
                        {"role": "user", "content": f"text: {text(i)}"},
                    ],
                    "max_tokens": 48,
                    "temperature": 0.0,
                    "top_p": 1.0,
                    "stop": None,
                    "seed": None,
                    "json_schema": SCHEMA if mode == "schema" else None,
                }
                tokens += eng.chat(request)["usage"]["completion_tokens"]
            out[mode].append((time.process_time() - c0, tokens))
    return out


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=48)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--phase", help="(internal) run one engine")
    args = parse(p, rows=3, rounds=1)
    if args.phase:
        print(json.dumps(phase(args.phase, args.model, args.rows, args.rounds)))
        return
    rows, summary = [], {}
    for engine in ENGINES:
        result = run_phase(
            __file__, engine, "--model", args.model, "--rows", str(args.rows), "--rounds", str(args.rounds)
        )
        per_row = {}
        for mode, runs in result.items():
            cpu = statistics.mean(c for c, _ in runs) / args.rows
            per_row[mode] = cpu
            tokens = statistics.mean(t for _, t in runs) / args.rows
            rows.append({"engine": engine, "mode": mode, "cpu_s_per_row": cpu, "tokens_per_row": tokens})
        summary[f"{engine}: CPU per row, schema / plain"] = per_row["schema"] / per_row["plain"]
    report(
        f"JSON-schema constraint cost, {args.model}, {args.rows} rows x {args.rounds} rounds", rows, summary, args.json
    )


if __name__ == "__main__":
    main()
