"""Hostile store files: damaged, foreign, newer, read-only, and a COMPOUND_HOME that is not a directory.

Traces and tables hold records, so a file they cannot use is refused with a ``StoreError`` naming the file
and the fix, and is never written to. The cache holds only derived data: a damaged or foreign cache is
moved aside with a warning, and the run goes on."""

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import compound
from compound import ScriptedBackend
from compound.core.errors import StoreError
from compound.store.cache import ResponseCache
from compound.store.traces import TraceStore
from compound.tables.jobs import JobStore

sys.path.insert(0, str(Path(__file__).parent / "relsafe_site"))
from relsafe_users import run_python, unprivileged_dir  # noqa: E402

STORES = {"cache.sqlite": ResponseCache, "traces.sqlite": TraceStore, "tables.sqlite": JobStore}


def _foreign_db(path, rows=300):
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.executemany("INSERT INTO customers (name) VALUES (?)", [("x" * 400,)] * rows)
    conn.commit()
    conn.close()


def _random(path):
    path.write_bytes(os.urandom(8192))


def _garbage(path):
    path.write_bytes(b"this is not a database\n")


def _truncated(path):
    _foreign_db(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _header_only(path):
    _foreign_db(path)
    path.write_bytes(path.read_bytes()[:60])


def _foreign(path):
    _foreign_db(path, rows=3)


def _tables_missing(path):
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=1")
    conn.close()


DAMAGE = {
    "random": _random,
    "garbage": _garbage,
    "truncated": _truncated,
    "header-only": _header_only,
    "foreign": _foreign,
    "tables-missing": _tables_missing,
}


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("name", ["traces.sqlite", "tables.sqlite"])
def test_a_damaged_or_foreign_record_store_is_refused_naming_the_file_and_untouched(tmp_path, name, damage):
    path = tmp_path / name
    DAMAGE[damage](path)
    before = path.read_bytes()
    with pytest.raises(StoreError) as info:
        STORES[name](path)
    message = str(info.value)
    assert str(path) in message and "Move it aside" in message and info.value.damaged
    assert path.read_bytes() == before  # never written to, never replaced
    assert not Path(f"{path}-wal").exists()


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_or_foreign_cache_is_moved_aside_and_the_cache_goes_on(tmp_path, damage):
    path = tmp_path / "cache.sqlite"
    DAMAGE[damage](path)
    before = path.read_bytes()
    with pytest.warns(RuntimeWarning, match="moved aside"):
        cache = ResponseCache(path)
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("cache.sqlite.damaged-")]
    assert len(aside) == 1 and aside[0].read_bytes() == before  # kept, byte for byte
    gen = ScriptedBackend(["hi"], model=f"q-{damage}").generate("x", cache=False)
    cache.put("k", gen)
    assert cache.get("k").text == "hi" and len(cache) == 1


@pytest.mark.parametrize("name", list(STORES))
def test_a_store_from_a_newer_compound_is_refused_not_moved(tmp_path, name):
    path = tmp_path / name
    STORES[name](path).writer.flush()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(StoreError, match="schema version 99"):
        STORES[name](path)
    assert path.exists()


def test_a_run_goes_on_over_a_damaged_cache_in_compound_home(isolated_home):
    isolated_home.mkdir(parents=True, exist_ok=True)
    _random(isolated_home / "cache.sqlite")
    model = ScriptedBackend(["fine"], model="home-damaged", latency_s=0.02)
    with pytest.warns(RuntimeWarning, match=str(isolated_home / "cache.sqlite")):
        assert model.generate("hello").text == "fine"
    assert model.generate("hello").cached  # the new cache works


def test_a_damaged_trace_store_stops_a_traced_call_with_the_fix(isolated_home):
    isolated_home.mkdir(parents=True, exist_ok=True)
    _garbage(isolated_home / "traces.sqlite")
    with pytest.raises(StoreError, match="traces.sqlite"):
        with compound.start_run("r"):
            ScriptedBackend(["x"], model="traced").generate("hi")


def _console_script():
    found = Path(sys.prefix) / "bin" / "compound"
    return str(found) if found.exists() else shutil.which("compound")


