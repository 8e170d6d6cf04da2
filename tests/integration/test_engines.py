"""The in-process engines on the real embedded models: long prompts, constraints, prefix reuse."""

import pytest

import compound
from compound.models.embedded import EMBEDDED
from compound.models.llama_cpp import LlamaCppBackend

# a prompt of well over 200 tokens on every embedded model's tokenizer
LONG_PROMPT = (
    "Read the notes below, then answer the question at the end in one short sentence.\n\n"
    + "\n".join(
        f"Note {i}: the shipment of item {i} left the warehouse in district {i % 7} on day {i * 3} "
        f"and reached the customer after {i % 5 + 1} days."
        for i in range(1, 13)
    )
    + "\n\nQuestion: from which district did the shipment of item 8 leave?"
)
INSTALLED = [name for name, m in EMBEDDED.items() if m.installed()]


@pytest.mark.parametrize("name", INSTALLED)
def test_a_long_prompt_runs_through_each_installed_embedded_model(name):
    model = LlamaCppBackend(name, n_ctx=2048)
    g = model.generate(LONG_PROMPT, max_tokens=12, cache=False)
    assert g.usage.prompt_tokens >= 200
    assert 0 < g.usage.completion_tokens <= 12 and g.text.strip()
    assert g.usage.cpu_s > 0
    assert (
        model.count_prompt_tokens(compound.Request((compound.Message("user", LONG_PROMPT),))) >= g.usage.prompt_tokens
    )


def test_a_gbnf_grammar_constrains_the_reply(small_model):
    grammar = 'root ::= "yes" | "no"'
    texts = {
        small_model.generate(f"Is {x} a fruit?", grammar=grammar, max_tokens=8, cache=False).text
        for x in ["a pear", "a car", "rice"]
    }
    assert texts <= {"yes", "no"}


def test_a_json_schema_reply_is_json_from_the_first_token(small_model):
    """The schema's grammar starts at the first token: no code fence, no preamble, even when cut short."""
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    g = small_model.generate(
        "Reply in JSON: what is the capital of Italy?", json_schema=schema, max_tokens=4, cache=False
    )
    assert g.text.lstrip().startswith("{") and "`" not in g.text


def test_a_json_schema_reply_keeps_the_schemas_field_order(small_model):
    """Fields come in the order the schema lists them, not sorted: a step that reasons before it answers
    must get to reason first, and a student trained on replies in field order meets the same order."""
    schema = {
        "type": "object",
        "properties": {"zeta": {"type": "integer"}, "alpha": {"type": "integer"}},
        "required": ["zeta", "alpha"],
    }
    g = small_model.generate("Reply in JSON with two small numbers.", json_schema=schema, max_tokens=24, cache=False)
    assert 0 <= g.text.index('"zeta"') < g.text.index('"alpha"'), g.text


def test_a_repeated_prefix_is_not_read_again(small_model):
    """llama.cpp's prompt cache: the second call re-reads only what differs from the first."""
    engine = small_model.engine
    system = {"role": "system", "content": LONG_PROMPT}

    def call(question: str) -> dict:
        request = small_model.completion_kwargs(
            compound.Request(
                (compound.Message("system", LONG_PROMPT), compound.Message("user", question)), max_tokens=2
            )
        )
        assert request["messages"][0] == system
        return engine.chat(request)

    call("Which item went furthest?")
    second = call("Which district appears most?")
    prefix_tokens = second["usage"]["prompt_tokens"] - 30  # the question and the template's tail are < 30
    assert second["usage"]["prompt_tokens_details"]["cached_tokens"] >= prefix_tokens >= 200
    assert second["timings"]["prompt_n"] < 30


def test_greedy_with_top_k_1_gives_what_the_default_sampler_chain_gives(small_model):
    """The engine sends greedy requests with top_k=1 (engines/xllamacpp.py): the same tokens as the
    server's full default chain at temperature 0, including under a grammar."""
    engine = small_model.engine
    grammar = 'root ::= "yes" | "no" | "maybe"'
    for prompt, extra in [(LONG_PROMPT, {}), ("Is a tomato a fruit?", {"grammar": grammar})]:
        request = {"messages": [{"role": "user", "content": prompt}], "max_tokens": 24, "temperature": 0.0}
        native = {**engine.native_request({**request, "top_p": 1.0, **extra}), "cache_prompt": False}
        assert native["top_k"] == 1  # both read the prompt afresh: a reused prefix can itself tip a near-tie
        ours = engine.call_native(native)
        default = engine.call_native({**native, "top_k": 40})
        assert ours["choices"][0]["message"]["content"] == default["choices"][0]["message"]["content"]


