"""The web UI at ``/ui``: server-rendered Jinja2 pages, a little plain JS, no build step.

Pages:
- Runs: the latest runs with filters (name, status), and each run's trace tree (every step, candidate,
  validation, tool and model call, with messages, replies, usage and the cascade stage that answered).
- Jobs: table jobs with progress, cost so far and the command that resumes a stopped one.
- Reports: ``compound compare`` / ``compound scale`` JSON results found in the report folders, each with
  its table, Pareto front and plot (the PNG written beside the JSON, or drawn on demand).
- Write: the short box. A few words in, the ``write_email`` program's draft out, with every candidate,
  the checks each passed or failed and why, the chosen one and the cost. The draft shows as the model
  writes it: the page's script posts to ``/ui/write/stream`` and reads its Server-Sent Events (``partial``:
  the draft so far, parsed leniently; ``done``: the result rendered; ``error``); without script the form
  posts and the whole page comes back when the draft is done.

The pages read the same SQLite stores as the CLI; the Write box runs through the server's runtime, so
its calls are traced, gated and counted like any API request.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from compound.program.predict import Predict
from compound.program.streaming import Partial
from compound.serve.keys import ApiKey
from compound.serve.programs import RequestError, Served
from compound.serve.runtime import NO_BUFFERING, run_program

TEMPLATES = Path(__file__).parent / "templates"
UI_KEY = ApiKey("ui", "", "", {})


class WriteBox(BaseModel):
    box: str


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


def span_tree(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Nest a run's spans under their parents (the run at the root), in start order."""
    by_id = {s["id"]: {**s, "children": []} for s in spans}
    roots = []
    for s in by_id.values():
        parent = by_id.get(s["parent_id"]) if s["parent_id"] else None
        (parent["children"] if parent else roots).append(s)
    return roots


def usage_of(attrs: dict[str, Any]) -> dict[str, Any]:
    """One usage dict for a span: a model call's own, or a tracker's physical plus cached."""
    u = attrs.get("usage") or {}
    if "physical" in u:
        p, c = u["physical"], u["cached"]
        return {k: p.get(k, 0) + c.get(k, 0) for k in p if isinstance(p.get(k), (int, float))}
    return u


def find_reports(folders: list[str]) -> dict[str, Path]:
    """Every compare/scale result (JSON with ``rows``) in the folders, by file stem."""
    out: dict[str, Path] = {}
    for folder in folders:
        for path in sorted(Path(folder).glob("*.json")):
            try:
                doc = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if isinstance(doc, dict) and isinstance(doc.get("rows"), list) and doc["rows"]:
                out[path.stem] = path
    return out


def report_view(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text())
    rows = doc["rows"]
    kind = "scale" if "recommended_n" in doc else "compare"
    label = "n" if kind == "scale" else "config"
    cost = doc["cost"] if doc.get("cost") in rows[0] else "cpu_s"  # compare states the cost it ranks by
    return {"name": path.stem, "kind": kind, "rows": rows, "columns": list(rows[0]), "label": label, "doc": doc,
            "cost": cost}  # fmt: skip


