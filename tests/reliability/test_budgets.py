"""Hostile budgets: caps below the concurrency, calls from plain threads, and nonsense limits.

The fakes sleep 20-50 ms per call and the default concurrency (8) is used, because the stall a cap below
the concurrency used to cause only shows with calls in flight."""

import asyncio
import math
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest

import compound
from compound import BudgetExceededError, ScriptedBackend, tables
from compound.core.errors import InputError
from compound.tables.jobs import JobStopped, job_store, process_table


class _Slow(ScriptedBackend):
    """A fake with realistic latency: 20-50 ms a call, async and sync."""

    def __init__(self, reply="ok", **kw):
        super().__init__(lambda r: reply, **kw)
        self._rng = random.Random(0)

    async def _agenerate(self, request):
        await asyncio.sleep(self._rng.uniform(0.02, 0.05))
        return self._reply(request)

    def _generate(self, request):
        import time

        time.sleep(self._rng.uniform(0.02, 0.05))
        return self._reply(request)


def _in_flight(model, n, max_tokens=8, **limits):
    """n concurrent calls under one budget; returns (budget, [generation or BudgetExceededError])."""

    async def one(i):
        try:
            return await model.agenerate(f"question {i}", max_tokens=max_tokens, cache=False)
        except BudgetExceededError as e:
            return e

    async def main():
        with compound.budget(**limits) as b:
            out = await asyncio.gather(*(one(i) for i in range(n)))
        return b, out

    return asyncio.run(main())


@pytest.mark.parametrize("cap", [1, 2, 3, 5, 7])
def test_call_cap_below_concurrency_makes_exactly_cap_calls_and_keeps_them(cap):
    assert compound.get_settings().max_concurrency == 8
    model = _Slow(model=f"slow-{cap}")
    b, out = _in_flight(model, 8, calls=cap)
    done = [g for g in out if not isinstance(g, BudgetExceededError)]
    errors = [e for e in out if isinstance(e, BudgetExceededError)]
    assert len(model.requests) == cap == len(done) == b.used.calls
    assert len(errors) == 8 - cap
    assert all(e.resource == "calls" and len(e.results) == cap for e in errors)  # completed calls are on the error
    assert sorted(g.call_id for g in b.results) == sorted(g.call_id for g in done)
    assert b.reserved_calls == 0 and b.reserved_tokens == 0


