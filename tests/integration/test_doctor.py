"""``compound doctor`` through the installed console script: checks run in child processes, so a native
crash is reported (signal, exit status, hint) instead of killing the doctor."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

COMPOUND = shutil.which("compound") or str(Path(sys.prefix) / "bin" / "compound")


def doctor(*args, env=None):
    full = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([COMPOUND, "doctor", *args], capture_output=True, text=True, env=full, timeout=300)


def test_doctor_runs_a_long_prompt_through_a_model_in_a_child_process():
    out = doctor("--model", "smollm2-135m", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert set(report["cpu"]["flags"]) >= {"amx_tile", "amx_int8", "avx512f", "avx2"}
    xll = report["engines"]["xllamacpp"]
    assert xll["installed"] and xll["version"] and "AVX2" in xll["system_info"] and not xll["amx_kernels"]
    (model,) = report["models"]
    assert model["status"] == "ok" and model["engine"] == "xllamacpp" and model["prompt_tokens"] >= 200


def test_a_forced_native_crash_is_reported_with_its_signal_and_exit_status():
    out = doctor("--model", "smollm2-135m", "--json", env={"COMPOUND_DOCTOR_CRASH": "1"})
    assert out.returncode == 1, out.stderr  # the doctor survives and says the check failed
    (model,) = json.loads(out.stdout)["models"]
    assert model["status"] == "crashed" and model["signal"] == "SIGSEGV" and model["exit_status"] == 139
    assert "ggml_backend_amx_mul_mat" in model["hint"] and "xllamacpp" in model["hint"]
    text = doctor("--model", "smollm2-135m", env={"COMPOUND_DOCTOR_CRASH": "1"})
    assert text.returncode == 1 and "crashed" in text.stdout and "signal SIGSEGV, exit status 139" in text.stdout


def test_an_unreachable_server_is_reported_not_raised():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    out = doctor("--model", "smollm2-135m", "--base-url", f"http://127.0.0.1:{port}/v1", "--json")
    assert out.returncode == 1, out.stderr
    report = json.loads(out.stdout)
    assert report["models"][0]["status"] == "ok" and "cannot reach" in report["server"]["error"]


def test_doctor_reports_what_a_local_server_serves(tmp_path):
    """llama.cpp's own server, listening on loopback through xllamacpp, as ``--base-url``."""
    from compound.models.llama_cpp import resolve_model_path
    from compound.models.local_server import local_server

    model = resolve_model_path("smollm2-135m")
    with local_server("llama-server", model, log=tmp_path / "server.log", threads=1) as url:
        out = doctor("--model", "smollm2-135m", "--base-url", url, "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)["server"]
    assert "error" not in report and any("SmolLM2-135M" in m for m in report["models"])
    assert report["dialect"] == "llama-server"
