"""The optional engine: llama-cpp-python (compiled at install: ``pip install 'compound[llama-cpp-python]'``).

- Safe on AMX CPUs: when the build carries AMX kernels (its system info lists ``AMX``), the model is
  loaded with ``use_extra_bufts = False``, which keeps llama.cpp off ``ggml_backend_amx_mul_mat``
  (upstream llama.cpp #20824). ``make test`` builds it with ``GGML_NATIVE=OFF`` and AVX2, so without AMX.
- JSON schemas become GBNF through llama-cpp-python's converter, with its one-space rule widened to
  allow a newline and indentation (as llama.cpp's own converter does).
- Logprobs need the model loaded with ``logits_all=True``.
- Prompt tokens are counted exactly with the model's chat template from the GGUF.
- Streaming iterates ``create_chat_completion(stream=True)``; closing the iterator stops sampling. Its
  chunks carry no usage: the prompt is counted exactly and each chunk is one sampled token.
- At most one LoRA adapter (llama-cpp-python's limit).
"""

from __future__ import annotations

import functools
import json
import threading
from typing import Any

import llama_cpp
import llama_cpp.llama_cpp as lib
from llama_cpp import Llama, LlamaGrammar

from compound.core.errors import ConfigurationError
from compound.models.engines import Chunks, Engine, EngineConfig, engine_log_enabled, sampling

# llama-cpp-python's converter allows only a single space between JSON tokens, which forces compact JSON
# and, measured here, changes small models' answers (they were trained on indented JSON).
_COMPACT_SPACE = 'space ::= " "?'
_JSON_SPACE = 'space ::= | " " | "\\n" [ \\t]{0,20}'
_TEMPLATE_TOKENS_PER_MESSAGE = 12  # role markers and separators, when a model has no chat template
_load_lock = threading.Lock()  # the AMX-safe load swaps a module function for the duration of one load


@functools.lru_cache(maxsize=64)
def schema_grammar(schema_json: str) -> str:
    """GBNF for a JSON schema (as JSON text, its properties in the schema's own order: the reply
    follows that order, so a step can be made to reason before it answers), allowing indented JSON."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    return json_schema_to_gbnf(schema_json).replace(_COMPACT_SPACE, _JSON_SPACE)


@functools.lru_cache(maxsize=64)
def _grammar(text: str) -> Any:
    return LlamaGrammar.from_string(text, verbose=False)


def system_info() -> str:
    return lib.llama_print_system_info().decode(errors="replace")


def _load(config: EngineConfig, safe: bool) -> Llama:
    if len(config.lora) > 1:
        raise ConfigurationError("the llama-cpp-python engine applies one LoRA adapter at most; use engine='xllamacpp'")
    kwargs: dict[str, Any] = {
        "model_path": str(config.path),
        "n_ctx": config.n_ctx,
        "n_threads": config.n_threads,
        "logits_all": config.logits_all,
        "verbose": engine_log_enabled(),
    }
    if config.flash_attn is not None:
        kwargs["flash_attn"] = config.flash_attn
    if config.lora:
        kwargs["lora_path"], kwargs["lora_scale"] = str(config.lora[0][0]), float(config.lora[0][1])
    if not safe:
        return Llama(**kwargs)
    # Llama() takes no use_extra_bufts argument: set it on the default model parameters it starts from
    default_params = lib.llama_model_default_params

    def without_extra_bufts() -> Any:
        params = default_params()
        params.use_extra_bufts = False
        return params

    with _load_lock:
        lib.llama_model_default_params = without_extra_bufts
        try:
            return Llama(**kwargs)
        finally:
            lib.llama_model_default_params = default_params


class LlamaCppPythonEngine(Engine):
    name = "llama-cpp-python"
    needs_logits_all = True

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config)
        self.amx_safe_load = "AMX" in system_info()
        self.llm: Any = _load(config, safe=self.amx_safe_load)

    def native_request(self, request: dict[str, Any]) -> dict[str, Any]:
        kwargs = sampling(request)
        if request.get("json_schema") is not None:
            kwargs["grammar"] = _grammar(schema_grammar(json.dumps(request["json_schema"])))
        elif request.get("grammar") is not None:
            kwargs["grammar"] = _grammar(request["grammar"])
        if request.get("logprobs"):
            kwargs["logprobs"] = True
            kwargs["top_logprobs"] = 1
        if request.get("reproducible"):
            kwargs["fresh"] = True  # evaluate the whole prompt (see ``fresh``)
        return kwargs

    def fresh(self, native: dict[str, Any]) -> dict[str, Any]:
        """The native request without compound's ``fresh`` flag; when it was set, the model forgets the
        tokens it would otherwise reuse from the last prompt, so a seeded reply does not depend on it."""
        native = dict(native)
        if native.pop("fresh", False):
            self.llm.reset()
        return native

    def call_native(self, native: dict[str, Any]) -> dict[str, Any]:
        return self.llm.create_chat_completion(**self.fresh(native))

    def stream(self, request: dict[str, Any], emit: Any) -> dict[str, Any]:
        native = self.fresh(self.native_request(request))
        tokens = 0

        def counted() -> Any:
            nonlocal tokens
            iterator = self.llm.create_chat_completion(**native, stream=True)
            try:
                for chunk in iterator:
                    tokens += any((c.get("delta") or {}).get("content") for c in chunk["choices"])
                    yield chunk
            finally:
                iterator.close()  # stops sampling where the consumer stopped reading

        reply = Chunks(emit).drain(counted()).reply()
        prompt = self.count_prompt_tokens(request["messages"], exact=True)
        reply["usage"] = {"prompt_tokens": prompt, "completion_tokens": tokens, "total_tokens": prompt + tokens}
        return reply

    @functools.cached_property
    def _chat_formatter(self) -> Any:
        """The model's own chat template (from the GGUF), to count prompt tokens exactly."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            return None
        text = self.llm._model.token_get_text
        return Jinja2ChatFormatter(template, eos_token=text(self.llm.token_eos()), bos_token=text(self.llm.token_bos()))

    def count_prompt_tokens(self, messages: list[dict[str, str]], *, exact: bool = False) -> int:
        """The prompt as the chat template renders it, plus one for a BOS token (an upper bound); with
        ``exact``, the BOS only where the model adds one (the usage of a streamed reply)."""
        llm = self.llm
        if self._chat_formatter is not None:
            prompt = self._chat_formatter(messages=messages).prompt
            if exact:
                return len(llm.tokenize(prompt.encode(), add_bos=True, special=True))
            return len(llm.tokenize(prompt.encode(), add_bos=False, special=True)) + 1
        per = _TEMPLATE_TOKENS_PER_MESSAGE
        return sum(len(llm.tokenize(m["content"].encode(), add_bos=False)) + per for m in messages) + 64

    def close(self) -> None:
        self.llm.close()

    @classmethod
    def info(cls) -> dict[str, Any]:
        system = system_info()
        return {
            "engine": cls.name,
            "version": llama_cpp.__version__,
            "system_info": system.strip(),
            "amx_kernels": "AMX" in system,
        }
