"""The embedded default backend (kind ``llama_cpp``): llama.cpp in process, through a chosen engine.

The engine is ``xllamacpp`` by default (prebuilt wheel, no compile, no AMX kernels) or
``llama-cpp-python`` (``engine="llama-cpp-python"`` or ``compound.configure(engine=...)``); see
``compound.models.engines``. Guarantees, whatever the engine:

- Calls on one loaded model run on one dedicated thread (``serialize``): llama.cpp serves one call at a
  time, and its native thread pool stays bound to one caller. CPU is measured process-wide, since
  llama.cpp computes on its own native threads.
- Usage (prompt and completion tokens) is the engine's own count; ``count_prompt_tokens`` never
  under-counts, so budget reservations hold.
- A prompt that starts like the previous one (same instructions and demos) reuses that prefix.
- LoRA adapters (``lora=[(path, scale)]`` or the spec ``BASE+lora=PATH[@SCALE]``) change ``model_id``
  by their content's sha256, so an adapted model never shares cache entries with its base. A model
  given as a ``.gguf`` path is cached under its content's sha256 too, not only its path.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import threading
from pathlib import Path
from typing import Any

from compound.core.errors import ConfigurationError
from compound.core.settings import get_settings
from compound.core.types import Completion, Request, answer_logprobs
from compound.models.base import Backend
from compound.models.embedded import EMBEDDED, get_embedded
from compound.models.engines import DEFAULT_ENGINE, ENGINES, Engine, EngineConfig, open_engine
from compound.models.lora import LoraAdapter, file_sha256, split_lora_spec
from compound.models.stream import Emit


def resolve_model_path(model: str) -> Path:
    if model in EMBEDDED:
        return get_embedded(model).path(get_settings().models_dir)
    path = Path(model).expanduser()
    if path.suffix.lower() == ".gguf" and path.exists():
        return path
    raise ConfigurationError(
        f"llama_cpp model {model!r} is neither an embedded model ({', '.join(EMBEDDED)}) nor an existing .gguf file"
    )


class LlamaCppBackend(Backend):
    kind = "llama_cpp"

    process_clock = True  # llama.cpp computes on its own native threads

    serialize = True  # a llama.cpp context serves one call at a time

    def __init__(
        self,
        model: str,
        *,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        logits_all: bool = False,
        engine: str | None = None,
        lora: list[tuple[str | Path, float]] | tuple[tuple[str | Path, float], ...] = (),
        flash_attn: bool | None = None,
    ):
        base, adapters = split_lora_spec(model)
        self.base_model = base
        self.lora: tuple[LoraAdapter, ...] = adapters + tuple(LoraAdapter.load(p, s) for p, s in lora)
        self.engine_name = engine or get_settings().engine
        if self.engine_name not in ENGINES:
            raise ConfigurationError(f"unknown engine {self.engine_name!r}; the engines are: {', '.join(ENGINES)}")
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.logits_all = logits_all  # needed for logprobs by llama-cpp-python only; accepted by every engine
        # flash attention: faster prompt reading, slower generation on the smallest model (benchmarks/engine.py)
        self.flash_attn = get_settings().flash_attn if flash_attn is None else flash_attn
        super().__init__(model)

    _transient = Backend._transient + ("_engine", "_lock")

    def _init_transient(self) -> None:
        super()._init_transient()
        self._engine: Engine | None = None  # each process loads its own copy on first use
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        """``llama_cpp:BASE``, plus each adapter's sha256 and scale, plus the engine and the flash-attention
        choice when not the defaults (either can change a reply's last digits, so neither shares the cache)."""
        suffix = "".join(a.identity for a in self.lora)
        options = [f"engine={self.engine_name}"] if self.engine_name != DEFAULT_ENGINE else []
        if self.flash_attn is not None:
            options.append(f"flash_attn={'on' if self.flash_attn else 'off'}")
        return f"{self.kind}:{self.base_model}{suffix}" + ("?" + "&".join(options) if options else "")

    def cache_identity(self) -> str:
        """``model_id``, plus the content sha256 of a model given as a file: a file rewritten in place (a
        retrained, re-merged student) never serves the replies cached for its old content."""
        if self.base_model in EMBEDDED:
            return self.model_id
        return f"{self.model_id}#sha256={file_sha256(resolve_model_path(self.base_model))}"

    @property
    def engine(self) -> Engine:
        """The loaded engine (loaded on first use)."""
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = self._load()
        return self._engine

    def _prepare(self) -> None:
        self.engine  # noqa: B018 (loads the model: a missing one raises ModelNotInstalledError now)

    def _load(self) -> Engine:
        settings = get_settings()
        config = EngineConfig(
            path=resolve_model_path(self.base_model),
            n_ctx=self.n_ctx or settings.n_ctx,
            n_threads=self.n_threads or settings.n_threads or os.cpu_count() or 1,
            lora=tuple((a.path, a.scale) for a in self.lora),
            logits_all=self.logits_all,
            flash_attn=self.flash_attn,
            poll=settings.poll,
        )
        engine = open_engine(self.engine_name, config)
        # free the model while the interpreter is whole; native finalizers can fail noisily at teardown
        atexit.register(engine.close)
        return engine

    def count_prompt_tokens(self, request: Request) -> int:
        """The prompt's tokens after the chat template: exact (llama-cpp-python) or a safe upper bound."""
        return self.engine.count_prompt_tokens([m.to_dict() for m in request.messages])

    def completion_kwargs(self, request: Request) -> dict[str, Any]:
        """The engine-neutral request (OpenAI chat fields plus json_schema/grammar; shared with benchmarks)."""
        kwargs: dict[str, Any] = {
            "messages": [m.to_dict() for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "stop": list(request.stop) or None,
            "seed": request.seed,
            "json_schema": request.json_schema,
            "grammar": request.grammar,
            "logprobs": request.logprobs,
            # a seed the caller names asks for the same text every time: computed without reusing the
            # engine's cached prompt state, whose logits differ in their last bits (llama.cpp's batch shapes)
            "reproducible": request.seed is not None,
        }
        if request.seed is None and request.temperature > 0:  # distinct, reproducible samples
            kwargs["seed"] = int.from_bytes(
                hashlib.sha256(f"sample-{request.sample_index}".encode()).digest()[:4], "little"
            )
        return kwargs

    def _checked_engine(self, request: Request) -> Engine:
        engine = self.engine
        if request.logprobs and engine.needs_logits_all and not self.logits_all:
            raise ConfigurationError(
                f"logprobs on the {engine.name} engine need the model loaded with logits_all: "
                f"LlamaCppBackend({self.model!r}, engine={engine.name!r}, logits_all=True)"
            )
        return engine

    def _generate(self, request: Request) -> Completion:
        return self._completion(request, self._checked_engine(request).chat(self.completion_kwargs(request)))

    def _stream(self, request: Request, emit: Emit) -> Completion:
        return self._completion(request, self._checked_engine(request).stream(self.completion_kwargs(request), emit))

    def _completion(self, request: Request, out: dict[str, Any]) -> Completion:
        """A ``Completion`` of the engine's chat dict; a stream stopped early is charged its prompt's bound."""
        choice = out["choices"][0]
        prompt_tokens = out["usage"]["prompt_tokens"]
        if prompt_tokens is None:
            prompt_tokens = self.count_prompt_tokens(request)
        logprobs = None
        if request.logprobs and choice.get("logprobs"):
            logprobs = answer_logprobs(choice["logprobs"]["content"])
        return Completion(
            text=choice["message"]["content"] or "",
            prompt_tokens=prompt_tokens,
            completion_tokens=out["usage"]["completion_tokens"],
            finish_reason=choice.get("finish_reason") or "stop",
            logprobs=logprobs,
        )
