"""The checks of ``compound doctor`` (the command is ``compound.cli.doctor``): what this machine and its engines can run, checked without risking the caller.

It prints (or, with ``--json``, writes as one JSON object):

- the CPU and the features that matter to llama.cpp (AMX, AVX-512, AVX2, FMA, F16C);
- each engine's version, build and system info, and whether its build carries AMX kernels;
- for each installed embedded model, one call with a prompt of at least 200 tokens, run in a **child
  process**: a native crash (such as llama.cpp #20824's SIGSEGV in ``ggml_backend_amx_mul_mat`` on AMX
  CPUs) is reported with its signal and exit status and a hint, instead of killing the doctor;
- with ``--base-url``, the server's dialect and what it supports (structured output, grammar, logprobs,
  ``n``), from ``compound.models.dialects`` where it is installed, else from a plain ``/models`` probe.

Guarantees: the doctor's own process never loads a model; its exit status is 1 when any check failed or
crashed, 0 otherwise. ``COMPOUND_DOCTOR_CRASH=1`` makes each child crash natively on purpose (a NULL
read in C, through ``faulthandler._sigsegv``) once its model is loaded: that is how the crash report is
tested on machines whose CPU does not crash.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CPU_FLAGS = ("amx_tile", "amx_int8", "amx_bf16", "avx512f", "avx512_vnni", "avx512_bf16", "avx2", "fma", "f16c")
CRASH_ENV = "COMPOUND_DOCTOR_CRASH"
# well over 200 tokens on every embedded model's tokenizer
PROBE_PROMPT = "Summarise the following log in one sentence.\n" + "\n".join(
    f"line {i}: worker {i % 4} finished batch {i} of 40 in {i % 9 + 2} seconds with status ok" for i in range(1, 21)
)
CRASH_HINT = (
    "a native crash inside the engine. On CPUs with AMX (amx_tile in /proc/cpuinfo), llama.cpp builds with AMX "
    "kernels crash in ggml_backend_amx_mul_mat (llama.cpp #20824): use the default engine, "
    "compound.configure(engine='xllamacpp') (a prebuilt AVX2 wheel without AMX kernels), or a llama-cpp-python "
    "built with CMAKE_ARGS='-DGGML_NATIVE=OFF -DGGML_AVX2=ON' (compound also loads a build with AMX kernels "
    "with use_extra_bufts=False)"
)


def cpu_report() -> dict[str, Any]:
    flags: set[str] = set()
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "flags" and not flags:
                flags = set(value.split())
            elif key.strip() == "model name":
                name = value.strip()
    except OSError:
        pass
    return {
        "model": name,
        "cores": os.cpu_count(),
        "flags": {f: f in flags for f in CPU_FLAGS},
        "amx": any(f.startswith("amx") for f in flags),
    }


def engines_report() -> dict[str, Any]:
    from compound.core.errors import ConfigurationError
    from compound.models.engines import ENGINES, engine_class

    out: dict[str, Any] = {}
    for name in ENGINES:
        try:
            out[name] = {"installed": True, **engine_class(name).info()}
        except ConfigurationError as e:
            out[name] = {"installed": False, "error": str(e)}
    return out


def _no_core_dump() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def check_model(model: str, engine: str, timeout_s: float) -> dict[str, Any]:
    """One 200+ token prompt through ``model`` in a child process; a crash becomes a report."""
    cmd = [sys.executable, "-m", "compound.doctor", model, engine]  # runs child() in __main__.py
    started = time.perf_counter()
    try:
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout_s, preexec_fn=_no_core_dump, check=False
        )
    except subprocess.TimeoutExpired:
        return {"model": model, "engine": engine, "status": "timeout", "hint": f"no answer in {timeout_s:g} s"}
    result: dict[str, Any] = {"model": model, "engine": engine, "wall_s": round(time.perf_counter() - started, 2)}
    if out.returncode < 0:
        sig = signal.Signals(-out.returncode)
        return {
            **result,
            "status": "crashed",
            "signal": sig.name,
            "exit_status": 128 + sig.value,  # as a shell reports it
            "hint": CRASH_HINT,
            "stderr_tail": out.stderr[-800:],
        }
    if out.returncode != 0:
        return {**result, "status": "failed", "exit_status": out.returncode, "stderr_tail": out.stderr[-800:]}
    return {**result, "status": "ok", **json.loads(out.stdout.strip().splitlines()[-1])}


def child(model: str, engine: str) -> None:
    """Run in the child process: load, call once, print the measures as JSON (or crash on purpose)."""
    from compound.models.llama_cpp import LlamaCppBackend

    backend = LlamaCppBackend(model, engine=engine, n_ctx=2048)
    t0 = time.perf_counter()
    backend.engine  # noqa: B018 (load now, so the load is timed apart)
    load_s = time.perf_counter() - t0
    if os.environ.get(CRASH_ENV):
        import faulthandler

        faulthandler.disable()
        faulthandler._sigsegv()  # type: ignore[attr-defined]  # a real native NULL read: the process dies
    g = backend.generate(PROBE_PROMPT, max_tokens=8, cache=False)
    print(
        json.dumps(
            {
                "load_s": round(load_s, 2),
                "prompt_tokens": g.usage.prompt_tokens,
                "completion_tokens": g.usage.completion_tokens,
                "cpu_s": round(g.usage.cpu_s, 2),
                "reply": g.text[:60],
            }
        )
    )


def server_report(base_url: str, api_key: str | None, model: str | None) -> dict[str, Any]:
    """The server's dialect and capabilities: the dialects module's probe where it exists (the seam),
    else a plain ``GET /models`` (what it serves, nothing about its dialect)."""
    try:
        from compound.models import dialects  # type: ignore[attr-defined]
    except ImportError:
        dialects = None
    if dialects is not None and hasattr(dialects, "probe"):
        from compound.core.errors import CompoundError

        try:
            return dialects.probe(base_url, api_key=api_key, model=model).to_dict()
        except CompoundError as e:
            return {"base_url": base_url, "error": str(e)}
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        r = httpx.get(base_url.rstrip("/") + "/models", headers=headers, timeout=10)
        models = [m.get("id") for m in r.json().get("data", [])] if r.is_success else []
        return {"base_url": base_url, "status": r.status_code, "models": models, "dialect": "unknown"}
    except (httpx.HTTPError, ValueError) as e:
        return {"base_url": base_url, "error": f"cannot reach {base_url}: {e}"}


def run_doctor(
    models: list[str] | None, engine: str | None, base_url: str | None, api_key: str | None, timeout_s: float
) -> dict[str, Any]:
    from compound.core.settings import get_settings
    from compound.models.embedded import installed_models

    engine = engine or get_settings().engine
    names = models or installed_models()
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "cpu": cpu_report(),
        "engines": engines_report(),
        "models": [check_model(n, engine, timeout_s) for n in names],
    }
    if base_url:
        report["server"] = server_report(base_url, api_key, (models or [None])[0])
    report["ok"] = all(m["status"] == "ok" for m in report["models"]) and "error" not in report.get("server", {})
    return report
