"""The five tasks of the peers benchmark: which sides run them, which configurations are compared, and
the text the generated README shows beside their tables (no figures: those come from the JSON)."""

from __future__ import annotations

from typing import Any

from corpora import dataset_of

C, D, L = "compound", "dspy", "lotus"
#: compound's configuration of the cascade task: ``auto`` as ``classify(..., program="auto")`` runs it
AUTO = "auto (staged planner)"

CASCADE_COST = (
    "compound's `auto` of this run had the large model label a sample of the job's own rows (48 at first, its "
    "`first` default: on a job of a few dozen rows that is most of them) before it trusted the student (a "
    "labelled row that escalates keeps the teacher's label: it is not asked again). LOTUS's default samples "
    "10% of the rows for the large model and runs the small model on every row. How the two compare on jobs "
    "of thousands of rows, where the labelling is a small share, this run does not measure."
)

TASKS: dict[str, dict[str, Any]] = {
    "classify": {
        "title": "1. Zero-shot classification, small and large model",
        "about": "One label per row, one call per row: DSPy `Predict` against compound's typed classification step.",
        "peers": [D, C],
        "pairs": [[[C, "small zero-shot"], [D, "small zero-shot"]], [[C, "large zero-shot"], [D, "large zero-shot"]]],
        "notes": [
            "A DSPy answer that its adapters could not parse (after ChatAdapter's fallback to JSONAdapter) "
            "counts as wrong (`unparsed`): the small model's replies to DSPy's longer structured prompts "
            "mostly were. compound decodes under the output schema, so its replies parse.",
        ],
    },
    "vote": {
        "title": "2. Self-consistency, 5 samples of the small model",
        "about": "DSPy's `dspy.majority` over 5 samples against compound's `SelfConsistency(5)`.",
        "peers": [D, C],
        "pairs": [[[C, "SelfConsistency(5)"], [D, "majority of 5"]]],
        "notes": [
            "Where the 135M model's reply parsed neither with DSPy's default `ChatAdapter` nor with the "
            "`JSONAdapter` it falls back to, a DSPy sample cost two calls and cast no vote (its `calls` "
            "column against 5 per row). compound decodes under the output schema, so each of its calls is one "
            "vote for a label.",
        ],
    },
    "optimize": {
        "title": "3. Few-shot optimization of the small model",
        "about": (
            "The same trainset; accuracy on the held-out rows. One-time: the optimizer's own calls and CPU; "
            "per-row: answering the held-out rows with what it learned. DSPy's `KNNFewShot` bootstraps each "
            "input's neighbours with the model at answer time, so its cost is per row."
        ),
        "peers": [D, C],
        "pairs": [
            [[C, "BootstrapFewShot"], [D, "BootstrapFewShot"]],
            [[C, "KNNFewShot"], [D, "KNNFewShot"]],
        ],
        "notes": [
            "compound's `BootstrapFewShot` ran under `compound.budget(calls=32)`, which counts every request "
            "that reaches a server (retries and refused requests sent again included). DSPy's "
            "`BootstrapFewShot` stopped by itself after its 4 demos.",
        ],
    },
    "cascade": {
        "title": "4. Cascade: small helper, then the large model",
        "about": (
            "LOTUS `sem_filter` with its helper-model cascade against compound's `auto`, at the same targets "
            "(0.8, failure probability 0.2), neither using gold labels. compound's `auto` is the staged planner "
            '(`optimize.staged.plan_classify`, as `classify(..., program="auto")` runs it): the large model '
            "labels rows of the job in rounds, the student stages that pay for the job's length are trained on "
            "those labels and certified on a random hold-out, the large model answers the rest; a job too short "
            "to teach is answered by the large model alone, never above 1.05x its CPU. Its statistics give the "
            "plan and the rows each stage answered (the configuration's name says which `auto` a run measured). `agreement_with_large`: agreement with compound's "
            "large zero-shot answers on the rows both tasks ran (task 1); `large_calls`: calls the large model "
            "served, labelling included; `rows_to_large`: rows LOTUS sent to the large model (its stats), and "
            "for compound the large model's calls while answering the rows (repairs included)."
        ),
        "peers": [L, C],
        "pairs": [[[C, AUTO], [L, "sem_filter, CascadeArgs() defaults"]]],
    },
    "map": {
        "title": "5. Semantic map on the small model",
        "about": "LOTUS `sem_map` against `compound table map` (`map_op`), the same instruction; no gold: throughput and CPU.",
        "peers": [L, C],
        "pairs": [[[C, "table map"], [L, "sem_map"]]],
        "quality": None,
        "notes": [
            "Each side uses its own default length cap (compound's map step: 256 tokens; LOTUS: none), "
            "so tokens generated differ; `answered` is the share of rows with a non-empty answer.",
        ],
    },
}

