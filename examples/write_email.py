"""The short box: a few words in, a drafted email out, checked and repaired.

    python examples/write_email.py "Ana, team lunch moved to Friday, warm"
    python examples/write_email.py --save write_email.json   # then: compound serve write_email.json

The program is ``WriteEmail`` (``compound.serve.write_email``, the built-in program of ``compound serve``): a typed draft (subject, greeting, body, sign-off), four
requirements (length; no numbers, names or dates that are not in the box; a greeting; a sign-off) and
``Repair``, which sends a failed draft back with the reasons. It prints every candidate with its checks,
the chosen one and the cost. ``compound serve`` serves the same program at
``/v1/programs/write_email/run`` and in the web UI's Write page.
"""

from __future__ import annotations

import argparse
import json

import compound
from compound.serve.write_email import WriteEmail


def draft(box: str, model: str | None = None) -> compound.StrategyResult:
    program = WriteEmail(model=model)
    with compound.start_run("write_email", box=box):
        return program.result(box=box)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("box", nargs="?", default="Ana, team lunch moved to Friday, warm")
    parser.add_argument("--model", "-m", default=None, help="model (default: the embedded small model)")
    parser.add_argument("--save", default=None, help="save the program here instead, for compound serve")
    args = parser.parse_args()
    if args.save:
        WriteEmail(model=args.model).save(args.save)
        print(f"saved {args.save}; serve it with: compound serve {args.save}")
        return
    result = draft(args.box, args.model)
    for c in result.candidates:
        mark = "chosen" if c.index == result.best.index else ("passed" if c.passed else "rejected")
        print(f"--- candidate {c.index} ({mark})")
        print(json.dumps(c.to_dict()["value"], indent=2) if c.value is not None else c.error)
        for v in c.validations:
            print(f"  {'ok ' if v.passed else 'NO '} {v.requirement}: {v.reason}")
    u = result.usage
    print(
        f"{result.note}\ncost: {u.calls} call(s), {u.total_tokens} tokens, {u.cpu_s:.2f} CPU s, {u.energy_j:.1f} J, ${u.cost_usd:.4f}"
    )


if __name__ == "__main__":
    main()
