"""``compound distill``: a classification student from unlabelled rows of a JSON Lines file, and
``compound distill email-writer``: the Write page's email writer distilled into the small model
(``compound.serve.email_writer``).

Only the ``--input`` column is read (a gold label column, if the file has one, is never looked at). The
``--rows`` rows are taken from the *end* of the same seeded shuffle whose *start* ``compound compare``
evaluates, so ``compare --limit N`` scores rows the student and its filter never saw whenever
``N + rows`` does not exceed the file's rows (``compare`` also checks this from ``student.json``).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import typer

from compound.cli.support import err
from compound.core.errors import ConfigurationError
from compound.core.settings import Settings


def read_inputs(path: Path, column: str) -> list[str]:
    """The ``column`` of every line of a JSON Lines file, in file order (other columns are dropped)."""
    texts = []
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise ConfigurationError(f"cannot read {path}: {e}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ConfigurationError(f"{path}:{n}: not JSON ({e}); --data takes JSON Lines") from None
        if column not in row:
            raise ConfigurationError(f"{path}:{n}: no column {column!r}; it has {sorted(row)}")
        texts.append(row[column])
    return texts


def unseen_order(n: int, seed: int) -> list[int]:
    """``compound compare``'s row order (its first rows are evaluated), for taking training rows from the end."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order


app = typer.Typer(pretty_exceptions_enable=False)


@app.callback(invoke_without_command=True)
def distill_command(
    ctx: typer.Context,
    data: Path | None = typer.Option(None, "--data", help="JSON Lines file; only the --input column is read"),
    input_col: str | None = typer.Option(None, "--input", help="the column the model reads"),
    labels: str | None = typer.Option(None, help="comma-separated labels, e.g. spam,'not spam'"),
    teacher: str = typer.Option(Settings.large, help="the teacher model"),
    student: str = typer.Option(Settings.small, help="the embedded base model to fine-tune"),
    rows: int = typer.Option(500, help="rows the teacher labels (taken from the end of the seeded shuffle)"),
    out: Path = typer.Option(Path("student"), "--out", help="folder for the adapter, data, checkpoints, report"),
    samples: int = typer.Option(3, help="teacher samples per row (greedy + sampled) for the agreement filter"),
    min_agreement: float = typer.Option(1.0, help="share of samples that must equal the greedy answer"),
    judge: str | None = typer.Option(None, help="a model that judges each teacher answer (reason + verdict)"),
    max_repeat: int = typer.Option(3, help="oversample rarer teacher labels up to this many repeats (1: off)"),
    epochs: float = typer.Option(2.0),
    lr: float = typer.Option(1e-3),
    rank: int = typer.Option(8),
    batch_size: int = typer.Option(8),
    max_steps: int | None = typer.Option(None, help="budget: optimizer steps"),
    max_seconds: float | None = typer.Option(None, help="budget: training seconds (wall clock)"),
    merge: bool = typer.Option(
        True, help="serve the adapter merged into the base (checked first; as fast as the base)"
    ),
    threads: int | None = typer.Option(None, help="torch threads (default: torch's)"),
    seed: int = typer.Option(0, help="the shuffle seed (the same as compare's --seed)"),
) -> None:
    """Distill a student: the teacher labels rows, a filter keeps the sure ones, a LoRA adapter is trained
    on CPU and written as GGUF for llama.cpp. Re-run the same command to resume a killed training.
    ``compound distill email-writer`` distils the Write page's email writer instead."""
    if ctx.invoked_subcommand is not None:
        return
    if data is None or input_col is None or labels is None:
        raise ConfigurationError(
            "compound distill needs --data, --input and --labels (a classification student), "
            "or a recipe: compound distill email-writer"
        )
    from compound.optimize.distill.filter import Filter
    from compound.optimize.distill.pipeline import Distill
    from compound.optimize.distill.train import TrainConfig
    from compound.optimize.labels import classifier
    from compound.program.rows import render_row

    console = err
    names = [x.strip() for x in labels.split(",") if x.strip()]
    if len(names) < 2:
        raise ConfigurationError("--labels needs at least two comma-separated labels")
    texts = read_inputs(data, input_col)
    if rows > len(texts):
        raise ConfigurationError(f"--rows {rows} is more than the {len(texts)} rows in {data}")
    chosen = unseen_order(len(texts), seed)[len(texts) - rows :]
    trainset = [{"row": render_row({input_col: texts[i]}, [input_col])} for i in chosen]
    cfg = TrainConfig(
        rank=rank,
        alpha=2.0 * rank,
        lr=lr,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        max_steps=max_steps,
        max_seconds=max_seconds,
        threads=threads,
    )
    job = Distill(
        teacher,
        student=student,
        out=out,
        samples=samples,
        filter=Filter(min_agreement, judge),
        max_repeat=max_repeat,
        train=cfg,
        merge=merge,
    )
    console.print(f"teacher {teacher} labels {rows} rows ({samples} sample(s) each); student {student}")
    job.compile(classifier(names, teacher), trainset)
    record = json.loads((out / "student.json").read_text())
    train = record["train"]
    balanced = record["data"]["balance"]
    if balanced:
        console.print(f"teacher labels {balanced['before']}, oversampled to {balanced['after']}")
    console.print(
        f"kept {record['data']['kept']}/{record['data']['rows']} teacher answers; trained {train['steps']}/"
        f"{train['total_steps']} steps ({train['stopped']}), final loss {train['losses'][-1] if train['losses'] else 'n/a'}; "
        f"one-time CPU s: label {record['cost']['label_cpu_s']:.0f}, filter {record['cost']['filter_cpu_s']:.0f}, "
        f"train {record['cost']['train_cpu_s']:.0f}"
    )
    console.print(f"student: {out / 'adapter.gguf'} (sha256 {record['adapter_sha256'][:12]})")
    merged = record.get("merged")
    if merged:
        check = merged["check"]
        verdict = "served" if merged["served"] else "not served: the adapter is"
        console.print(
            f"merged into its base: {out / merged['file']} ({', '.join(merged['types'])}; answered as the adapter "
            f"on {check['same']}/{check['prompts']} check prompts), {verdict}"
        )
    console.print(f"model: {record['model']}")
    console.print(
        f"evaluate: compound compare --data {data} --input {input_col} --label LABEL --configs small,student:{out},large"
    )


