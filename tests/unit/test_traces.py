import json

from typer.testing import CliRunner

import compound
from compound import ScriptedBackend
from compound.cli import app
from compound.store.traces import trace_store


def test_calls_are_traced_under_their_run_and_step():
    model = ScriptedBackend(["a", "b"])
    with compound.start_run("job") as run:
        model.generate("one")
        with compound.span("step", "classify") as step:
            model.generate("two")
    spans = trace_store().run_spans(run.id)
    by_kind = {}
    for s in spans:
        by_kind.setdefault(s["kind"], []).append(s)
    assert len(by_kind["llm"]) == 2 and len(by_kind["step"]) == 1
    first, second = sorted(by_kind["llm"], key=lambda s: s["started"])
    assert first["parent_id"] == run.id and second["parent_id"] == step.id
    assert second["attrs"]["messages"] == [{"role": "user", "content": "two"}]
    assert second["attrs"]["reply"] == "b"
    assert second["attrs"]["usage"]["total_tokens"] > 0
    run_row = trace_store().get(run.id)
    assert run_row["attrs"]["usage"]["physical"]["calls"] == 2


def test_failed_calls_are_traced_as_errors():
    def boom(request):
        raise RuntimeError("server on fire")

    model = ScriptedBackend(boom)
    with compound.start_run("job") as run:
        try:
            model.generate("x")
        except RuntimeError:
            pass
    llm = [s for s in trace_store().run_spans(run.id) if s["kind"] == "llm"]
    assert llm[0]["status"] == "error" and "server on fire" in llm[0]["attrs"]["error"]


def test_tracing_can_be_turned_off():
    with compound.context(trace=False):
        ScriptedBackend(["a"]).generate("q")
    assert list(trace_store().all()) == []


def test_traces_cli_list_show_export(tmp_path):
    model = ScriptedBackend(["the reply"])
    with compound.start_run("cli-job") as run:
        g = model.generate("q")
    runner = CliRunner()
    listed = runner.invoke(app, ["traces", "list"])
    assert listed.exit_code == 0, listed.output
    assert run.id in listed.output
    shown = runner.invoke(app, ["traces", "show", run.id])
    assert shown.exit_code == 0 and g.call_id in shown.output and "cli-job" in shown.output
    call = runner.invoke(app, ["traces", "show", g.call_id])
    assert "the reply" in call.output
    out = tmp_path / "t.jsonl"
    exported = runner.invoke(app, ["traces", "export", "--out", str(out)])
    assert exported.exit_code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["id"] for r in rows} == {run.id, g.call_id}
    missing = runner.invoke(app, ["traces", "show", "nope"])
    assert missing.exit_code == 1 and "compound traces list" in missing.output


def test_span_ids_do_not_follow_the_programs_random_seed():
    import random

    from compound.store.traces import new_id

    random.seed(7)
    first = new_id()
    random.seed(7)
    assert new_id() != first and len(first) == 16 and int(first, 16) >= 0
