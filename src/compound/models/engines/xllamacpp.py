"""The default engine: llama.cpp's own server, run in process through the prebuilt ``xllamacpp`` wheel.

- Calls go to ``Server.handle_chat_completions`` (no HTTP): llama.cpp applies the model's chat template,
  samples, and reports usage, logprobs (no special load flag needed) and timings.
- One slot (``n_parallel=1``) with ``cache_prompt``: a call whose prompt starts like the previous one
  (the same instructions and demos) reuses that prefix's KV cache instead of re-reading it; the reply's
  ``usage.prompt_tokens_details.cached_tokens`` says how many tokens were reused.
- JSON schemas become llguidance grammars (llama.cpp's own converter) whose whitespace is bounded:
  one space, or a newline and up to 20 spaces or tabs of indentation. Small models were trained on
  indented JSON and answer worse when forced compact; unbounded whitespace lets them loop on newlines.
- Greedy requests (temperature 0, no logprobs) are sent with ``top_k=1``: the server's default sampler
  chain (penalties, top-k 40, typical, top-p, min-p, XTC, temperature) picks the same token, the argmax,
  but first sorts the whole vocabulary for every token it generates.
- Streaming sends the same request with ``stream: true`` and a callback; the callback answers True to stop
  the slot at the next token when the consumer has gone. The last chunk carries the usage.
- LoRA adapters (GGUF) are applied at load with their scales.
- The server's logs are off (verbosity -1) unless ``COMPOUND_ENGINE_LOG=1``.
"""

from __future__ import annotations

import functools
import importlib
import json
import threading
from typing import Any

from compound.core.errors import BackendError, ConfigurationError, ContextLengthError
from compound.models.engines import Chunks, Engine, EngineConfig, engine_log_enabled, sampling

xllamacpp: Any = importlib.import_module("xllamacpp")  # a compiled module without type stubs

# a bounded version of JSON's whitespace: what llama.cpp's GBNF converter allows, and no more
_JSON_WHITESPACE = {"whitespace_pattern": "[ ]?|\n[ \t]{0,20}"}
_SAFETY_TOKENS = 4  # per message, on top of the measured template cost and one token per UTF-8 byte


@functools.lru_cache(maxsize=64)
def schema_grammar(schema_json: str) -> str:
    """The llama.cpp grammar for a JSON schema (as JSON text, its properties in the schema's own order: the reply
    follows that order, so a step can be made to reason before it answers), allowing indented JSON."""
    schema = json.loads(schema_json)
    if isinstance(schema, dict) and "x-guidance" not in schema:
        schema = {**schema, "x-guidance": _JSON_WHITESPACE}
    return xllamacpp.json_schema_to_grammar(json.dumps(schema))


def raise_for_error(reply: dict[str, Any]) -> dict[str, Any]:
    """llama.cpp answers a refused request with ``{"error": {...}}``: turn it into compound's errors."""
    error = reply.get("error")
    if error is None:
        return reply
    message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
    if isinstance(error, dict) and error.get("type") == "exceed_context_size_error":
        raise ContextLengthError(
            f"llama.cpp: {message}. Shorten the input, or load the model with a larger context: "
            f"LlamaCppBackend(model, n_ctx=...) or compound.configure(n_ctx=...)"
        )
    raise BackendError(f"llama.cpp refused the request: {message}")


class XLlamaCppEngine(Engine):
    name = "xllamacpp"

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config)
        params = xllamacpp.CommonParams()
        params.model.path = str(config.path)
        params.n_ctx = config.n_ctx
        params.n_parallel = 1  # one slot: calls are serialized, and the slot keeps the last prompt's cache
        params.cache_prompt = True
        params.cache_ram_mib = 256  # host-memory cache of earlier prompts (default 8 GiB is too much here)
        params.cpuparams.n_threads = config.n_threads
        params.cpuparams_batch.n_threads = config.n_threads
        params.warmup = False
        if config.poll is not None:
            params.cpuparams.poll = params.cpuparams_batch.poll = config.poll
        if config.flash_attn is not None:
            params.flash_attn_type = 1 if config.flash_attn else 0  # -1, llama.cpp's "auto", turns it on for CPUs
        params.verbosity = 3 if engine_log_enabled() else -1
        if config.lora:
            params.lora_adapters = [xllamacpp.CommonAdapterLoraInfo(str(p), float(s)) for p, s in config.lora]
        try:
            self.server: Any = xllamacpp.Server(params)
        except Exception as e:  # the wheel raises a plain RuntimeError/ValueError
            raise ConfigurationError(
                f"llama.cpp could not load {config.path}"
                + (f" with LoRA adapters {[str(p) for p, _ in config.lora]}" if config.lora else "")
                + f": {e}. Run with COMPOUND_ENGINE_LOG=1 to see llama.cpp's log."
            ) from e
        self._template_cost: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def native_request(self, request: dict[str, Any]) -> dict[str, Any]:
        native = {**sampling(request), "cache_prompt": not request.get("reproducible", False)}
        if request.get("json_schema") is not None:
            native["grammar"] = schema_grammar(json.dumps(request["json_schema"]))
        elif request.get("grammar") is not None:
            native["grammar"] = request["grammar"]
        if request.get("logprobs"):
            native["logprobs"] = True
            native["top_logprobs"] = 1
        elif request["temperature"] <= 0:
            native["top_k"] = 1  # greedy: the argmax, without the default chain sorting the vocabulary per token
        return native

    def call_native(self, native: dict[str, Any]) -> dict[str, Any]:
        return raise_for_error(self.server.handle_chat_completions(native))

    def stream(self, request: dict[str, Any], emit: Any) -> dict[str, Any]:
        chunks = Chunks(emit)
        native = {**self.native_request(request), "stream": True, "stream_options": {"include_usage": True}}
        self.server.handle_chat_completions(native, chunks.add)
        if chunks.error is not None:
            raise_for_error(chunks.error)
        return chunks.reply()

    def _prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        reply = self.call_native({"messages": messages, "max_tokens": 1, "temperature": 0.0, "cache_prompt": True})
        return int(reply["usage"]["prompt_tokens"])

    def count_prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        """An upper bound: the template's measured cost plus one token per UTF-8 byte of each message.

        The server has no tokenize call in process, so the template's cost (default system prompt,
        role markers, generation prompt) is measured once with empty messages; no tokenizer makes more
        tokens of a text than it has bytes (byte-level BPE and byte fallback both give at most one)."""
        with self._lock:
            if self._template_cost is None:
                empty = {"role": "user", "content": ""}
                one = self._prompt_tokens([empty])
                three = self._prompt_tokens([empty, {"role": "assistant", "content": ""}, empty])
                self._template_cost = (one, max(0, (three - one + 1) // 2) + _SAFETY_TOKENS)
        fixed, per_message = self._template_cost
        return fixed + sum(len(m["content"].encode()) + per_message for m in messages)

    def close(self) -> None:
        self.server = None

    @classmethod
    def info(cls) -> dict[str, Any]:
        system = xllamacpp.get_system_info()
        return {
            "engine": cls.name,
            "version": xllamacpp.__version__,
            "build": dict(xllamacpp.BUILD_INFO),
            "system_info": system.strip(),
            "amx_kernels": "AMX" in system,
        }
