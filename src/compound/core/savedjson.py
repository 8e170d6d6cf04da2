"""Reading and writing the JSON files compound saves (programs, index manifests and documents), as one
mechanism.

Guarantees:

- ``read_json`` never raises anything but ``ConfigurationError`` naming the file (and line): a file that is
  missing, unreadable, not UTF-8, not JSON, or nested deeper than ``MAX_DEPTH`` (a 200,000-deep file is
  refused, it never reaches a ``RecursionError``).
- ``write_json`` writes atomically (a temporary file in the same folder, then a rename), creates missing
  folders, and says why it cannot (a file in the way, no permission) with a ``ConfigurationError``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from compound.core.errors import ConfigurationError

#: deeper than any file compound writes (a program's parameters nest a few levels)
MAX_DEPTH = 100


def _depth_over(value: Any, limit: int) -> bool:
    """Whether ``value`` nests deeper than ``limit`` (iterative: no recursion on hostile input)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def parse_json(text: str, source: str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``text`` read from ``source`` (a file, ``file line N``); ``ConfigurationError`` naming it if it
    is not JSON or nests deeper than ``max_depth``."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ConfigurationError(f"{source} nests too deeply to read; it is damaged or not compound's") from None
    except ValueError as e:
        raise ConfigurationError(f"{source} is not valid JSON ({e}); it is damaged or not compound's") from None
    if _depth_over(value, max_depth):
        raise ConfigurationError(f"{source} nests deeper than {max_depth} levels; it is damaged or not compound's")
    return value


def read_json(path: str | Path, what: str, *, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value of the file at ``path`` (a ``what``: "program file", "index manifest"...)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"cannot read {what} {path}: no such file; check the path") from None
    except IsADirectoryError:
        raise ConfigurationError(f"cannot read {what} {path}: it is a directory; give the file") from None
    except UnicodeDecodeError as e:
        raise ConfigurationError(f"cannot read {what} {path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise ConfigurationError(f"cannot read {what} {path}: {e.strerror or e}") from None
    return parse_json(text, f"{what} {path}", max_depth=max_depth)


def prepare_folder(path: Path, what: str, *, is_folder: bool = False) -> None:
    """Create the folder ``path`` will be written in, or say why it cannot be (``is_folder``: ``path`` is
    itself a folder, replaced as a whole)."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigurationError(
            f"cannot save the {what} to {path}: {_blocker(folder)} is a file, not a folder; pick another path"
        ) from None
    except OSError as e:
        raise ConfigurationError(
            f"cannot save the {what} to {path}: cannot create {folder} ({e.strerror or e})"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigurationError(f"cannot save the {what} to {path}: {folder} is not writable; pick another folder")
    if path.is_dir() and not is_folder:
        raise ConfigurationError(f"cannot save the {what} to {path}: it is a directory; give a file name")
    if path.exists() and not path.is_dir() and is_folder:
        raise ConfigurationError(f"cannot save the {what} to {path}: it is a file; give a folder name")


def _blocker(folder: Path) -> Path:
    for parent in [folder, *folder.parents]:
        if parent.exists():
            return parent
    return folder


def write_json(path: str | Path, value: Any, what: str, **dump: Any) -> Path:
    """Write ``value`` as JSON to ``path`` atomically, creating missing folders."""
    path = Path(path)
    prepare_folder(path, what)
    text = json.dumps(value, **dump)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        raise ConfigurationError(f"cannot save the {what} to {path}: {e.strerror or e}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path
