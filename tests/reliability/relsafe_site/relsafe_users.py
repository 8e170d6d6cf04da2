"""Run a Python snippet without the power to ignore file permissions, so that a read-only file means
something even when the tests run as root (as CI does): the child loses CAP_DAC_OVERRIDE,
CAP_DAC_READ_SEARCH and CAP_FOWNER from its bounding set, so root's child obeys the mode bits."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

SRC = Path(__file__).resolve().parents[3] / "src"


def unprivileged_dir() -> Path:
    """A fresh directory the child can write (pytest's tmp_path is owner-only, which is fine for root too)."""
    path = Path(tempfile.mkdtemp(prefix="relsafe-"))
    path.chmod(0o777)
    return path


def _drop() -> None:
    if os.getuid() != 0:
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def run_python(code: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -c code`` without permission-override capabilities, with this checkout's sources first."""
    full = {**os.environ, "PYTHONPATH": str(SRC), "HOME": "/tmp", **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=timeout, preexec_fn=_drop
    )
