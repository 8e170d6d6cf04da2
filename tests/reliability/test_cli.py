"""Hostile input to the ``compound`` console script, run in a subprocess as a user runs it.

Every handled error must exit non-zero with exactly one ``error:`` line on stderr that names the problem, and
no traceback; option values are checked at the edge (counts positive, limits finite and non-negative)."""

import json

import pytest

# (arguments, the option the error must name): each must be refused as a usage error (exit 2)
BAD_OPTIONS = [
    (["compare", "--data", "d.csv", "--input", "t", "--label", "l", "--limit", "-1"], "--limit"),
    (["compare", "--data", "d.csv", "--input", "t", "--label", "l", "--limit", "0"], "--limit"),
    (["compare", "--data", "d.csv", "--input", "t", "--label", "l", "--calibration", "-5"], "--calibration"),
    (["compare", "--data", "d.csv", "--input", "t", "--label", "l", "--delta", "0"], "--delta"),
    (["compare", "--data", "d.csv", "--input", "t", "--label", "l", "--delta", "nan"], "--delta"),
    (["compare", "--data", "d.csv", "--input", "t", "--label", "l", "--target", "nan"], "--target"),
    (["compare", "--data", "d.csv", "--input", "t", "--label", "l", "--target", "1.5"], "--target"),
    (["ask", "hi", "--max-tokens", "0"], "--max-tokens"),
    (["ask", "hi", "--max-tokens", "-3"], "--max-tokens"),
    (["ask", "hi", "--temperature", "nan"], "--temperature"),
    (["ask", "hi", "--temperature", "inf"], "--temperature"),
    (["ask", "hi", "--temperature", "-1"], "--temperature"),
    (["table", "classify", "in.csv", "-c", "x", "--labels", "a,b", "--auto", "--target", "1.5"], "--target"),
    (["table", "classify", "in.csv", "-c", "x", "--labels", "a,b", "--auto", "--target", "0"], "--target"),
    (["table", "classify", "in.csv", "-c", "x", "--labels", "a,b", "--auto", "--delta", "nan"], "--delta"),
    (["table", "map", "in.csv", "--max-cost", "nan"], "--max-cost"),
    (["table", "map", "in.csv", "--max-cost", "inf"], "--max-cost"),
    (["table", "map", "in.csv", "--max-cost", "-0.5"], "--max-cost"),
    (["table", "map", "in.csv", "--max-cost", "1e999"], "--max-cost"),
    (["table", "map", "in.csv", "--max-tokens", "-1"], "--max-tokens"),
    (["table", "map", "in.csv", "--max-seconds", "NaN"], "--max-seconds"),
    (["table", "map", "in.csv", "--max-seconds", "-inf"], "--max-seconds"),
    (["table", "map", "in.csv", "--max-calls", "-3"], "--max-calls"),
    (["table", "map", "in.csv", "--max-calls", "two"], "--max-calls"),
    (["traces", "list", "--limit", "0"], "--limit"),
    (["jobs", "--limit", "-2"], "--limit"),
    (["demo", "--rows", "0"], "--rows"),
    (["scale", "--data", "d.csv", "--input", "t", "--label", "l", "--limit", "0"], "--limit"),
    (["scale", "--data", "d.csv", "--input", "t", "--label", "l", "--min-gain", "nan"], "--min-gain"),
    (["table", "map", "in.csv", "--bogus"], "--bogus"),
]


@pytest.mark.parametrize("args,option", BAD_OPTIONS, ids=[" ".join(a[:1] + a[-2:]) for a, _ in BAD_OPTIONS])
def test_bad_option_values_are_refused_at_the_edge(relio_cli, relio_clean_error, args, option):
    proc = relio_cli(*args)
    relio_clean_error(proc, option, code=2)
    assert not (relio_cli.home / "traces.sqlite").exists()  # refused before any work began