@pytest.mark.parametrize(
    "name,args", [("traces.sqlite", ["traces", "list"]), ("tables.sqlite", ["jobs"])], ids=["traces", "jobs"]
)
def test_the_cli_reports_a_damaged_store_in_one_clean_message(tmp_path, name, args):
    home = tmp_path / "home"
    home.mkdir()
    _random(home / name)
    env = {**os.environ, "COMPOUND_HOME": str(home), "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    p = subprocess.run([_console_script(), *args], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    out = p.stdout + p.stderr
    assert str(home / name) in out and "Move it aside" in out and "Traceback" not in out


@pytest.mark.parametrize("name", list(STORES))
def test_a_read_only_store_file_is_refused_with_the_fix(name):
    folder = unprivileged_dir()
    try:
        path = folder / name
        STORES[name](path).writer.flush()
        os.chmod(path, 0o444)
        cls = STORES[name]
        code = (
            f"from {cls.__module__} import {cls.__name__} as S\n"
            "from compound.core.errors import StoreError\n"
            f"try:\n    S({str(path)!r}); print('OPENED')\nexcept StoreError as e:\n    print('REFUSED', e)"
        )
        p = run_python(code)
        assert "REFUSED" in p.stdout, p.stdout + p.stderr
        assert str(path) in p.stdout and "writable" in p.stdout
    finally:
        shutil.rmtree(folder)


def test_a_store_in_a_read_only_folder_is_refused(tmp_path):
    folder = unprivileged_dir()
    try:
        (folder / "home").mkdir()
        os.chmod(folder / "home", 0o555)
        code = (
            "import compound\nfrom compound.core.errors import StoreError\n"
            "try:\n    compound.ScriptedBackend(['x']).generate('hi'); print('RAN')\n"
            "except StoreError as e:\n    print('REFUSED', e)"
        )
        p = run_python(code, env={"COMPOUND_HOME": str(folder / "home")})
        assert "REFUSED" in p.stdout and "not writable" in p.stdout, p.stdout + p.stderr
    finally:
        shutil.rmtree(folder)


def _home_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    return tmp_path / "file"


def _home_under_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    return tmp_path / "file" / "home"


@pytest.mark.parametrize("make", [_home_is_a_file, _home_under_a_file, lambda _: Path("/dev/null")])
def test_a_compound_home_that_is_not_a_directory_is_refused(tmp_path, make):
    home = make(tmp_path)
    compound.configure(home=home)
    with pytest.raises(StoreError, match="COMPOUND_HOME"):
        ScriptedBackend(["x"], model="nohome").generate("hi")


def test_the_cli_refuses_a_home_that_is_a_file(tmp_path):
    home = _home_is_a_file(tmp_path)
    env = {**os.environ, "COMPOUND_HOME": str(home), "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    p = subprocess.run([_console_script(), "traces", "list"], env=env, capture_output=True, text=True, timeout=60)
    out = p.stdout + p.stderr
    assert p.returncode != 0 and "COMPOUND_HOME" in out and "Traceback" not in out


@pytest.mark.parametrize("name", list(STORES))
def test_a_healthy_store_opens_again_unchanged(tmp_path, name):
    path = tmp_path / name
    STORES[name](path).writer.flush()
    STORES[name](path)  # a second open of a good file is fine
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == STORES[name].VERSION


@pytest.mark.parametrize("name", list(STORES))
def test_a_store_path_that_is_a_directory_is_refused(tmp_path, name):
    (tmp_path / name).mkdir()
    with pytest.raises(StoreError, match="is a directory"):
        STORES[name](tmp_path / name)


@pytest.mark.parametrize("name", sorted(STORES))
def test_processes_that_create_one_new_store_at_once_all_open_it(tmp_path, name):
    """Ray workers on one machine share a home: several processes may create a store in the same
    instant. Each waits for the one creating it and opens it; none fails with 'database is locked'."""
    cls = STORES[name]
    code = (
        "import sys, time\n"
        f"from {cls.__module__} import {cls.__name__}\n"
        "start = float(sys.argv[2])\n"
        "time.sleep(max(0.0, start - time.time()))\n"
        f"{cls.__name__}(sys.argv[1]).connect()\n"
        "print('opened')\n"
    )
    for attempt in range(3):
        path = tmp_path / f"{attempt}-{name}"
        start = f"{__import__('time').time() + 1.5}"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", code, str(path), start],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        results = [p.communicate(timeout=60) for p in procs]
        assert all(out.strip() == "opened" for out, _ in results), [err[-500:] for _, err in results]
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()
