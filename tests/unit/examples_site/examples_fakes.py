"""Scripted teachers for ``auto`` with examples (``optimize.examples``), registered as ``topic-teacher`` (right
on every row) and ``weak-teacher`` (wrong on 40% of rows, calling them ``tech`` as the large model called
BBC news), and hashed bag-of-words embeddings standing in for MiniLM (unit tests must not load torch).

The rows are short news lines ``<filler> <topic word> <filler> <filler> <n>``; a row's topic is the topic of
its topic word. Each teacher burns real CPU per call (what ``auto``'s planner measures) after a realistic
latency. The weak teacher is wrong on the rows whose number ``n`` has ``n % 5 < 2``.
"""

import json
import random
import time

import numpy as np

import compound

TOPICS = {"sport": ["football", "tennis"], "tech": ["software", "laptop"], "food": ["pasta", "cheese"]}
LABELS = sorted(TOPICS)
FILLER = ["today", "report", "story", "news", "people", "city", "week", "new"]
#: CPU seconds a teacher call burns, and its latency
CPU_S, LATENCY_S = 0.02, 0.005


def rows(n: int, seed: int = 0, start: int = 0) -> list[tuple[str, str]]:
    """``n`` (text, topic) rows numbered from ``start``."""
    rng = random.Random(seed)
    out = []
    for i in range(start, start + n):
        topic = rng.choice(LABELS)
        words = [rng.choice(FILLER), rng.choice(TOPICS[topic]), rng.choice(FILLER), rng.choice(FILLER)]
        out.append((f"{' '.join(words)} {i}", topic))
    return out


def truth(text: str) -> str:
    words = text.split()
    return next(t for t in LABELS if any(w in words for w in TOPICS[t]))


def weakly(text: str) -> str:
    """The weak teacher's label: wrong on 40% of rows (the ones numbered n % 5 < 2)."""
    label = truth(text)
    if int(text.split()[-1]) % 5 < 2:
        return "tech" if label != "tech" else "sport"
    return label


def burn(cpu_s: float) -> None:
    c0 = time.process_time()
    while time.process_time() - c0 < cpu_s:
        pass


def teacher(label_of, name: str, cpu_s: float = CPU_S) -> compound.ScriptedBackend:
    def reply(request) -> str:
        burn(cpu_s)
        return json.dumps({"topic": label_of(request.messages[-1].content)})

    return compound.ScriptedBackend(reply, model=name, latency_s=LATENCY_S)


#: local work's priors where it costs little (hashed embeddings; scikit-learn imported once)
CHEAP_PRIORS = dict(teacher=0.0, embed=1e-4, embed_load=0.01, fit_load=0.2)


def hashed_embed(texts, model_path=None):
    """Unit-length hashed bags of words (numbers left out), counted as local work as the real embedder is."""
    from compound.core.usage import local_work

    out = np.zeros((len(texts), 64), dtype="float32")
    for i, t in enumerate(texts):
        for w in t.split():
            if not w.isdigit():
                out[i, sum(map(ord, w)) % 64] += 1.0
    with local_work():
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def register() -> None:
    import sklearn.cluster  # noqa: F401  # imported before any measured work, as the cheap priors assume
    import sklearn.feature_extraction.text  # noqa: F401
    import sklearn.linear_model  # noqa: F401

    import compound.optimize.staged as staged
    from compound.optimize.planner import Costs

    staged.embed_texts = hashed_embed
    staged.PRIORS = Costs(**CHEAP_PRIORS)
    compound.register_model("topic-teacher", teacher(truth, "topic-teacher"))
    compound.register_model("weak-teacher", teacher(weakly, "weak-teacher"))