@pytest.mark.parametrize("ns", ["1,x", "0,2", "-1", ","])
def test_scale_sample_counts_are_checked(relio_cli, relio_clean_error, tmp_path, ns):
    (tmp_path / "d.csv").write_text("t,l\na,b\nc,d\n")
    proc = relio_cli("scale", "--data", "d.csv", "--input", "t", "--label", "l", "--ns", ns, "--limit", "1")
    relio_clean_error(proc, "--ns", code=1)


SCHEMAS = {
    "invalid-type": ('{"type": 5}', "JSON Schema"),
    "not-json": ("{type: object", "JSON"),
    "a-list": ("[1, 2]", "JSON object"),
    "empty-file": ("", "JSON"),
    "bad-properties": ('{"type": "object", "properties": 3}', "JSON Schema"),
}


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_bad_json_schemas_give_one_line(relio_cli, relio_clean_error, tmp_path, name):
    text, needle = SCHEMAS[name]
    (tmp_path / "s.json").write_text(text)
    proc = relio_cli("ask", "hi", "--model", "relio-fake", "--schema", "s.json")
    relio_clean_error(proc, needle, code=1)


def test_missing_schema_file(relio_cli, relio_clean_error):
    relio_clean_error(relio_cli("ask", "hi", "--model", "relio-fake", "--schema", "none.json"), "none.json", code=1)


@pytest.mark.parametrize("store", ["cache.sqlite", "traces.sqlite", "tables.sqlite"])
@pytest.mark.parametrize("junk", [b"garbage garbage garbage\n", bytes(range(256)) * 20])
def test_damaged_stores_give_one_line(relio_cli, relio_clean_error, store, junk):
    relio_cli.home.mkdir(parents=True)
    (relio_cli.home / store).write_bytes(junk)
    commands = {
        "cache.sqlite": ["ask", "hi", "--model", "relio-fake"],
        "traces.sqlite": ["traces", "list"],
        "tables.sqlite": ["jobs"],
    }
    proc = relio_cli(*commands[store])
    if store == "cache.sqlite":  # the cache holds derived data only: it moves a damaged file aside and goes on
        assert proc.returncode == 0 and "moved aside" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        return
    relio_clean_error(proc, code=1)


def test_home_that_is_a_file(relio_cli, relio_clean_error, tmp_path):
    (tmp_path / "afile").write_text("x")
    relio_clean_error(relio_cli("jobs", env={"COMPOUND_HOME": str(tmp_path / "afile")}), code=1)


@pytest.mark.parametrize(
    "args,needle",
    [
        (["traces", "show", "nosuch"], "nosuch"),
        (["table"], "OP and INPUT"),
        (["table", "map"], "OP and INPUT"),
        (["table", "frobnicate", "in.csv"], "frobnicate"),
        (["table", "map", "missing.csv", "-c", "x", "--instruction", "y"], "missing.csv"),
        (["table", "map", "in.json", "-c", "x", "--instruction", "y"], ".json"),
        (["table", "map", "in.csv", "-c", "x"], "--instruction"),
        (["table", "classify", "in.csv", "-c", "x", "--labels", "only"], "two labels"),
        (["table", "classify", "in.csv", "-c", "x", "--labels", "a,b", "--target", "0.9"], "add --auto"),
        (["table", "--resume", "nosuchjob"], "nosuchjob"),
        (["table", "map", "in.csv", "-c", "x", "--instruction", "y", "--model", "nosuch:thing"], "nosuch"),
        (["table", "map", "in.csv", "-c", "x", "--instruction", "y", "--input-columns", "zzz"], "zzz"),
        (["table", "extract", "in.csv", "--source", "text", "--fields", "a:complex"], "complex"),
        (["table", "map", ".", "-c", "x", "--instruction", "y"], "."),
        (["compare", "--data", "missing.csv", "--input", "t", "--label", "l"], "missing.csv"),
        (["compare", "--data", "bad.jsonl", "--input", "t", "--label", "l"], "JSON Lines"),
        (["compare", "--data", "in.csv", "--input", "text", "--label", "id", "--limit", "50"], "rows"),
        (["models", "install", "no-such-model"], "no-such-model"),
        (["demo", "--rows", "100000", "--model", "relio-fake"], "--rows 100000 is too many"),
        (["nosuchcommand"], "nosuchcommand"),
    ],
)
def test_handled_errors_are_one_line_without_traceback(relio_cli, relio_clean_error, tmp_path, args, needle):
    (tmp_path / "in.csv").write_text("id,text\n1,hello\n2,world\n")
    (tmp_path / "in.json").write_text("{}")
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    relio_clean_error(relio_cli(*args), needle)