#: what a run on a data set showed beyond its tables (written from that run: see its JSON)
NOTES: dict[str, dict[str, list[str]]] = {
    "rotten-tomatoes": {
        "cascade": [
            "compound's embedding student was not certified at these targets on this job (its statistics "
            "below: `certified` false), so every row has the large model's answer: the rows the large model "
            "labelled first and all the rest, escalated (`large_calls` equals the rows). Its lead is the large "
            "model's quality at the large model's cost, against LOTUS's helper model, which resolved part of "
            "the rows (its `filters_resolved_by_helper_model`) by thresholds LOTUS learned from the large "
            "model's answers on a 10% sample, aimed at its recall and precision targets for the passing "
            "label rather than at agreement on every row. That a student can take over on larger jobs is "
            "what `benchmarks/teach.py` measures, not this run.",
        ],
        "map": [
            "compound answered duplicate rows once (its `calls` against the rows). Both sides ask for plain "
            "text; compound's prompt restates the instruction after the row, LOTUS's ends with it too.",
        ],
    },
}

#: why a goal was missed, per data set and task (written from a run of that data set: see its JSON)
WHY: dict[str, dict[str, dict[str, str]]] = {
    "rotten-tomatoes": {
        "map": {
            "cpu <= peer": (
                "a tie, decided by noise. The two sides generated nearly the same tokens. Of LOTUS's extra "
                "prompt tokens, 7 a row are its longer fixed system prompt (25 tokens against compound's 18 for "
                "its format note, by the 135M model's tokenizer), which the server reuses from the previous "
                "request instead of computing; the few left are a small share of a row's CPU, most of which is "
                "generation. Repeated runs of one side on this server vary by more than the difference: the "
                "200-row map of the run that measured tasks 1 to 4 came out at 0.93x."
            ),
        },
    },
    "sms-spam": {
        "classify": {
            "quality >= peer": (
                "with compound's typed label step (JSON constrained to the two labels) the large model answered "
                "`spam` for most rows, far above the share of spam in the data; DSPy's prompt did not lead it "
                "there as often. The 1.5B model's answer on this task depends on the prompt's form more than on "
                "the message: in process, listing the labels as `not spam, spam` instead of `spam, not spam` moved "
                "a balanced 40-row probe from 0.575 to 0.70 (5 Dec), at the same ranking quality (AUC 0.79)."
            ),
        },
        "optimize": {
            "quality >= peer": (
                "a likely reason, not checked: compound's search chose its demos on 8 trainset rows, too few "
                "to tell the candidates apart, while DSPy's default puts up to 16 labelled demos in every "
                "prompt, at a higher cost per row."
            ),
            "cpu <= 0.5x peer at >= quality": "the CPU goal is met; the quality goal is not (above).",
        },
        "cascade": {
            "cpu <= peer": CASCADE_COST,
            "cpu <= 0.5x peer at >= quality": (
                "the goal needs both: the CPU ratio is in the table; the quality is below LOTUS's (next line). "
                + CASCADE_COST
            ),
            "quality >= peer": (
                "on this run's rows the embedding student was not certified (the JSON's `stats`), so every "
                "row kept the large model's label from compound's label step, under which it over-answers "
                "`spam` (task 1); LOTUS's filter prompt made the large model answer `not spam` for nearly every "
                "row, which is the commoner label here (compare the majority baseline and the table's "
                "`agreement_with_large`)."
            ),
        },
        "map": {
            "cpu <= peer": (
                "both sides made one call per row with about the same tokens, yet compound's server spent more "
                "CPU: in that run compound's map was a typed step, decoded under its JSON schema's grammar, and "
                "LOTUS asks for plain text (a text column has been asked for as plain text since). Measured apart (`benchmarks/grammar_cost.py`, 5 Dec, 48 rows, in process): "
                "under llama-cpp-python's grammar code, which its server runs, a row costs 1.41x the CPU of plain "
                "text while writing fewer tokens (22.9 against 29.2: 1.8x per token); on xllamacpp, compound's "
                "default engine, the same schema costs 0.93x. Against a llama-cpp-python server compound still "
                "pays it."
            ),
        },
    },
}


