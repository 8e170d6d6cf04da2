"""A budget kept in a ledger holds across "processes" (threads with event loops of their own that reach
the ledger only through its tuple answers), as a local budget holds across tasks."""

import asyncio
import threading

import pytest

import compound
from compound import BudgetExceededError, ScriptedBackend
from compound.core.budget import using
from compound.core.ledger import BudgetLedger, LedgerBudget, add_used, snapshot


def client(ledger: BudgetLedger, owner: str) -> LedgerBudget:
    lock = threading.Lock()  # a Ray actor answers one call at a time

    def ask(method, *args):
        with lock:
            return getattr(ledger, method)(*args)

    async def aask(method, *args):
        await asyncio.sleep(0.001)  # a round trip
        return ask(method, *args)

    return LedgerBudget(ask, aask, ask, owner)


def worker(ledger, owner, rows, model, out):
    async def main():
        async def one(i):
            try:
                await model.agenerate(f"{owner} row {i}", max_tokens=20)
                return "ok"
            except BudgetExceededError as e:
                return e.resource

        with using(client(ledger, owner)):
            return await asyncio.gather(*(one(i) for i in range(rows)))

    out[owner] = asyncio.run(main())


def run_workers(ledger, n_workers=4, rows=100, latency_s=0.005):
    model = ScriptedBackend(lambda r: "word " * 12, latency_s=latency_s)
    out: dict[str, list] = {}
    threads = [threading.Thread(target=worker, args=(ledger, f"w{i}", rows, model, out)) for i in range(n_workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return model, out


def test_a_call_cap_holds_exactly_across_workers():
    with compound.budget(calls=100) as b:
        ledger = BudgetLedger([snapshot(b)])
    model, out = run_workers(ledger, n_workers=4, rows=100)
    answers = [a for rows in out.values() for a in rows]
    assert len(model.requests) == answers.count("ok") == 100  # exactly the cap, from 400 rows in 4 workers
    assert answers.count("calls") == 300
    assert ledger.used()[0]["calls"] == 100
    assert ledger.open == {}  # every reservation was settled


def test_a_token_cap_is_never_exceeded_and_used_is_what_the_calls_used():
    with compound.budget(tokens=2_000) as b:
        ledger = BudgetLedger([snapshot(b)])
    model, out = run_workers(ledger, n_workers=3, rows=40)
    ok = sum(rows.count("ok") for rows in out.values())
    used = ledger.used()[0]
    assert 0 < ok < 120 and used["calls"] == ok == len(model.requests)
    assert used["total_tokens"] <= 2_000
    assert ledger.budgets[0].reserved_tokens == 0


def test_what_the_ledger_kept_is_added_to_the_driver_budget():
    with compound.budget(calls=10) as b:
        ScriptedBackend(["x"]).generate("before the job")  # the driver spent one call itself
        seed = snapshot(b)
    ledger = BudgetLedger([seed])
    run_workers(ledger, n_workers=2, rows=10)  # (outside the block: its threads=True would count them too)
    add_used(b, seed["used"], ledger.used()[0])
    assert b.used.calls == 10  # 1 here + 9 in the workers: the cap counted the driver's call too


def test_a_lost_worker_reservations_are_charged_at_their_worst_case():
    with compound.budget(calls=5, tokens=1_000) as b:
        ledger = BudgetLedger([snapshot(b)])
    assert ledger.try_reserve(100, 0.0, True, "lost")[0] == "ok"
    assert ledger.try_reserve(100, 0.0, True, "lost")[0] == "ok"
    kept = ledger.try_reserve(50, 0.0, True, "alive")
    assert ledger.release("lost") == 2
    ledger.settle([kept[1]], {"calls": 1, "prompt_tokens": 10, "completion_tokens": 5})
    used = ledger.used()[0]
    assert used["calls"] == 3 and used["total_tokens"] == 215
    assert ledger.budgets[0].reserved_calls == 0


def test_a_call_that_cannot_fit_is_refused_there_with_the_budget_error():
    with compound.budget(tokens=10) as b:
        ledger = BudgetLedger([snapshot(b)])
    with using(client(ledger, "w")), pytest.raises(BudgetExceededError, match="tokens"):
        ScriptedBackend(["x"]).generate("a prompt that needs more than ten tokens", max_tokens=20)
    assert ledger.used()[0]["calls"] == 0


def test_a_call_waits_for_reservations_in_flight_then_fits():
    with compound.budget(calls=1) as b:
        ledger = BudgetLedger([snapshot(b)])
    first = ledger.try_reserve(10, 0.0, True, "w")
    assert ledger.try_reserve(10, 0.0, True, "w") == ("wait",)  # the first may yet use nothing
    assert ledger.try_reserve(10, 0.0, False, "w")[0] == "over"  # one that cannot wait is refused
    ledger.settle([first[1]], None)  # the first call failed and used nothing
    assert ledger.try_reserve(10, 0.0, True, "w")[0] == "ok"


def test_workers_share_the_driver_limits_on_a_server():
    pytest.importorskip("ray", reason="needs ray: pip install 'compound[ray]'")
    from compound.tables.ray_runner import RayOptions, _worker_settings

    with compound.testing.configured(max_concurrency=8, requests_per_minute=600, openai_base_url="http://h:8000/v1"):
        shared = _worker_settings(RayOptions(workers=4))
    assert shared["max_concurrency"] == 2 and shared["requests_per_minute"] == 150  # 4 workers: the job's limits
    assert shared["tokens_per_minute"] is None and shared["openai_base_url"] == "http://h:8000/v1"
    assert "home" not in shared and shared["n_threads"] == 1  # each node its own home; a thread per CPU
