import asyncio

import pytest

import compound
from compound import BudgetExceededError, ScriptedBackend


def fifty_concurrent_calls(model, **limits):
    async def one(i):
        try:
            return await model.agenerate(f"question {i}", max_tokens=20)
        except BudgetExceededError:
            return None

    async def main():
        with compound.budget(**limits) as b:
            results = await asyncio.gather(*(one(i) for i in range(50)))
        return b, results

    return asyncio.run(main())


def test_token_cap_is_never_exceeded_with_50_calls_in_flight():
    model = ScriptedBackend(lambda r: "word " * 12, latency_s=0.01)  # 15 completion tokens each
    b, results = fifty_concurrent_calls(model, tokens=500)
    done = [r for r in results if r is not None]
    assert 0 < len(done) < 50  # some ran, the cap stopped the rest
    used = sum(r.usage.total_tokens for r in done)
    assert used == b.used.total_tokens <= 500
    assert b.reserved_tokens == 0 and b.reserved_calls == 0  # every reservation was settled


def test_money_cap_is_never_exceeded_with_50_calls_in_flight():
    compound.configure(prices={"scripted": {"input_per_mtok": 1000.0, "output_per_mtok": 2000.0}})
    model = ScriptedBackend(lambda r: "word " * 12, latency_s=0.01)
    b, results = fifty_concurrent_calls(model, cost_usd=0.5)
    done = [r for r in results if r is not None]
    assert 0 < len(done) < 50
    spent = sum(r.usage.cost_usd for r in done)
    assert spent == pytest.approx(b.used.cost_usd)
    assert spent <= 0.5
    assert all(r.usage.cost_usd > 0 for r in done)


def test_budget_error_carries_results_and_names_the_resource():
    model = ScriptedBackend(["ok"])
    with compound.budget(calls=3) as b:
        for i in range(3):
            model.generate(f"q{i}")
        with pytest.raises(BudgetExceededError) as info:
            model.generate("one too many")
    assert info.value.resource == "calls"
    assert [g.text for g in info.value.results] == ["ok", "ok", "ok"]
    assert len(model.requests) == 3  # the refused call never reached the backend
    assert b.used.calls == 3


def test_nested_budgets_all_apply():
    model = ScriptedBackend(["ok"])
    with compound.budget(calls=10):
        with compound.budget(calls=1):
            model.generate("a")
            with pytest.raises(BudgetExceededError):
                model.generate("b")


def test_wall_time_cap_stops_before_the_next_call():
    model = ScriptedBackend(["ok"], latency_s=1.1)
    with compound.budget(wall_s=1.0):
        model.generate("first")  # starts inside the limit, ends past it
        with pytest.raises(BudgetExceededError, match="wall_s"):
            model.generate("second")


def test_cached_calls_cost_nothing_against_a_budget():
    model = ScriptedBackend(["ok"])
    model.generate("same")
    with compound.budget(calls=1) as b:
        for _ in range(5):
            assert model.generate("same").cached
    assert b.used.calls == 0
