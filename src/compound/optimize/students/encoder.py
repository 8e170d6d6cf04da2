"""The second student: the sentence encoder itself fine-tuned on the teacher's labels, on CPU torch.

A linear head over the encoder's pooled sentence embedding, trained end to end with cross-entropy
(class-balanced), the encoder at a small learning rate and the head at a larger one: what SetFit's
second phase does, without its contrastive first phase (on CPU a pair epoch costs many times a
classification epoch for the same labels). It answers with the softmax probability of its label, at the
cost of one embedding per row (batched; texts cut at ``max_length`` tokens).

Guarantees:
- **Bounded training.** ``fit`` takes a CPU cap (``cpu_cap``, in CPU s of this process): it measures the
  first batch, and stops before a batch that would pass the cap, so the planner's allowance
  (``optimize.planner``) holds; the record says how many epochs and examples it got through.
- **Its own copy.** The encoder is copied before training: the shared embedder that the first stage uses
  (``students.embedding``) is never changed.
- **Counted.** Training and predictions run inside ``local_work``: their CPU is in every active tracker.
- Deterministic for a seed (torch's generator and the batch order are seeded).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from compound.core.errors import InputError
from compound.core.usage import local_work


@dataclass(frozen=True)
class EncoderSettings:
    epochs: float = 3.0
    batch_size: int = 16
    lr: float = 5e-5  # the encoder's
    head_lr: float = 2e-3
    max_length: int = 128
    seed: int = 0


class EncoderClassifier:
    """Fine-tuned sentence encoder + linear head; ``embedder`` names the base (``retrieval.dense``)."""

    def __init__(self, embedder: str | None = None, settings: EncoderSettings | None = None) -> None:
        self.embedder = embedder
        self.settings = settings or EncoderSettings()
        self.labels: list[str] = []
        self.model: Any = None
        self.head: Any = None
        self.record: dict[str, Any] = {}

    @property
    def trained(self) -> bool:
        return self.head is not None

    def _features(self, texts: Sequence[str]) -> Any:
        """Pooled, normalised embeddings with gradients (the encoder in its current mode)."""
        prepare = getattr(self.model, "preprocess", None) or self.model.tokenize  # renamed in sentence-transformers 6
        return self.model(prepare(list(texts)))["sentence_embedding"]

    def fit(self, texts: Sequence[str], labels: Sequence[str], cpu_cap: float | None = None) -> dict[str, Any]:
        """Train on ``(texts, labels)`` within ``cpu_cap`` CPU s; returns (and keeps) the training record."""
        import numpy as np

        s = self.settings
        with local_work() as spent:
            c0 = time.process_time()
            y, step = self._start(labels)
            rng = np.random.default_rng(s.seed)
            steps = max(1, round(s.epochs * len(texts) / s.batch_size))
            order: list[int] = []
            done, stopped, per_batch = 0, None, None
            for k in range(steps):
                if len(order) < s.batch_size:
                    order += rng.permutation(len(texts)).tolist()
                batch, order = order[: s.batch_size], order[s.batch_size :]
                used = time.process_time() - c0
                if cpu_cap is not None and per_batch is not None and used + per_batch > cpu_cap:
                    stopped = f"CPU cap {cpu_cap:.1f} s reached after {k} of {steps} batches"
                    break
                b0 = time.process_time()
                step([texts[i] for i in batch], y[batch])
                took = time.process_time() - b0
                per_batch = took if per_batch is None else 0.8 * per_batch + 0.2 * took
                done += len(batch)
            self.model.eval()
        self.record = {
            "examples": len(texts),
            "example_passes": done,
            "epochs_done": round(done / max(1, len(texts)), 2),
            "cpu_s": spent[1],
            "cpu_s_per_example": spent[1] / max(1, done),
            "stopped": stopped,
            "settings": s.__dict__,
        }
        return self.record

    def probe(self, texts: Sequence[str], labels: Sequence[str]) -> float:
        """CPU s per training example, measured on one batch of ``(texts, labels)`` with everything ``fit``
        sets up first (so a little above what ``fit`` then pays per example); nothing it trained is kept."""
        size = min(len(texts), self.settings.batch_size)
        with local_work() as spent:
            y, step = self._start(labels)
            step(list(texts[:size]), y[:size])
        self.model = self.head = None
        self.labels = []
        return spent[1] / max(1, size)

    def _start(self, labels: Sequence[str]) -> tuple[Any, Any]:
        """A fresh copy of the encoder and a new head for ``labels`` (in training mode): the label indices
        and the training step, ``step(texts, y)`` (class-balanced cross-entropy, AdamW at two rates)."""
        if len(set(labels)) < 2:
            raise InputError("the encoder student needs at least two distinct labels to learn from")
        import numpy as np
        import torch

        from compound.retrieval.dense import load_embedder

        s = self.settings
        torch.manual_seed(s.seed)
        self.model = copy.deepcopy(load_embedder(self.embedder))
        self.model.max_seq_length = s.max_length
        self.labels = sorted({str(v) for v in labels})
        y = torch.tensor([self.labels.index(str(v)) for v in labels])
        width = (getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension)()
        self.head = torch.nn.Linear(width, len(self.labels))
        counts = np.bincount(y.numpy(), minlength=len(self.labels)).astype(float)
        weight = torch.tensor(len(y) / (len(self.labels) * np.maximum(counts, 1.0)), dtype=torch.float32)
        loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
        optimizer = torch.optim.AdamW(
            [{"params": self.model.parameters(), "lr": s.lr}, {"params": self.head.parameters(), "lr": s.head_lr}]
        )
        self.model.train()

        def step(texts: list[str], target: Any) -> None:
            loss = loss_fn(self.head(self._features(texts)), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        return y, step

    def probabilities(self, texts: Sequence[str], batch_size: int = 64) -> Any:
        """Rows x labels softmax probabilities (numpy), in batches, counted as local work."""
        if not self.trained:
            raise InputError("the encoder student is not trained: fit it first")
        import numpy as np
        import torch

        out = []
        with local_work(), torch.no_grad():
            for i in range(0, len(texts), batch_size):
                logits = self.head(self._features(list(texts[i : i + batch_size])))
                out.append(torch.softmax(logits, dim=1).numpy())
        return np.vstack(out) if out else np.zeros((0, len(self.labels)))

    def predict(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        """(label, its probability) per text."""
        probs = self.probabilities(texts)
        best = probs.argmax(axis=1)
        return [(self.labels[int(b)], float(probs[i, b])) for i, b in enumerate(best)]
