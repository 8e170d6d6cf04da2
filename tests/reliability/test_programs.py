"""Saved programs and fingerprints: hostile program files are refused naming the file and the parameter,
a file cannot point a program at a remote backend or a model file without trust, and the fingerprint
follows every setting of every step and strategy, the same in every process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from pydantic import BaseModel

import compound
from compound import ScriptedBackend
from compound.control.requirements import Check
from compound.core.errors import ConfigurationError
from compound.core.fingerprint import fingerprint, plain
from compound.program.predict import ChainOfThought, Predict
from compound.strategies import BestOfN, RejectionSampling, Repair, SelfConsistency
from compound.tables.jobs import process_table
from compound.tables.operators import classify
from compound.tools.agent import ToolAgent
from compound.tools.base import tool

SRC = str(Path(__file__).parents[2] / "src")


class Verdict(BaseModel):
    label: str


class Other(BaseModel):
    label: int


def _is_short(value):
    return len(value.answer) < 50


def _is_long(value):
    return len(value.answer) > 5


BASE = {
    "signature": "question -> answer",
    "instructions": "Answer briefly.",
    "demos": [{"question": "2+2?", "answer": "4"}],
    "model": "scripted",
    "requirements": [Check(_is_short)],
    "strategy": Repair(2),
    "max_tokens": 64,
    "sample_temperature": 0.7,
    "logprobs": False,
    "name": "qa",
}

CHANGES = {
    "signature": "question -> reply",
    "instructions": "Answer at length.",
    "demos": [{"question": "2+2?", "answer": "four"}],
    "model": "smollm2-135m",
    "requirements": [Check(_is_long)],
    "strategy": Repair(3),
    "max_tokens": 65,
    "sample_temperature": 0.9,
    "logprobs": True,
    "output_format": "text",
    "name": "qa2",
}


def _predict(**changes):
    return Predict(**{**BASE, **changes})


def test_every_predict_constructor_argument_is_covered():
    import inspect

    args = set(inspect.signature(Predict.__init__).parameters) - {"self"}
    assert set(CHANGES) >= args - {"parse_repairs"}, args - set(CHANGES)


@pytest.mark.parametrize("arg", list(CHANGES) + ["parse_repairs"])
def test_changing_any_predict_argument_changes_the_fingerprint(arg):
    value = CHANGES.get(arg, 3)
    assert fingerprint(_predict().identity()) != fingerprint(_predict(**{arg: value}).identity())


STRATEGIES = [
    (SelfConsistency(3), SelfConsistency(5)),
    (SelfConsistency(3), SelfConsistency(3, key=lambda v: str(v).lower())),
    (RejectionSampling(4), RejectionSampling(4, parallel=True)),
    (RejectionSampling(4), RejectionSampling(2)),
    (Repair(2), Repair(3)),
    (BestOfN(3, scorer=_is_short), BestOfN(3, scorer=_is_long)),
    (BestOfN(3, scorer=_is_short), BestOfN(4, scorer=_is_short)),
    (SelfConsistency(3), Repair(3)),
]


@pytest.mark.parametrize("a,b", STRATEGIES, ids=[f"{type(a).__name__}-{i}" for i, (a, _) in enumerate(STRATEGIES)])
def test_strategy_parameters_change_the_fingerprint(a, b):
    assert fingerprint(_predict(strategy=a).identity()) != fingerprint(_predict(strategy=b).identity())


def test_two_different_lambdas_with_one_name_differ():
    t1, t2 = 0.5, 0.9
    a = _predict(requirements=[Check(lambda v: len(v.answer) > t1)])
    b = _predict(requirements=[Check(lambda v: len(v.answer) > t2)])  # same code, other closure value
    assert fingerprint(a.identity()) != fingerprint(b.identity())


def test_output_types_change_the_fingerprint():
    a = Predict(compound.program.predict.Signature.parse("question -> answer"))
    b = Predict(compound.program.predict.Signature(a.signature.inputs, Verdict))
    c = Predict(compound.program.predict.Signature(a.signature.inputs, Other))
    assert len({fingerprint(p.identity()) for p in (a, b, c)}) == 3


@pytest.mark.parametrize("arg,value", [("reasoning_tokens", 128), ("max_tokens", 100)])
def test_chain_of_thought_arguments_change_the_fingerprint(arg, value):
    base = ChainOfThought("question -> answer")
    assert fingerprint(base.identity()) != fingerprint(ChainOfThought("question -> answer", **{arg: value}).identity())


@tool
def _lookup(order_id: int) -> str:
    """Look up an order."""
    return str(order_id)


@pytest.mark.parametrize("arg,value", [("max_steps", 3), ("max_tool_calls", 1), ("instructions", "Be careful.")])
def test_tool_agent_arguments_change_the_fingerprint(arg, value):
    base = ToolAgent([_lookup], model="scripted")
    other = ToolAgent([_lookup], model="scripted", **{arg: value})
    assert fingerprint(base.identity()) != fingerprint(other.identity())


def test_no_memory_address_enters_the_identity():
    program = _predict(strategy=SelfConsistency(3, key=lambda v: str(v)), model=ScriptedBackend(["x"]))
    text = json.dumps(plain(program.identity()))
    assert " at 0x" not in text and "0x7f" not in text


_CHILD = """
import json, sys
from compound.program.predict import Predict
from compound.strategies import SelfConsistency, RejectionSampling
from compound.control.requirements import Check
from compound.core.fingerprint import fingerprint
limit = 40
p = Predict("question -> answer", instructions="Be brief.", max_tokens=77,
            strategy=SelfConsistency(5, key=lambda v: str(v).strip()),
            requirements=[Check(lambda v: len(v.answer) < limit)])
