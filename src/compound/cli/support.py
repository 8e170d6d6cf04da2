"""How the ``compound`` command line prints, reports errors and checks its options.

Guarantees:

- One console for every command: ``console`` (stdout) and ``err`` (stderr) are made at print time, so they
  write to whatever stream is current (tests capture it); full width on a terminal, 200 columns when piped
  or captured, so ids and numbers are never cut.

- Every error ends the command with a non-zero exit status and one line on stderr, ``error: ...``, that
  names the problem and the fix; no traceback. Usage errors (a bad option value, an unknown option) exit
  with 2, everything else with 1, an interrupt with 130.
- An error compound did not foresee is still one line, saying so; ``COMPOUND_DEBUG=1`` shows its traceback.
- Numeric options are checked at the edge by ``number(...)``, which wraps the one shared validator,
  ``compound.core.validate.check_number``: counts are whole and positive, limits finite and non-negative.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import typer

from compound.core.errors import CompoundError, ConfigurationError
from compound.core.validate import check_number


def _make_console(stderr: bool = False) -> Any:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 200)


class _LazyConsole:
    """Made at print time, so it writes to whatever stdout is then (tests capture it)."""

    def __init__(self, stderr: bool = False) -> None:
        self.stderr = stderr

    def __getattr__(self, name: str) -> Any:
        return getattr(_make_console(self.stderr), name)


#: the console every command prints its results on, and the one for notes on stderr
console: Any = _LazyConsole()
err: Any = _LazyConsole(stderr=True)


def one_line(message: str) -> str:
    """A message on one line: its lines joined, blank ones dropped."""
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def _line(prefix: str, style: str, message: str) -> None:
    from rich.console import Console
    from rich.text import Text

    Console(stderr=True, width=100_000, soft_wrap=True).print(Text.assemble((prefix, style), one_line(message)))


def print_error(message: str) -> None:
    """One ``error:`` line on stderr."""
    _line("error: ", "bold red", message)


def warn(message: str) -> None:
    """One ``warning:`` line on stderr (the command goes on)."""
    _line("warning: ", "bold yellow", message)


def fail(message: str, code: int = 1) -> NoReturn:
    """Inside a command: print the error line and end the command."""
    print_error(message)
    raise typer.Exit(code)


def run_app(app: typer.Typer, args: list[str] | None = None) -> int:
    """Run the app and turn every exception into an error line and an exit status."""
    try:
        rv = app(args=args, standalone_mode=False)
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        print_error("interrupted")
        return 130
    except KeyboardInterrupt:
        print_error("interrupted; a table job keeps its finished rows: resume it with compound table --resume JOB")
        return 130
    except typer.TyperException as e:  # click's usage errors: a bad value, an unknown option or command
        message = e.format_message() if hasattr(e, "format_message") else str(e)
        code = getattr(e, "exit_code", 2)
        if not message:  # no arguments: the help was printed
            return code
        ctx = getattr(e, "ctx", None)
        path = ctx.command_path if ctx is not None else "compound"
        print_error(f"{message} (see: {path} --help)")
        return code
    except CompoundError as e:
        print_error(str(e))
        return 1
    except sqlite3.DatabaseError as e:
        print_error(
            f"a compound store cannot be read ({e}); it is damaged or not a compound file: "
            "move it aside (see COMPOUND_HOME) and run again"
        )
        return 1
    except OSError as e:
        print_error(f"{e}; check the path and its permissions")
        return 1
    except Exception as e:
        if os.environ.get("COMPOUND_DEBUG"):
            raise
        print_error(
            f"unexpected {type(e).__name__}: {e} (a bug in compound: run again with COMPOUND_DEBUG=1 for "
            "the traceback and report it)"
        )
        return 1
    return rv if isinstance(rv, int) else 0


def usage_line(u: dict[str, Any]) -> str:
    """One line of a usage record (``Usage.to_dict()``): model calls and local steps apart, tokens, wall and CPU
    seconds, money, energy."""
    est = " (estimated)" if u.get("energy_estimated") else ""
    local = f" + {u['local']} local step(s) (embeddings, students)" if u.get("local") else ""
    return (
        f"{u['calls']} model call(s){local}, {u['prompt_tokens']}+{u['completion_tokens']} tokens, "
        f"{u['wall_s']:.2f} s wall, {u['cpu_s']:.2f} s CPU, ${u['cost_usd']:.4f}, {u['energy_j']:.1f} J{est}"
    )


def main(app: typer.Typer) -> NoReturn:
    sys.exit(run_app(app))


def number(
    *,
    at_least: float | None = None,
    above: float | None = None,
    at_most: float | None = None,
    integer: bool = False,
) -> Callable[[Any, Any, Any], Any]:
    """An option callback that refuses NaN, infinities and values out of bounds (``None`` passes)."""

    def callback(ctx: Any, param: Any, value: Any) -> Any:
        if value is None:
            return None
        try:  # click names the option in front of the message
            return check_number("the value", value, at_least=at_least, above=above, at_most=at_most, integer=integer)
        except ConfigurationError as e:
            raise typer.BadParameter(str(e)) from None

    return callback


def parse_counts(text: str, option: str) -> list[int]:
    """``"1,2,4"`` -> [1, 2, 4]; anything but positive whole numbers is refused naming the option."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigurationError(f"{option} takes comma-separated whole numbers such as 1,2,4; got {text!r}") from None
    if not values:
        raise ConfigurationError(f"{option} needs at least one number, such as 1,2,4")
    return [check_number(option, v, at_least=1, integer=True) for v in values]


#: option callbacks shared by every command: how many (>= 1), how many at most (>= 0), a limit (>= 0)
COUNT = number(at_least=1, integer=True)
SIZE = number(at_least=0, integer=True)
LIMIT = number(at_least=0)
FRACTION = number(at_least=0, at_most=1)


__all__ = [
    "console",
    "err",
    "run_app",
    "main",
    "fail",
    "parse_counts",
    "number",
    "one_line",
    "print_error",
    "warn",
    "usage_line",
    "COUNT",
    "SIZE",
    "LIMIT",
    "FRACTION",
]