def test_budget_stop_is_one_line_naming_the_resume_command(relio_cli, relio_clean_error, tmp_path):
    (tmp_path / "in.csv").write_text("id,text\n" + "".join(f"{i},row {i}\n" for i in range(12)))
    args = ["table", "map", "in.csv", "-c", "out", "--instruction", "y", "--model", "relio-fake", "--no-progress"]
    proc = relio_cli(*args, "--job", "j1", "--max-calls", "3")
    line = relio_clean_error(proc, "compound table --resume j1", code=1)
    assert "stopped after" in line
    done = relio_cli("table", "--resume", "j1", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "in.map.csv").read_text().count("R(") == 12


def test_success_exits_zero_and_prints_no_error(relio_cli, tmp_path):
    (tmp_path / "s.json").write_text(json.dumps({"type": "object", "properties": {"a": {"type": "string"}}}))
    proc = relio_cli("ask", "row: x: 1", "--model", "relio-fake", "--schema", "s.json")
    assert proc.returncode == 0 and "error" not in proc.stderr, proc.stderr
    assert json.loads(proc.stdout) == {"a": "R(1)"}


def test_auto_takes_its_guarantee_from_the_command_line(relio_cli, tmp_path):
    # the fake labels each row with its own "label" column, which the student sees too
    rows = "".join(f"{i},message number {i},{'yes' if (i * 7919) % 13 < 6 else 'no'}\n" for i in range(120))
    (tmp_path / "in.csv").write_text("id,text,label\n" + rows)
    args = ["table", "classify", "in.csv", "-c", "verdict", "--labels", "yes,no", "--input-columns", "text,label"]
    proc = relio_cli(*args, "--auto", "--target", "0.8", "--delta", "0.2", "--model", "relio-fake", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    # the fake answers at no CPU cost: no teaching can pay for itself, and the plan says so
    assert "too short to teach" in out and "target 0.800 or better, delta 0.2" in out and "bound 1.05x" in out
    answers = (tmp_path / "in.classify.csv").read_text().splitlines()[1:]
    assert all(line.split(",")[2] == line.split(",")[3] for line in answers)  # verdict == the fake's label


def test_auto_prints_its_forecast_first_and_dry_run_stops_there(relio_cli, tmp_path):
    rows = "".join(f"{i},message number {i},{'yes' if i % 3 else 'no'}\n" for i in range(40))
    (tmp_path / "in.csv").write_text("id,text,label\n" + rows)
    args = ["table", "classify", "in.csv", "-c", "verdict", "--labels", "yes,no", "--input-columns", "text,label"]
    dry = relio_cli(*args, "--auto", "--dry-run", "--model", "relio-fake", "--no-progress")
    assert dry.returncode == 0, dry.stderr
    out = " ".join(dry.stdout.split())
    assert "large model alone: 40 rows" in out and "auto expects:" in out and "never above 1.05x" in out
    assert not (tmp_path / "in.classify.csv").exists()  # nothing written, no job made
    run = relio_cli(*args, "--auto", "--model", "relio-fake", "--no-progress")
    assert run.returncode == 0, run.stderr
    out = " ".join(run.stdout.split())
    assert out.index("large model alone") < out.index("job ") and "forecast before the run:" in out
    refused = relio_cli(*args, "--dry-run", "--model", "relio-fake")
    assert refused.returncode != 0 and "--dry-run" in refused.stderr and "--auto" in refused.stderr