def mount_ui(app: FastAPI, reports: list[str]) -> None:
    templates = Jinja2Templates(directory=str(TEMPLATES))
    templates.env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, default=str)
    templates.env.globals["usage_of"] = usage_of

    def page(request: Request, template: str, **ctx: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, template, ctx)

    @app.get("/ui", include_in_schema=False)
    async def ui_home() -> RedirectResponse:
        return RedirectResponse("/ui/runs")

    @app.get("/ui/runs", include_in_schema=False)
    async def ui_runs(request: Request, name: str = "", status: str = "", limit: int = 50) -> HTMLResponse:
        from compound.store.traces import trace_store

        limit = max(1, min(limit, 500))
        runs = [
            r
            for r in trace_store().list(limit=limit * 4, kind="run")
            if name.lower() in r["name"].lower() and (not status or r["status"] == status)
        ][:limit]
        return page(request, "runs.html", runs=runs, name=name, status=status, limit=limit)

    @app.get("/ui/runs/{run_id}", include_in_schema=False)
    async def ui_run(request: Request, run_id: str) -> HTMLResponse:
        from compound.store.traces import trace_store

        spans = trace_store().run_spans(run_id)
        if not spans:
            raise RequestError(404, f"no run {run_id!r} in the trace store", "run_not_found")
        return page(request, "run.html", run=spans[0], tree=span_tree(spans))

    @app.get("/ui/jobs", include_in_schema=False)
    async def ui_jobs(request: Request) -> HTMLResponse:
        from compound.tables.jobs import job_store

        store = job_store()
        jobs = store.list(100)
        for j in jobs:
            used = store.usages(j["id"])
            j["cost_usd"] = sum(u.get("cost_usd", 0.0) for u in used)
            j["energy_j"] = sum(u.get("energy_j", 0.0) for u in used)
            j["tokens"] = sum(u.get("prompt_tokens", 0) + u.get("completion_tokens", 0) for u in used)
        return page(request, "jobs.html", jobs=jobs)

    @app.get("/ui/reports", include_in_schema=False)
    async def ui_reports(request: Request) -> HTMLResponse:
        found = [report_view(p) for p in find_reports(reports).values()]
        return page(request, "reports.html", reports=found, folders=reports)

    @app.get("/ui/reports/{name}", include_in_schema=False)
    async def ui_report(request: Request, name: str) -> HTMLResponse:
        path = find_reports(reports).get(name)
        if path is None:
            raise RequestError(404, f"no report {name!r} in {reports}", "report_not_found")
        return page(request, "report.html", report=report_view(path))

    @app.get("/ui/reports/{name}/plot.png", include_in_schema=False)
    async def ui_report_plot(name: str) -> Response:
        path = find_reports(reports).get(name)
        if path is None:
            raise RequestError(404, f"no report {name!r}", "report_not_found")
        png = path.with_suffix(".png")
        if not png.exists():
            from compound.evaluate.report import plot_quality_vs_cost

            view = report_view(path)
            title = f"{view['kind']}: accuracy against CPU seconds"
            plot_quality_vs_cost(
                view["rows"], "accuracy", view["cost"], view["label"], png, title, view["kind"] == "scale"
            )
        return FileResponse(png, media_type="image/png")

    def write_program() -> Served:
        served = app.state.programs.get("write_email")
        if served is None:
            from compound.serve.programs import served_program
            from compound.serve.write_email import WriteEmail

            served = app.state.programs["write_email"] = served_program("write_email", WriteEmail())
        return served

    def writer(served: Served) -> str:
        program = served.program
        if not isinstance(program, Predict):
            return "its program's model"
        from compound.serve.write_email import writer_label

        return writer_label(program)

    @app.get("/ui/write", include_in_schema=False)
    async def ui_write(request: Request) -> HTMLResponse:
        return page(request, "write.html", box="", result=None, error=None, writer=writer(write_program()))

    @app.post("/ui/write", include_in_schema=False)
    async def ui_write_post(request: Request, box: str = Form("")) -> HTMLResponse:
        served = write_program()
        try:
            inputs = served.check_inputs({"box": box})
            outcome = await app.state.runtime.execute(UI_KEY, "write_email", lambda: run_program(served, inputs))
        except RequestError as e:
            return page(request, "write.html", box=box, result=None, error=str(e), writer=writer(served))
        result = outcome.value
        return page(
            request,
            "write.html",
            box=box,
            result=result.to_dict(),
            info=outcome.info,
            error=None,
            writer=writer(served),
        )

    @app.post("/ui/write/stream", include_in_schema=False)
    async def ui_write_stream(body: WriteBox) -> StreamingResponse:
        served = write_program()
        inputs = served.check_inputs({"box": body.box})
        events = await app.state.runtime.stream(UI_KEY, "write_email", lambda: run_program(served, inputs))
        fragment = templates.env.get_template("write_result.html")

        async def sent() -> AsyncIterator[str]:
            try:
                async for item in events:
                    if isinstance(item, Partial):
                        value = item.value if isinstance(item.value, dict) else {}
                        yield sse("partial", {"candidate": item.candidate, "attempt": item.attempt, "value": value})
                    else:
                        html = fragment.render(result=item.value.to_dict(), info=item.info)
                        yield sse("done", {"html": html, "info": item.info})
            except RequestError as e:
                yield sse("error", {"message": str(e)})
            finally:
                await events.aclose()

        return StreamingResponse(sent(), media_type="text/event-stream", headers=NO_BUFFERING)