q = Predict("question -> answer", strategy=RejectionSampling(3, parallel=True), requirements=[Check(len)])
print(json.dumps([fingerprint(p.identity()), fingerprint(q.identity())]))
"""


def test_the_fingerprint_is_the_same_in_two_processes():
    env = {**os.environ, "PYTHONPATH": SRC, "PYTHONHASHSEED": "random"}
    outs = [
        json.loads(subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True).stdout)
        for _ in range(2)
    ]
    assert outs[0] == outs[1] and outs[0][0] != outs[0][1]


_JOB = """
import sys, json, pandas as pd, compound
from compound.program.predict import Predict, Signature
from compound.strategies import SelfConsistency
from compound.tables.jobs import process_table
from compound.tables.operators import classify
model = compound.ScriptedBackend(lambda r: '{"label": "spam"}', model="job-fp", latency_s=0.02)
compound.register_model("job-fp", model)
df = pd.DataFrame({"text": [f"message {i}" for i in range(6)]})
op = classify(df, "label", ["spam", "ham"], model="job-fp")
op.program.strategy = SelfConsistency(3)
run = process_table(op, df, job_id=sys.argv[1])
print(json.dumps({"computed": run.computed, "from_cache": run.from_cache, "calls": len(model.requests)}))
"""


def test_a_program_with_a_strategy_hits_the_row_cache_in_a_new_process(tmp_path):
    env = {**os.environ, "PYTHONPATH": SRC, "COMPOUND_HOME": str(tmp_path / "home")}

    def run(job):
        p = subprocess.run([sys.executable, "-c", _JOB, job], env=env, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout.strip().splitlines()[-1])

    first, second = run("a"), run("b")
    assert first["computed"] == 6 and first["calls"] > 0
    assert second == {"computed": 0, "from_cache": 6, "calls": 0}


@pytest.mark.parametrize("change", ["max_tokens", "sample_temperature", "requirements", "strategy"])
def test_a_changed_setting_is_not_served_stale_rows(change):
    model = ScriptedBackend(lambda r: '{"label": "spam"}', model=f"stale-{change}", latency_s=0.02)
    df = pd.DataFrame({"text": ["a", "b", "c"]})

    def op(**kw):
        o = classify(df, "label", ["spam", "ham"], model=model)
        for k, v in kw.items():
            setattr(o.program, k, v)
        return o

    process_table(op(strategy=Repair(2)), df)
    changed = {
        "max_tokens": {"strategy": Repair(2), "max_tokens": 99},
        "sample_temperature": {"strategy": Repair(2), "sample_temperature": 0.1},
        "requirements": {"strategy": Repair(2), "requirements": [Check(lambda v: True)]},
        "strategy": {"strategy": Repair(3)},
    }[change]
    again = process_table(op(**changed), df)
    assert again.computed == 3 and again.from_cache == 0


# --- saved program files ---------------------------------------------------------------------------------


def _saved(tmp_path, mutate):
    path = tmp_path / "program.json"
    state = _predict(model=None).state()
    mutate(state)
    path.write_text(json.dumps(state))
    return path


BAD_PARAMETERS = {
    "instructions-int": ("instructions", 5),
    "instructions-list": ("instructions", ["a"]),
    "instructions-dict": ("instructions", {"a": 1}),
    "demos-string": ("demos", "x"),
    "demos-ints": ("demos", [1, 2]),
    "demos-dict": ("demos", {"question": "q"}),
    "model-int": ("model", 5),
    "model-list": ("model", ["smollm2-135m"]),
    "model-bool": ("model", True),
}


@pytest.mark.parametrize("case", BAD_PARAMETERS)
def test_a_parameter_of_the_wrong_type_names_the_file_and_the_parameter(tmp_path, case):
    name, value = BAD_PARAMETERS[case]
    path = _saved(tmp_path, lambda s: s["parameters"].__setitem__(name, value))
    program = _predict(model=None)
    before = dict(program.named_parameters())
    with pytest.raises(ConfigurationError) as info:
        program.load_state(json.loads(path.read_text()), str(path))
    assert str(path) in str(info.value) and repr(name) in str(info.value)
    assert program.named_parameters() == before  # nothing was set


def _set(key, value):
    return lambda s: s.__setitem__(key, value)


BAD_FILES = {
    "parameters-list": _set("parameters", []),
    "parameters-string": _set("parameters", "x"),
    "version-string": _set("version", "1"),
    "version-bool": _set("version", True),
    "version-zero": _set("version", 0),
    "version-newer": _set("version", 99),
    "format-other": _set("format", "dspy"),
    "program-int": _set("program", 5),
    "program-other": _set("program", "Cascade"),
    "extra-key": _set("pickle", "gASV..."),
    "unknown-parameter": lambda s: s["parameters"].__setitem__("evil.instructions", "x"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_a_malformed_program_file_is_refused_naming_it(tmp_path, case):
    path = _saved(tmp_path, BAD_FILES[case])
    with pytest.raises(ConfigurationError, match=str(path)):
        Predict.load(path, BASE["signature"])


@pytest.mark.parametrize("text", [b"", b"[1, 2]", b'"a string"', b"{not json", b"\xff\xfe\x00garbage", b"null"])
def test_a_file_that_is_not_a_program_is_refused_naming_it(tmp_path, text):
    path = tmp_path / "program.json"
    path.write_bytes(text)
    with pytest.raises(ConfigurationError, match=str(path)):
        Predict.load(path, BASE["signature"])


UNTRUSTED = ["openai:gpt-4o-mini", "/tmp/evil.gguf", "../models/other.gguf", "llama_cpp:/x.gguf", "mykind:model"]


@pytest.mark.parametrize("model", UNTRUSTED)
def test_a_file_pointing_at_a_remote_backend_or_model_file_needs_trust(tmp_path, model):
    path = _saved(tmp_path, lambda s: s["parameters"].__setitem__("model", model))
    with pytest.raises(ConfigurationError, match="trust_remote=True"):
        Predict.load(path, BASE["signature"])
    assert Predict.load(path, BASE["signature"], trust_remote=True).model == model


@pytest.mark.parametrize("model", ["smollm2-135m", "scripted", "registered-here", None])
def test_catalogue_and_registered_models_load_without_trust(tmp_path, model):
    compound.register_model("registered-here", ScriptedBackend(["x"]))
    path = _saved(tmp_path, lambda s: s["parameters"].__setitem__("model", model))
    assert Predict.load(path, BASE["signature"]).model == model


def test_a_file_that_keeps_the_programs_own_remote_model_needs_no_trust(tmp_path):
    path = tmp_path / "p.json"
    Predict("question -> answer", model="openai:gpt-4o-mini").save(path)
    assert Predict.load(path, "question -> answer", model="openai:gpt-4o-mini").model == "openai:gpt-4o-mini"


def test_a_saved_program_round_trips(tmp_path):
    program = _predict(model=None)
    program.instructions = "Changed."
    program.save(tmp_path / "p.json")
    loaded = Predict.load(tmp_path / "p.json", BASE["signature"])
    assert loaded.named_parameters() == program.named_parameters()
