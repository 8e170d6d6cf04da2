"""The peers benchmark's pure parts: ratios and goals, the generated README, metering and call counting.

No model runs here: the runner's full benchmark is ``python benchmarks/peers/run.py`` (see its README)."""

import json
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks" / "peers"))

import meter  # noqa: E402
import report  # noqa: E402
from servers import CountingProxy  # noqa: E402


def cost(cpu: float, wall: float, calls: int = 1) -> dict:
    return {"cpu_s": cpu, "wall_s": wall, "calls": calls, "tokens": 10 * calls, "servers": {}}


def task(name: str = "optimize") -> dict:
    return {
        "name": name,
        "title": "T",
        "rows": 5,
        "command": "python run.py --rows 5",
        "about": "about T",
        "pairs": [[["compound", "ours"], ["dspy", "theirs"]]],
        "configs": [
            {
                "peer": "compound",
                "config": "ours",
                "accuracy": 0.9,
                "one_time_cost": cost(1, 2),
                "rows_cost": cost(3, 4),
            },
            {"peer": "dspy", "config": "theirs", "accuracy": 0.8, "one_time_cost": cost(2, 2), "rows_cost": cost(8, 6)},
        ],
    }


def test_ratios_add_one_time_and_per_row_costs():
    (row,) = report.ratios(task())
    assert row["accuracy"] == pytest.approx(0.9 / 0.8)
    assert row["cpu_s"] == pytest.approx(4 / 10)
    assert row["wall_s"] == pytest.approx(6 / 8)
    assert row["goals"] == {"quality >= peer": True, "cpu <= peer": True, "cpu <= 0.5x peer at >= quality": True}


def test_half_cpu_goal_needs_the_quality_goal_and_only_applies_to_cascade_and_optimizer_tasks():
    worse = task()
    worse["configs"][0]["accuracy"] = 0.7
    (row,) = report.ratios(worse)
    assert row["goals"]["cpu <= 0.5x peer at >= quality"] is False
    assert row["goals"]["cpu <= peer"] is True
    (row,) = report.ratios(task("classify"))
    assert "cpu <= 0.5x peer at >= quality" not in row["goals"]


def test_ratio_of_zero_costs():
    assert report.ratio(0.0, 0.0) is None
    assert report.ratio(1.0, 0.0) == float("inf")


def test_readme_is_generated_from_the_result():
    result = {"json_path": "r.json", "commands": ["python run.py --rows 5"], "intro": "Intro.", "settings": ["s1"]}
    text = report.render_readme({**result, "tasks": [task()]})
    assert "python run.py --rows 5" in text and "## T" in text and "- s1" in text
    assert "| compound | ours | 0.9 |" in text  # the configuration table, from the JSON
    assert "| ours | dspy theirs | 1.12 | 0.4 | 0.75 |" in text  # the ratios
    assert "goals missed" in text


def test_readme_counts_unparsed_answers_and_shows_each_sides_own_statistics():
    t = task()
    t["configs"][1]["predictions"] = ["a", None, "b", None, None]  # three replies DSPy could not parse
    t["configs"][1]["stats"] = {"filters_resolved_by_helper_model": 2}
    t["configs"][0]["predictions"] = ["a"] * 5
    text = report.render_readme({"json_path": "r", "commands": ["c"], "intro": "I", "settings": [], "tasks": [t]})
    assert "| dspy | theirs | 0.8 | 3 |" in text and "| compound | ours | 0.9 | 0 |" in text
    assert "- dspy theirs, its own statistics: `filters_resolved_by_helper_model` 2" in text


def test_meter_diff_totals_client_and_servers():
    before = {
        "wall_s": 1.0,
        "client_cpu_s": 2.0,
        "servers": {"s": {"cpu_s": 1.0, "calls": 1, "prompt_tokens": 5, "completion_tokens": 1}},
    }
    after = {
        "wall_s": 4.0,
        "client_cpu_s": 3.5,
        "servers": {"s": {"cpu_s": 3.0, "calls": 4, "prompt_tokens": 25, "completion_tokens": 7}},
    }
    d = meter.diff(before, after)
    assert d["wall_s"] == 3.0 and d["cpu_s"] == pytest.approx(1.5 + 2.0)
    assert (d["calls"], d["tokens"]) == (3, 26)


def test_counting_proxy_forwards_and_counts_usage():
    class Upstream(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def version_string(self):  # llama_cpp.server runs under uvicorn; clients recognise it by that
            return "uvicorn"

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            reply = json.dumps({"echo": body, "usage": {"prompt_tokens": 7, "completion_tokens": 2}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    proxy = CountingProxy(upstream.server_address[1])
    try:
        for i in range(2):
            req = urllib.request.Request(
                f"http://127.0.0.1:{proxy.port}/v1/chat/completions",
                data=json.dumps({"i": i}).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req) as resp:
                assert json.loads(resp.read())["echo"] == {"i": i}
                assert resp.headers["Server"] == "uvicorn"  # the proxy says what the server is
        stats = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{proxy.port}/_peers/stats").read())
        assert stats == {"calls": 2, "prompt_tokens": 14, "completion_tokens": 4}
    finally:
        proxy.close()
        upstream.shutdown()


def test_rows_per_task_share_one_order_and_the_trainset_is_apart():
    import argparse

    import run

    rows = [{"text": str(i), "label": "spam" if i % 3 else "not spam"} for i in range(100)]
    args = argparse.Namespace(rows=10, map_rows=30, task_rows="vote=4,cascade=50", train=20)
    sizes = run.task_sizes(args, ["classify", "vote", "cascade", "map"])
    assert sizes == {"classify": 10, "vote": 4, "cascade": 50, "map": 30}
    data = run.split(rows, sizes, 20, seed=0)
    assert data["vote"] == data["classify"][:4] == data["cascade"][:4]
    assert not {r["text"] for r in data["train"]} & {r["text"] for r in data["cascade"]}
    with pytest.raises(SystemExit):
        run.split(rows, {"cascade": 90}, 20, seed=0)
    with pytest.raises(SystemExit):
        run.task_sizes(argparse.Namespace(rows=1, map_rows=1, task_rows="nope=3", train=1), ["map"])


def test_readme_says_why_a_goal_is_missed():
    worse = task()
    worse["configs"][0]["accuracy"] = 0.6
    worse["why"] = {"quality >= peer": "Because."}
    result = {"json_path": "r.json", "commands": ["c"], "intro": "I.", "settings": [], "tasks": [worse]}
    text = report.render_readme(result)
    assert "- Missed, quality >= peer: Because. On 5 rows one row is 20 points of accuracy." in text
    assert "Missed, cpu <= peer" not in text


def test_a_merged_run_keeps_each_commands_wall_time_and_the_intro_names_them():
    import run
    import tasks

    old = {
        "commands": ["full"],
        "total_wall_s": 1800,
        "data": "rotten-tomatoes",
        "tasks": [dict(task("map"), command="full"), dict(task("classify"), command="full")],
    }
    new = {
        "commands": ["map only"],
        "run_commands": ["map only"],
        "data": "rotten-tomatoes",
        "total_wall_s": 600,
        "tasks": [dict(task("map"), command="map only")],
    }
    merged = run.merge(old, new)
    assert [t["name"] for t in merged["tasks"]] == ["classify", "map"]
    assert merged["wall_by_command"] == {"full": 1800, "map only": 600} and "run_commands" not in merged
    said = tasks.walls(merged)
    assert "`full` 30 minutes" in said and "`map only` 10 minutes" in said
