"""Scripted small, medium and large classifiers for ``compound optimize``'s tests, registered as
``opt-small``, ``opt-medium`` and ``opt-large`` and set as the settings' small, medium and large models.

The rows are ``msg <i> ...``; the right label is ``spam`` when ``i`` is a multiple of 3, else ``ham``. The
small model is wrong on every fifth message, the medium on every tenth, the large never; each is priced
(dollars per million tokens) and answers after a realistic latency, so a cheaper model is really cheaper.
"""

import json
import re

import compound

PRICES = {"opt-small": 1.0, "opt-medium": 3.0, "opt-large": 10.0}
WRONG_EVERY = {"opt-small": 4, "opt-medium": 10, "opt-large": 0}
LATENCY_S = {"opt-small": 0.01, "opt-medium": 0.02, "opt-large": 0.04}


def gold(i: int) -> str:
    return "spam" if i % 3 == 0 else "ham"


def rows(n: int) -> list[dict]:
    return [{"text": f"msg {i} about things", "label": gold(i)} for i in range(n)]


def answer(name: str):
    every = WRONG_EVERY[name]

    def reply(request) -> str:
        i = int(re.findall(r"msg (\d+)", request.messages[-1].content)[-1])
        label = gold(i)
        if every and i % every == 0:
            label = "ham" if label == "spam" else "spam"
        return json.dumps({"label": label})

    return reply


def register() -> None:
    for name in PRICES:
        backend = compound.ScriptedBackend(answer(name), model=name, latency_s=LATENCY_S[name])
        compound.register_model(name, backend)
    compound.configure(
        small="opt-small",
        medium="opt-medium",
        large="opt-large",
        prices={name: {"input_per_mtok": p, "output_per_mtok": p} for name, p in PRICES.items()},
    )
