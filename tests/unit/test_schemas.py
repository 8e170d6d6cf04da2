"""User-written JSON schemas are decoded closed and guarded; cut and looping replies say so."""

import json

import pytest

from compound import OutputParseError, ScriptedBackend
from compound.core.errors import ConfigurationError
from compound.models.schemas import closed_schema, decoding_schema, find_loop
from compound.models.typed import call_typed

PLAIN = {
    "type": "object",
    "properties": {"product": {"type": "string"}, "rating": {"type": "integer"}},
    "required": ["product", "rating"],
}


def test_a_plain_user_schema_is_sent_closed_at_every_level_and_the_reply_checked_closed():
    nested = {
        "type": "object",
        "properties": {"who": {"type": "object", "properties": {"name": {"type": "string"}}}, "n": {"type": "integer"}},
        "$defs": {"x": {"type": "object", "properties": {"y": {"type": "string"}}}},
    }
    model = ScriptedBackend(['{"who": {"name": "Ana", "email": "a@b"}, "n": 1}', '{"who": {"name": "Ana"}, "n": 1}'])
    out = call_typed(nested, "who?", model=model)
    sent = model.requests[0].json_schema
    assert sent["additionalProperties"] is False
    assert sent["properties"]["who"]["additionalProperties"] is False
    assert sent["$defs"]["x"]["additionalProperties"] is False
    # the invented key was refused and repaired: the value meets the closed schema
    assert out.repaired and out.value == {"who": {"name": "Ana"}, "n": 1}
    assert "email" in model.requests[1].messages[-1].content
    assert "additionalProperties" not in nested  # the caller's schema is not changed


def test_an_object_that_says_additional_properties_keeps_it_and_all_of_branches_stay_open():
    schema = {
        "type": "object",
        "properties": {
            "tags": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": True}
        },
        "allOf": [{"properties": {"a": {"type": "string"}}}, {"properties": {"b": {"type": "string"}}}],
    }
    closed = closed_schema(schema)
    assert closed["properties"]["tags"]["additionalProperties"] is True
    assert "additionalProperties" not in closed  # closing an allOf's holder or branches refuses every value
    assert all("additionalProperties" not in branch for branch in closed["allOf"])
    model = ScriptedBackend(['{"a": "x", "b": "y"}'])
    assert call_typed(schema, "?", model=model).value == {"a": "x", "b": "y"}


def test_unbounded_strings_share_a_max_length_from_max_tokens_for_decoding_only():
    schema = {
        "type": "object",
        "properties": {
            "free": {"type": "string"},
            "short": {"type": "string", "maxLength": 5},
            "kind": {"type": "string", "enum": ["a", "b"]},
            "maybe": {"type": ["string", "null"]},
            "list": {"type": "array", "items": {"type": "string"}},
        },
    }
    guarded = decoding_schema(schema, max_tokens=100)
    props = guarded["properties"]
    # 2 * 100 characters shared by free, maybe and the list's items (which count four): 200 // 6
    assert props["free"]["maxLength"] == 33 and props["maybe"]["maxLength"] == 33
    assert props["list"]["items"]["maxLength"] == 33 and props["list"]["maxItems"] == 16
    assert props["short"]["maxLength"] == 5 and "maxLength" not in props["kind"]
    assert decoding_schema({"type": "string"}, max_tokens=2)["maxLength"] == 16  # never below 16
    # the request carries the guard; the reply is validated without it (a longer string is not refused)
    model = ScriptedBackend([json.dumps({"product": "x" * 700, "rating": 3})])
    out = call_typed(PLAIN, "?", model=model, max_tokens=300)
    assert model.requests[0].json_schema["properties"]["product"]["maxLength"] == 600
    assert len(out.value["product"]) == 700


def test_a_reply_cut_at_max_tokens_names_the_cap_and_the_fix():
    runaway = '{"product": "' + "very " * 200
    model = ScriptedBackend([runaway])
    with pytest.raises(OutputParseError) as info:
        call_typed(PLAIN, "?", model=model, max_tokens=40)
    message = str(info.value)
    assert "cut at max_tokens=40" in message and "raise max_tokens" in message and "--max-tokens 80" in message
    assert info.value.generations[-1].finish_reason == "length"


def test_a_looping_reply_is_named_and_the_repair_sees_it_only_up_to_the_loop():
    line = '  "delivery_time_error_reason": "The delivery was delayed.",\n'
    looping = '{\n  "product": "blender",\n  "rating": 2,\n' + line * 30
    model = ScriptedBackend([looping, '{"product": "blender", "rating": 2}'], cycle=False)
    out = call_typed(PLAIN, "?", model=model, max_tokens=120)
    assert out.value == {"product": "blender", "rating": 2}
    shown, repair = model.requests[1].messages[-2:]
    assert shown.content.count("delivery_time_error_reason") == 1
    assert "do not repeat" in repair.content and "times" in repair.content
    with pytest.raises(OutputParseError) as info:
        call_typed(PLAIN, "?", model=ScriptedBackend([looping]), max_tokens=120, parse_repairs=0, cache=False)
    assert "cut at max_tokens=120" in str(info.value) and "a loop the model could not leave" in str(info.value)


def test_find_loop_finds_runaway_repetition_and_nothing_in_ordinary_replies():
    loop = find_loop('{"a": [' + '"x", ' * 20 + '"x')
    assert loop is not None and loop.unit.strip() in ('"x",', ', "x"', '"x", ') and loop.repeats >= 19
    assert find_loop('{"product": "Breville", "rating": 4, "notes": "good good value"}') is None
    assert find_loop("ha ha ha") is None  # too short to be a runaway
    assert find_loop("\n" * 100) is None  # whitespace is bounded by the grammar, not a loop of content


@pytest.mark.parametrize(
    "schema",
    [{"type": "objekt"}, {"properties": {"a": {"type": 3}}}, {"required": "a"}, ["not", "an", "object"]],
)
def test_a_schema_that_is_not_json_schema_is_refused_before_any_call(schema):
    model = ScriptedBackend(["{}"])
    with pytest.raises(ConfigurationError, match="not a (valid )?JSON Schema"):
        call_typed(schema, "?", model=model) if isinstance(schema, dict) else _call_with(schema, model)
    assert model.requests == []


def _call_with(schema, model):
    from compound.models.typed import JSONSchemaOutput

    return call_typed(JSONSchemaOutput(schema), "?", model=model)
