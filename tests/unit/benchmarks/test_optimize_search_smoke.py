"""``benchmarks/optimize_search.py --smoke``: the optimize search benchmark end to end on scripted models."""


def test_optimize_search_benchmark_smoke_compares_the_forecast_with_what_was_spent(benchmark_smoke):
    result = benchmark_smoke("optimize_search.py")
    measures = {r["measure"]: r for r in result["rows"]}
    # every forecast call is one the search made (the cache is off), and the priced cost follows the tokens
    assert measures["calls"]["forecast"] == measures["calls"]["spent"] > 0
    assert abs(measures["cost_usd"]["spent / forecast"] - 1) <= 0.25
    assert result["met"] and result["chosen"] == "medium"
    assert result["chosen usd_per_row"] < result["large usd_per_row"]
    assert any(c["pareto"] for c in result["configs"]) and len(result["configs"]) == result["configurations"]
