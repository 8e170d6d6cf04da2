"""The fake model of the reliability tests, ``relio-fake``: registered in the test process by conftest.py and
in the ``compound`` subprocesses by sitecustomize.py (this folder is on their PYTHONPATH).

``relio-fake`` answers every typed call from the row it is shown, after a realistic latency
(``RELIO_FAKE_LATENCY_S``, default 0.03 s): a text field gets ``R(<first value of the row>)``, or the row's
``reply`` column verbatim when it has one (as the whole reply where no schema was sent: a plain-text
output); a label gets the row's ``label`` column when it is one of the
choices, else the first choice; a number gets the length of the row; a boolean is true when the row's
``keep`` column says ``yes``. ``RELIO_FAKE_LOG`` names a file that gets one line per call.

``RELIO_FAKE_HOLD`` names a gate file: while it exists, every call first creates ``<gate>.entered`` (the
process is inside a call, so it holds whatever the caller took before calling, such as a job's lock) and
then waits until the gate is removed. A test uses it to hold a process mid-job for as long as it needs,
instead of guessing how long a job takes under the machine's load.
"""

import json
import os
import time

import compound


def _row(request):
    text = request.messages[-1].content
    text = text[len("row: ") :] if text.startswith("row: ") else text
    values = {}
    for line in text.split("\n"):
        name, sep, value = line.partition(": ")
        if sep and name not in values:
            values[name] = value
    return text, values


def _value(spec, text, values):
    if "anyOf" in spec:
        spec = next(s for s in spec["anyOf"] if s.get("type") != "null")
    if "const" in spec:
        return spec["const"]
    if "enum" in spec:
        return values.get("label") if values.get("label") in spec["enum"] else spec["enum"][0]
    kind = spec.get("type")
    if kind == "boolean":
        return values.get("keep") == "yes"
    if kind in ("number", "integer"):
        return len(text)
    if "reply" in values:
        return values["reply"]
    first = next(iter(values.values()), text)
    return f"R({first})"


def _hold():
    gate = os.environ.get("RELIO_FAKE_HOLD")
    if not gate or not os.path.exists(gate):
        return
    with open(gate + ".entered", "a"):
        pass
    while os.path.exists(gate):
        time.sleep(0.05)


def _answer(request):
    _hold()
    text, values = _row(request)
    log = os.environ.get("RELIO_FAKE_LOG")
    if log:
        with open(log, "a") as f:
            f.write(json.dumps(text) + "\n")
    if request.json_schema is None:  # a plain-text output (a str column): the value is the reply
        return _value({"type": "string"}, text, values)
    props = request.json_schema.get("properties", {})
    return json.dumps({name: _value(spec, text, values) for name, spec in props.items()})


def register(latency_s: float | None = None) -> None:
    if latency_s is None:
        latency_s = float(os.environ.get("RELIO_FAKE_LATENCY_S", "0.03"))
    compound.register_model("relio-fake", compound.ScriptedBackend(_answer, model="relio-fake", latency_s=latency_s))
