"""The embedded default backend: llama.cpp in process, through llama-cpp-python.

Calls on one loaded model are serialized by a lock (a llama.cpp context is not thread-safe); async
callers wait in a worker thread. llama.cpp keeps the KV cache of the last prompt, so calls sharing a
prompt prefix (the same instructions and demos) skip re-reading it.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from compound.core.errors import ConfigurationError
from compound.core.settings import get_settings
from compound.core.types import Completion, Request
from compound.models.base import Backend
from compound.models.embedded import EMBEDDED, get_embedded

_TEMPLATE_TOKENS_PER_MESSAGE = 12  # role markers and separators; generous for ChatML-like templates


def resolve_model_path(model: str) -> Path:
    if model in EMBEDDED:
        return get_embedded(model).path(get_settings().models_dir)
    path = Path(model).expanduser()
    if path.suffix.lower() == ".gguf" and path.exists():
        return path
    raise ConfigurationError(
        f"llama_cpp model {model!r} is neither an embedded model ({', '.join(EMBEDDED)}) nor an existing .gguf file"
    )


# llama-cpp-python's converter allows only a single space between JSON tokens, which forces compact JSON
# and, measured here, changes small models' answers (they were trained on indented JSON). llama.cpp's own
# converter allows a newline and indentation too; so do we.
_COMPACT_SPACE = 'space ::= " "?'
_JSON_SPACE = 'space ::= | " " | "\\n" [ \\t]{0,20}'


@functools.lru_cache(maxsize=64)
def schema_grammar(schema_json: str) -> str:
    """GBNF for a JSON schema (given as canonical JSON text), allowing indented JSON."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    return json_schema_to_gbnf(schema_json).replace(_COMPACT_SPACE, _JSON_SPACE)


@functools.lru_cache(maxsize=64)
def _grammar(text: str) -> Any:
    from llama_cpp import LlamaGrammar

    return LlamaGrammar.from_string(text, verbose=False)


class LlamaCppBackend(Backend):
    kind = "llama_cpp"
    cpu_clock = staticmethod(time.process_time)  # llama.cpp computes on its own native threads
    serialize = True  # a llama.cpp context serves one call at a time

    def __init__(self, model: str, *, n_ctx: int | None = None, n_threads: int | None = None, logits_all: bool = False):
        super().__init__(model)
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.logits_all = logits_all

    _transient = Backend._transient + ("_llm", "_lock", "_chat_formatter")

    def _init_transient(self) -> None:
        super()._init_transient()
        self._llm: Any = None  # each process loads its own copy on first use
        self._lock = threading.Lock()

    @property
    def llm(self) -> Any:
        """The loaded ``llama_cpp.Llama`` (loaded on first use)."""
        if self._llm is None:
            with self._lock:
                if self._llm is None:
                    self._llm = self._load()
        return self._llm

    def _load(self) -> Any:
        try:
            from llama_cpp import Llama
        except ImportError as e:
            raise ConfigurationError(
                "the llama_cpp backend needs llama-cpp-python: pip install 'compound[llama]'"
            ) from e
        settings = get_settings()
        llm = Llama(
            model_path=str(resolve_model_path(self.model)),
            n_ctx=self.n_ctx or settings.n_ctx,
            n_threads=self.n_threads or settings.n_threads or os.cpu_count() or 1,
            logits_all=self.logits_all,
            verbose=False,
        )
        # free the model while the interpreter is whole; at teardown llama-cpp-python's finalizer can fail noisily
        atexit.register(llm.close)
        return llm

    @functools.cached_property
    def _chat_formatter(self) -> Any:
        """The model's own chat template (from the GGUF), to count prompt tokens exactly."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        llm = self.llm
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            return None
        text = llm._model.token_get_text
        return Jinja2ChatFormatter(template, eos_token=text(llm.token_eos()), bos_token=text(llm.token_bos()))

    def count_prompt_tokens(self, request: Request) -> int:
        """The prompt's tokens as the chat template renders them (plus one for a BOS token)."""
        llm = self.llm
        messages = [m.to_dict() for m in request.messages]
        if self._chat_formatter is not None:
            prompt = self._chat_formatter(messages=messages).prompt
            return len(llm.tokenize(prompt.encode(), add_bos=False, special=True)) + 1
        return (
            sum(
                len(llm.tokenize(m["content"].encode(), add_bos=False)) + _TEMPLATE_TOKENS_PER_MESSAGE for m in messages
            )
            + 64
        )

    def completion_kwargs(self, request: Request) -> dict[str, Any]:
        """The arguments of ``Llama.create_chat_completion`` for a request (shared with benchmarks)."""
        kwargs: dict[str, Any] = {
            "messages": [m.to_dict() for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "stop": list(request.stop) or None,
        }
        if request.seed is not None:
            kwargs["seed"] = request.seed
        elif request.temperature > 0:  # distinct, reproducible samples
            kwargs["seed"] = int.from_bytes(
                hashlib.sha256(f"sample-{request.sample_index}".encode()).digest()[:4], "little"
            )
        if request.json_schema is not None:
            kwargs["grammar"] = _grammar(schema_grammar(json.dumps(request.json_schema, sort_keys=True)))
        if request.grammar is not None:
            kwargs["grammar"] = _grammar(request.grammar)
        if request.logprobs:
            if not self.logits_all:
                raise ConfigurationError(
                    f"logprobs need the model loaded with logits_all: LlamaCppBackend({self.model!r}, logits_all=True)"
                )
            kwargs["logprobs"] = True
            kwargs["top_logprobs"] = 1
        return kwargs

    def _generate(self, request: Request) -> Completion:
        kwargs = self.completion_kwargs(request)
        out = self.llm.create_chat_completion(**kwargs)
        choice = out["choices"][0]
        logprobs = None
        if request.logprobs and choice.get("logprobs"):
            logprobs = [float(t["logprob"]) for t in choice["logprobs"]["content"]]
        return Completion(
            text=choice["message"]["content"] or "",
            prompt_tokens=out["usage"]["prompt_tokens"],
            completion_tokens=out["usage"]["completion_tokens"],
            finish_reason=choice.get("finish_reason") or "stop",
            logprobs=logprobs,
        )
