# ruff: noqa: E402
"""Each 'Why' case of issue 10 in relsafe's themes, run with only the APIs both old and new code have.
Prints one line per case: FIXED / BROKEN, with what happened."""

import asyncio
import math
import os
import subprocess
import sys
import tempfile
import threading
import warnings

warnings.simplefilter("ignore")
home = tempfile.mkdtemp()
os.environ["COMPOUND_HOME"] = home
import compound
from compound import BudgetExceededError, ScriptedBackend


def report(name, ok, detail):
    print(f"{'FIXED ' if ok else 'BROKEN'} {name}: {detail}")


class Slow(ScriptedBackend):
    async def _agenerate(self, request):
        await asyncio.sleep(0.03)
        return self._reply(request)

    def _generate(self, request):
        import time

        time.sleep(0.03)
        return self._reply(request)


# 1. a cap below the concurrency: --max-calls 3 with 8 in flight (a table job)
import pandas as pd

from compound import tables
from compound.tables.jobs import job_store, process_table

df = pd.DataFrame({"text": [f"row {i}" for i in range(8)]})
m = Slow(lambda r: '{"label": "x"}', model="why1")
done = []
for _ in range(3):
    try:
        with compound.budget(calls=3):
            process_table(tables.map(df, "label", "label it", model=m), df, job_id="why1")
    except compound.CompoundError:
        pass
    done.append(len(job_store().done("why1")))
report("cap 3 < concurrency 8, three resumes", done == [3, 6, 8], f"rows committed after each run: {done}")

# 2. calls from plain threads inside with budget(...)
m2 = Slow(["ok"], model="why2")
res = []


def call(i):
    try:
        res.append(m2.generate(f"q{i}", cache=False))
    except BudgetExceededError:
        pass


with compound.budget(calls=2) as b:
    ts = [threading.Thread(target=call, args=(i,)) for i in range(5)]
    [t.start() for t in ts]
    [t.join() for t in ts]
report(
    "plain threads counted",
    b.used.calls == 2 and len(res) == 2,
    f"budget counted {b.used.calls}, calls made {len(res)}",
)

# 3. NaN / negative limits
bad = []
for v in (math.nan, -1, math.inf):
    try:
        with compound.budget(calls=v if v != math.nan else v):
            pass
        bad.append(v)
    except ValueError:
        pass
report("NaN/negative/inf limits refused", not bad, f"accepted: {bad}")

# 4. an ask approval callback returning "no"
from compound.tools.policy import Policy

d = asyncio.run(Policy().ask("refund", lambda n, a: "no").decide("refund", {}))
report('approver answering "no" denies', d.allowed is False, f"allowed={d.allowed}")

# 5. SQL side-effect functions and executable comments on Postgres/MySQL
from compound.tools.sql import check_read_only

passed = []
for dialect, q in [
    ("postgres", "SELECT nextval('s')"),
    ("postgres", "SELECT set_config('a','b',false)"),
    ("postgres", "SELECT dblink_exec('h','DROP TABLE t')"),
    ("postgres", "SELECT lo_import('/etc/passwd')"),
    ("mysql", "SELECT 1 /*! , SLEEP(5) */"),
]:
    try:
        check_read_only(q, dialect)
        passed.append(q)
    except ValueError:
        pass
report("side-effect functions / executable comments refused", not passed, f"passed as reads: {passed}")

# 6. damaged stores give raw tracebacks (sqlite3.DatabaseError)
for name, cls_path in [
    ("cache.sqlite", "compound.store.cache:ResponseCache"),
    ("traces.sqlite", "compound.store.traces:TraceStore"),
    ("tables.sqlite", "compound.tables.jobs:JobStore"),
]:
    path = os.path.join(tempfile.mkdtemp(), name)
    open(path, "wb").write(b"garbage garbage garbage\n")
    mod, cls = cls_path.split(":")
    import importlib

    C = getattr(importlib.import_module(mod), cls)
    try:
        s = C(path)
        s.connect()
        outcome = "opened (quarantined)" if name == "cache.sqlite" else "opened?!"
        ok = name == "cache.sqlite"
    except compound.CompoundError as e:
        outcome, ok = f"CompoundError naming the file: {str(path) in str(e)}", str(path) in str(e)
    except Exception as e:
        outcome, ok = f"raw {type(e).__name__}: {e}", False
    report(f"damaged {name}", ok, outcome)

# 7. fingerprint leaves out max_tokens / temperature / requirements; strategies enter via repr
from compound.tables import map as mop


def fp(**kw):
    op = mop(df, "label", "label it", model="scripted")
    for k, v in kw.items():
        setattr(op.program, k, v)
    return op.fingerprint


base = fp()
missed = [k for k, v in {"max_tokens": 99, "sample_temperature": 0.1, "logprobs": True}.items() if fp(**{k: v}) == base]
report("fingerprint covers max_tokens, temperature, logprobs", not missed, f"left out: {missed}")
child = (
    "import pandas as pd\nfrom compound import tables\nfrom compound.strategies import SelfConsistency\n"
    "df = pd.DataFrame({'text': ['a']})\nop = tables.map(df, 'label', 'x', model='scripted')\n"
    "op.program.strategy = SelfConsistency(3, key=lambda v: str(v))\nprint(op.fingerprint)"
)
outs = {
    subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, env=os.environ).stdout.strip()
    for _ in range(2)
}
report(
    "fingerprint with a strategy stable across processes",
    len(outs) == 1,
    f"{len(outs)} distinct fingerprints in 2 processes",
)