@app.command("email-writer")
def email_writer_command(
    boxes: int = typer.Option(300, help="training boxes the teacher invents and drafts"),
    held_out: int = typer.Option(20, help="boxes kept apart to score the student against its teacher"),
    teacher: str = typer.Option(Settings.large, help="the model that invents boxes and drafts the emails"),
    student: str = typer.Option(Settings.small, help="the embedded base model to fine-tune"),
    judge: str | None = typer.Option(None, help="the model that filters drafts and compares them (default: teacher)"),
    epochs: float = typer.Option(3.0),
    rank: int = typer.Option(8),
    max_steps: int | None = typer.Option(None, help="budget: optimizer steps"),
    threads: int | None = typer.Option(None, help="CPU threads for the models and for training (default: all)"),
    seed: int = typer.Option(0, help="the seed of the (recipient, topic, tone) draws and of training"),
    work: Path | None = typer.Option(None, help="work folder (default: <home>/students/email-writer/work)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the forecast of calls and CPU; run nothing"),
) -> None:
    """Distil the Write page's email writer: the teacher invents short boxes and drafts them, the program's
    checks and a judge keep the good drafts, the small model learns them with LoRA and is installed merged
    where the page picks it up. Re-run the same command to resume: finished model calls come from the
    cache and training from its checkpoint."""
    from dataclasses import replace

    from compound.core.settings import configure
    from compound.serve.email_writer import EmailWriterRecipe, default_train
    from compound.serve.write_email import distilled_writer_path, report_path

    console = err
    if threads is not None:
        configure(n_threads=threads)
    cfg = replace(
        default_train(), epochs=epochs, rank=rank, alpha=2.0 * rank, max_steps=max_steps, threads=threads, seed=seed
    )
    recipe = EmailWriterRecipe(
        boxes=boxes, held_out=held_out, teacher=teacher, student=student, judge=judge, seed=seed, train=cfg, work=work
    )
    if dry_run:
        plan = recipe.forecast()
        out = typer.echo
        out(f"forecast: {plan['calls']} model calls, about {plan['cpu_s'] / 3600:.1f} CPU hours ({plan['note']})")
        for row in plan["steps"]:
            out(f"  {row['step']}: {row['calls']:.0f} calls, about {row['cpu_s'] / 60:.0f} CPU min")
        out(f"would install {distilled_writer_path()} and its report {report_path()}")
        return
    console.print(
        f"teacher {recipe.teacher_model} invents {boxes} + {held_out} boxes and drafts them; judge "
        f"{recipe.judge_model}; student {recipe.student_base}; work folder {recipe.work_dir}"
    )
    report = recipe.run()
    ev = report["evaluation"]
    t, s, pref = ev["teacher"], ev["student"], ev["judge_preference"]
    out = typer.echo
    out(
        f"kept {report['data']['kept']}/{report['data']['rows']} teacher drafts; trained "
        f"{report['train']['steps']}/{report['train']['total_steps']} steps, final loss {report['train']['final_loss']}"
    )
    out(
        f"on {ev['boxes']} held-out boxes: checks passed teacher {t['checks_passed']}/{ev['boxes']}, "
        f"student {s['checks_passed']}/{ev['boxes']}; judge preference for the student {pref['student_score']:.2f} "
        f"(0.5 = alike; wins {pref['student_wins']}, split or tie {pref['ties_or_split']}, losses {pref['teacher_wins']})"
    )
    out(
        f"CPU s per draft: teacher {t['cpu_s_per_draft']:.2f}, student {s['cpu_s_per_draft']:.2f}; "
        f"one-time CPU s: {sum(report['cost'].values()):.0f}"
    )
    if report["installed"]:
        out(f"installed {report['installed']}: the Write page drafts with it; report {report_path()}")
    else:
        out(f"not installed: the student has no merged model (see {report_path()})")
    check = (report.get("merged") or {}).get("check")
    if check:
        out(
            f"the merged model answered {check['same']}/{check['prompts']} training prompts as its adapter did (greedy)"
        )
