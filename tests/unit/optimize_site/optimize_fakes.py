"""Scripted small, medium and large classifiers for ``compound optimize``'s tests, registered as
``opt-small``, ``opt-medium`` and ``opt-large`` and set as the settings' small, medium and large models.

The rows are ``msg <i> ...``; the right label is ``spam`` when ``i`` is a multiple of 3, else ``ham``. The
small model is wrong on every fourth message, the medium on every tenth, the large never; each is priced
(dollars per million tokens) and answers after a realistic latency, so a cheaper model is really cheaper.
On an ``easy`` share of the rows the words give the label away, to the embedding student too
(``embedder``: a bag of the rows' words, without the numbers, that spends CPU as an embedder does).
"""

import json
import re
import time

import compound

PRICES = {"opt-small": 1.0, "opt-medium": 3.0, "opt-large": 10.0}
WRONG_EVERY = {"opt-small": 4, "opt-medium": 10, "opt-large": 0}
LATENCY_S = {"opt-small": 0.01, "opt-medium": 0.02, "opt-large": 0.04}


def gold(i: int) -> str:
    return "spam" if i % 3 == 0 else "ham"


def _words(i: int, easy: float) -> str:
    if (i * 7919) % 100 >= easy * 100:  # a fixed pseudo-random share of the rows
        return "about things"
    return "win cash prize now" if gold(i) == "spam" else "see you at lunch"


def rows(n: int, easy: float = 0.0) -> list[dict]:
    return [{"text": f"msg {i} {_words(i, easy)}", "label": gold(i)} for i in range(n)]


def embedder(cpu_s: float = 0.004):
    """A stand-in for the sentence embedder (no torch): unit-length hashed bags of a text's words, numbers
    left out (so the student learns from the words only), spending ``cpu_s`` of CPU per text, counted as
    local work as the embedder's is."""
    import numpy as np

    from compound.core.usage import local_work

    def embed(texts, model_path=None):
        out = np.zeros((len(texts), 64), dtype="float32")
        with local_work():
            for i, t in enumerate(texts):
                burn(cpu_s)
                for w in (w for w in t.split() if w.isalpha()):
                    out[i, sum(map(ord, w)) % 64] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    return embed


def patch_embeddings() -> None:
    from compound.optimize.students import embedding

    embedding.embed_texts = embedder()


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


# ---- models that spend CPU as a local llama.cpp model does -------------------------------------------------

#: CPU seconds per prompt token read, per token generated, and to load (on the first call)
CPU_COST = {"opt-small": (0.0002, 0.001, 0.1), "opt-medium": (0.0004, 0.002, 0.2), "opt-large": (0.001, 0.004, 0.4)}


def burn(seconds: float) -> None:
    """Spend ``seconds`` of this thread's CPU."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


class LocalFake(compound.ScriptedBackend):
    """A scripted classifier that spends CPU as llama.cpp does: on one thread, one call at a time, loading
    on its first call, reading each prompt token it has not read before (a prompt it read once is kept, as
    llama.cpp's prompt cache keeps it) and generating each reply token."""

    blocking = True
    serialize = True
    process_clock = True  # measured with the process clock, as llama.cpp is (so a student's is not mixed in)

    KEPT = 16  # the prompts kept (llama.cpp keeps the slot's last prompt and a few more in host memory)

    def __init__(self, name: str) -> None:
        super().__init__(answer(name), model=name)
        self.per_prompt_token, self.per_token, self.load_s = CPU_COST[name]
        self.read: list[str] = []
        self.loaded = False

    def _generate(self, request):
        completion = self._reply(request)
        prompt = json.dumps([m.content for m in request.messages])
        cpu = 0.0 if prompt in self.read else completion.prompt_tokens * self.per_prompt_token
        if not self.loaded:
            cpu += self.load_s
            self.loaded = True
        self.read = [p for p in self.read if p != prompt][-self.KEPT + 1 :] + [prompt]
        burn(cpu + completion.completion_tokens * self.per_token)
        return completion


def register_local() -> dict:
    """Register the CPU-spending ``LocalFake`` models in place of the scripted ones; return them by name."""
    models = {name: LocalFake(name) for name in PRICES}
    for name, backend in models.items():
        compound.register_model(name, backend)
    compound.configure(small="opt-small", medium="opt-medium", large="opt-large", prices={})
    return models
