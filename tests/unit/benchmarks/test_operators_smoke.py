"""``benchmarks/operators.py --smoke``: the operators benchmark end to end on its scripted oracle (CI size)."""


def test_operators_benchmark_smoke_writes_every_task_with_its_reference(benchmark_smoke):
    rows = {r["task"]: r for r in benchmark_smoke("operators.py")["rows"]}
    join, cascade = rows["join"], rows["join + cascade"]
    # the oracle is always right: what the join misses is what blocking dropped, and it says so
    assert join["precision"] == 1.0 and join["recall"] == join["blocking_recall"]
    assert join["reached_model"] == join["candidates"] < join["pairs"]
    assert cascade["reached_model"] <= cascade["candidates"]
    top = rows["top_k (k=5)"]
    assert top["ndcg"] == 1.0 and top["comparisons"] <= top["bound"] < top["all_pairs"]
    world = rows["aggregate world_1"]
    assert world["rows"] == 120 and world["folded"] == 120 and world["dropped"] == 0
    assert world["group_tokens_estimate"] > world["context_tokens"]  # the group is larger than the context
    assert rows["dedup"]["precision"] == 1.0 and rows["dedup"]["candidates"] < rows["dedup"]["all_pairs"]