def intro(result: dict[str, Any]) -> str:
    rows = {t["name"]: t["rows"] for t in result["tasks"]}
    short = [n for n, r in rows.items() if r < (1000 if n == "map" else 300)]
    scale = (
        f"The issue asks for at least 300 rows per task and 1,000 in the map; {', '.join(short)} ran on fewer "
        "(the rows each table states), what one run fits in the hour the issue allows on 2 cores. "
        "The runner repeats every task at any size (`--rows`, `--task-rows`, `--train`, `--map-rows`). "
        if short
        else ""
    )
    dataset = dataset_of(result)
    smoke = (
        "A smoke run (`--smoke --data`): compound's side only, on scripted models; no figure here means anything. "
        if result.get("scripted")
        else ""
    )
    return (
        smoke
        + f"Data (`--data {dataset.name}`"
        + ("; this run predates the option, so its command above lacks it" if result.get("data_implied") else "")
        + f"): {dataset.title}, {dataset.source}, "
        f"labels {', '.join(f'`{label}`' for label in dataset.labels)}, shuffled with "
        f"seed {result['seed']}: tasks 1 to 4 use the same held-out rows, the optimizers learn from "
        f"{result['train']} other rows, the map takes the first rows of the same order. " + scale + "Models: "
        f"{result['models']['small']} (small) and {result['models']['large']} (large), each served by its own "
        "`python -m llama_cpp.server` on loopback with 2 threads. CPU seconds are the side's own process "
        "plus the model servers (the whole process tree of a request); ratios compare sides measured in one "
        "run of the task. A tool's start-up (interpreter and imports) is left out of the ratios and kept in "
        "the JSON (`setup_cpu_s`). Wall seconds are noisier than CPU seconds." + walls(result) + ANY_DATA
    )


#: how to repeat the comparison on other data, for every README
ANY_DATA = (
    " To repeat it on data no one tuned on, `--data PATH.jsonl` takes any labelled JSON Lines file, one "
    '`{"text": ..., "label": ...}` a line, its labels read from the data (`--positive` and `--claim` set '
    "LOTUS's filter; the cascade task needs two labels); give `--json` and `--readme` paths of your own."
)


def walls(result: dict[str, Any]) -> str:
    """How long each run behind the figures took (``wall_by_command``; older JSON: ``total_wall_s``)."""
    runs = result.get("wall_by_command") or (
        {result["commands"][-1]: result["total_wall_s"]} if result.get("total_wall_s") else {}
    )
    said = "; ".join(f"`{cmd}` {wall / 60:.0f} minutes" for cmd, wall in runs.items())
    return f" Wall time of each run, installing the peers included: {said}." if said else ""


def settings() -> list[str]:
    return [
        "Caches off on every side: DSPy `cache=False` and `configure_cache(enable_disk_cache=False, "
        "enable_memory_cache=False)`; LOTUS `enable_cache=False`; compound `configure(cache=False)` in an "
        "empty home. The servers' own prompt cache is off (llama-cpp-python's default); each server keeps "
        "the previous prompt's prefix in its context, for every side alike.",
        "In the cascade task the small model is served with `logits_all` (LOTUS's helper cascade needs "
        "token logprobs; compound's cascade does not call the small model); the other tasks use a plain server.",
        "DSPy 3.4.1 (`side_dspy.py`): `dspy.LM('openai/ALIAS', api_base=..., cache=False)`, default "
        "`ChatAdapter`; temperature 0 and `max_tokens=64` for classification (DSPy leaves both to the "
        "server: sampling at 0.8, no cap; the cap also goes as `max_tokens` in `extra_body`, since the server "
        "ignores the `max_completion_tokens` DSPy sends); `dspy.majority` over 5 calls at temperature 0.7 (the server "
        "answers `n=5` with one choice); `BootstrapFewShot` defaults with the large model as teacher "
        "(`teacher_settings`); `KNNFewShot(k=4)` with the same MiniLM embedding as compound's.",
        "LOTUS 1.2.4 (`side_lotus.py`, own virtual environment): `LM('openai/ALIAS', api_base=...)` "
        "defaults; `CascadeArgs()` defaults (recall and precision 0.8, sampling 10%, failure probability "
        "0.2, helper-model logprobs as proxy scores); `sem_map` defaults.",
        "compound (`side_compound.py`): `OpenAIBackend(ALIAS, base_url=...)`, table operators at the "
        "default concurrency; `SelfConsistency(5)`; `KNNFewShot(k=4)`; `BootstrapFewShot(large, "
        "max_demos=4, candidates=1, max_bootstrap_rows=8)` scored on 8 trainset rows under `compound.budget(calls=32)`; "
        "`auto` (`optimize.staged.plan_classify`, the large model as teacher) with target 0.8 and delta 0.2.",
        "Calls and tokens are counted by a proxy in front of each server from the server's replies; the "
        "proxy runs in the runner's process and is not counted in any side's CPU. It passes the server's "
        "`Server` header on, so a client that recognises `llama_cpp.server` by it (compound does) sees the "
        "server as it is.",
    ]