@pytest.mark.parametrize("slots", [1, 2, 3])
def test_token_cap_below_concurrency_waits_for_reservations_and_goes_on(slots):
    """Each call reserves its worst case (prompt + max_tokens) but uses little: once the first ones settle,
    the unused reservation comes back and more calls run, instead of 8 - slots failing at once."""
    model = _Slow(model=f"tok-{slots}")
    worst = model.count_prompt_tokens(compound.Request([compound.Message("user", "question 0")])) + 40
    b, out = _in_flight(model, 8, max_tokens=40, tokens=worst * slots + worst // 2)
    done = [g for g in out if not isinstance(g, BudgetExceededError)]
    assert len(done) > slots  # more than fit at once: waiting let them through
    assert b.used.total_tokens <= b.limits["tokens"]


def test_a_job_with_cap_below_concurrency_commits_its_rows_and_resumes_forward():
    df = pd.DataFrame({"text": [f"row {i}" for i in range(8)]})
    model = _Slow('{"label": "x"}', model="job-slow")
    done_after = []
    for _ in range(3):
        op = tables.map(df, "label", "label it", model=model)
        try:
            with compound.budget(calls=3):
                process_table(op, df, job_id="capped")
        except JobStopped:
            pass
        done_after.append(len(job_store().done("capped")))
    assert done_after == [3, 6, 8]  # every stop keeps its paid rows; resume makes progress
    assert len(model.requests) == 8


def _thread_calls(how, model, n):
    results, errors = [], []

    def call(i):
        try:
            results.append(model.generate(f"thread question {i}", max_tokens=40, cache=False))
        except BudgetExceededError as e:
            errors.append(e)

    if how == "thread":
        threads = [threading.Thread(target=call, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    elif how == "pool":
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(call, range(n)))
    else:  # run_in_executor does not carry the context either

        async def main():
            loop = asyncio.get_running_loop()
            await asyncio.gather(*(loop.run_in_executor(None, call, i) for i in range(n)))

        asyncio.run(main())
    return results, errors


@pytest.mark.parametrize("how", ["thread", "pool", "executor"])
def test_calls_from_plain_threads_inside_the_block_are_counted(how):
    model = _Slow(model=f"threads-{how}")
    with compound.budget(calls=3) as b:
        results, errors = _thread_calls(how, model, 8)
    assert len(model.requests) == 3 == len(results) == b.used.calls
    assert len(errors) == 5


def test_a_budget_opened_inside_a_plain_thread_nests_in_the_outer_one():
    model = _Slow(model="nested-thread")
    outcome = {}

    def worker():
        with compound.budget(calls=100) as inner:
            try:
                for i in range(5):
                    model.generate(f"n{i}", max_tokens=8, cache=False)
            except BudgetExceededError as e:
                outcome["error"] = e.resource
        outcome["inner"] = inner.used.calls

    with compound.budget(calls=2) as outer:
        t = threading.Thread(target=worker)
        t.start()
        t.join()
    assert outcome == {"error": "calls", "inner": 2} and outer.used.calls == 2


def test_threads_false_limits_the_budget_to_its_context():
    model = _Slow(model="ctx-only")
    with compound.budget(calls=1, threads=False) as b:
        results, errors = _thread_calls("thread", model, 3)
    assert len(results) == 3 and not errors and b.used.calls == 0


def test_sync_calls_from_threads_wait_under_a_token_cap():
    model = _Slow(model="sync-wait")
    worst = model.count_prompt_tokens(compound.Request([compound.Message("user", "thread question 0")])) + 40
    with compound.budget(tokens=worst * 2) as b:
        results, errors = _thread_calls("pool", model, 8)
    assert len(results) > 2 and b.used.total_tokens <= worst * 2


def test_a_waiting_call_still_honours_the_wall_clock():
    class Stuck(_Slow):
        async def _agenerate(self, request):
            await asyncio.sleep(0.6)
            return self._reply(request)

    model = Stuck(model="stuck")
    b, out = _in_flight(model, 3, calls=1, wall_s=0.3)
    errors = [e for e in out if isinstance(e, BudgetExceededError)]
    assert len(model.requests) == 1 and {e.resource for e in errors} == {"wall_s"}


def test_a_sync_call_inside_an_event_loop_fails_instead_of_deadlocking():
    model = _Slow(model="loop-sync")

    async def main():
        with compound.budget(calls=1):
            task = asyncio.ensure_future(model.agenerate("first", max_tokens=8, cache=False))
            await asyncio.sleep(0.005)  # the first call holds the only reservation
            with pytest.raises(BudgetExceededError):
                model.generate("second", max_tokens=8, cache=False)
            return await task

    assert asyncio.run(asyncio.wait_for(main(), 5)).text == "ok"


_RESOURCES = ["tokens", "cost_usd", "wall_s", "energy_j", "calls"]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -1, -0.5])
@pytest.mark.parametrize("resource", _RESOURCES)
def test_nan_infinite_and_negative_limits_are_refused(resource, value):
    with pytest.raises(InputError, match=resource):
        with compound.budget(**{resource: value}):
            pass


@pytest.mark.parametrize("value", ["3", True, 1.5, [1], object()])
@pytest.mark.parametrize("resource", ["tokens", "calls"])
def test_counts_must_be_whole_numbers(resource, value):
    with pytest.raises(InputError, match=resource):
        compound.Budget(**{resource: value})


@pytest.mark.parametrize("resource", ["cost_usd", "wall_s", "energy_j"])
def test_amounts_must_be_numbers(resource):
    with pytest.raises(InputError, match=resource):
        compound.Budget(**{resource: "1.0"})


def test_a_refused_limit_is_also_a_value_error_and_a_compound_error():
    with pytest.raises(ValueError):
        compound.Budget(calls=-1)
    with pytest.raises(compound.CompoundError):
        compound.Budget(tokens=math.nan)


def test_a_zero_limit_is_a_real_limit():
    model = _Slow(model="zero")
    with compound.budget(calls=0), pytest.raises(BudgetExceededError):
        model.generate("nothing may run", cache=False)
    assert model.requests == []