def test_the_llama_cpp_python_engine_behind_the_same_interface(small_model):
    pytest.importorskip("llama_cpp", reason="the optional llama-cpp-python engine is not installed")
    from pydantic import BaseModel

    class City(BaseModel):
        city: str
        country: str

    other = LlamaCppBackend("smollm2-135m", n_ctx=2048, engine="llama-cpp-python")
    assert other.model_id != small_model.model_id  # engines may differ in greedy output: never share cache
    out = compound.call_typed(City, "Give a city and its country.", model=other, max_tokens=48)
    assert out.value.city
    g = other.generate(LONG_PROMPT, max_tokens=4, cache=False)
    counted = other.count_prompt_tokens(compound.Request((compound.Message("user", LONG_PROMPT),)))
    assert 0 <= counted - g.usage.prompt_tokens <= 1  # exact, give or take a BOS token


def test_llama_cpp_python_loads_without_extra_buffer_types_when_asked():
    """The AMX-safe load (used when the build has AMX kernels): use_extra_bufts is off for that load only."""
    pytest.importorskip("llama_cpp", reason="the optional llama-cpp-python engine is not installed")
    import llama_cpp.llama_cpp as lib

    from compound.models.engines import EngineConfig
    from compound.models.engines.llama_cpp_python import _load
    from compound.models.llama_cpp import resolve_model_path

    seen = []
    default_params = lib.llama_model_default_params
    original_model = lib.llama_model_load_from_file

    def spy(path, params):
        seen.append(params.use_extra_bufts)
        return original_model(path, params)

    lib.llama_model_load_from_file = spy
    try:
        llm = _load(EngineConfig(path=resolve_model_path("smollm2-135m"), n_ctx=512, n_threads=2), safe=True)
    finally:
        lib.llama_model_load_from_file = original_model
    assert seen == [False] and lib.llama_model_default_params is default_params
    out = llm.create_chat_completion(messages=[{"role": "user", "content": LONG_PROMPT}], max_tokens=4)
    assert out["usage"]["prompt_tokens"] >= 200
    llm.close()


#: an ordinary user schema (two properties, required, no additionalProperties): open, the 135M model
#: invented keys after these until it ran out of tokens
DELIVERY = {
    "type": "object",
    "properties": {"delivery_status": {"type": "string"}, "days_late": {"type": "integer"}},
    "required": ["delivery_status", "days_late"],
}
REVIEW = (
    "Order #4471 arrived two days late. The courier left the box at the wrong door and I had to walk around the "
    "block to find it. Inside, the blender was intact, but the lid had a small crack. I emailed support on Monday "
    "and heard back on Thursday; they offered a replacement lid or a 15 percent refund. I took the refund. "
    "Extract the delivery details from this review."
)


@pytest.mark.parametrize("engine", ["xllamacpp", "llama-cpp-python"])
def test_each_engine_decodes_a_plain_schema_closed_and_enforces_the_string_and_array_bounds(engine):
    if engine == "llama-cpp-python":
        pytest.importorskip("llama_cpp", reason="the optional llama-cpp-python engine is not installed")
    import jsonschema

    model = LlamaCppBackend("smollm2-135m", n_ctx=2048, engine=engine)
    out = compound.call_typed(DELIVERY, REVIEW, model=model, max_tokens=256, cache=False)
    jsonschema.validate(out.value, {**DELIVERY, "additionalProperties": False})
    bounded = {
        "type": "object",
        "properties": {"words": {"type": "array", "items": {"type": "string", "maxLength": 6}, "maxItems": 2}},
        "required": ["words"],
        "additionalProperties": False,
    }
    g = model.generate("List ten long English words in JSON.", json_schema=bounded, max_tokens=96, cache=False)
    import json

    words = json.loads(g.text)["words"]
    assert len(words) <= 2 and all(len(w) <= 6 for w in words)  # the grammar itself holds the bounds
