import json

import pytest
from pydantic import BaseModel

import compound
from compound import OutputParseError, ScriptedBackend
from compound.program.typed import call_typed


class City(BaseModel):
    city: str
    country: str


def test_valid_reply_parses_and_the_schema_is_sent():
    model = ScriptedBackend(['{"city": "Lyon", "country": "France"}'])
    out = call_typed(City, "Give a city", model=model)
    assert out.value == City(city="Lyon", country="France")
    assert not out.repaired
    req = model.requests[0]
    assert req.json_schema == {**City.model_json_schema(), "additionalProperties": False}
    assert req.messages[0].role == "system" and '"city"' in req.messages[0].content


class Trip(BaseModel):
    start: City
    stops: list[City]
    properties: int  # a field named like a schema keyword stays a field


def test_the_constraint_forbids_keys_the_output_type_does_not_have_at_every_level():
    # llama.cpp's grammar converter allows extra keys unless told not to: a small model then invents
    # keys after the real ones and runs out of tokens mid-string
    model = ScriptedBackend(['{"start": {"city": "Lyon", "country": "France"}, "stops": [], "properties": 1}'])
    call_typed(Trip, "Plan a trip", model=model)
    schema = model.requests[0].json_schema
    assert schema["additionalProperties"] is False
    assert schema["$defs"]["City"]["additionalProperties"] is False
    assert set(schema["properties"]) == {"start", "stops", "properties"}
    assert schema["properties"]["properties"] == Trip.model_json_schema()["properties"]["properties"]


def test_one_repair_attempt_sees_the_errors():
    model = ScriptedBackend(['{"city": "Lyon"}', '{"city": "Lyon", "country": "France"}'], cycle=False)
    out = call_typed(City, "Give a city", model=model)
    assert out.repaired and out.value.country == "France"
    repair = model.requests[1]
    assert repair.messages[-2].content == '{"city": "Lyon"}'
    assert "country" in repair.messages[-1].content  # the validation error is fed back
    assert out.usage.calls == 2


def test_still_invalid_after_repair_raises_with_the_raw_text():
    model = ScriptedBackend(["not json", "still not json"], cycle=False)
    with pytest.raises(OutputParseError) as info:
        call_typed(City, "Give a city", model=model)
    assert info.value.raw_text == "still not json"
    assert info.value.attempts == ["not json", "still not json"]
    assert len(model.requests) == 2


def test_plain_json_schema_is_validated():
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}, "required": ["n"]}
    model = ScriptedBackend(['{"n": -1}', '{"n": 3}'], cycle=False)
    out = call_typed(schema, "a number", model=model)
    assert out.value == {"n": 3}
    assert "minimum" in model.requests[1].messages[-1].content or "less than" in model.requests[1].messages[-1].content


def test_async_typed_call_matches_sync():
    import asyncio

    model = ScriptedBackend(lambda r: json.dumps({"city": "Oslo", "country": "Norway"}))
    a = call_typed(City, "x", model=model, cache=False)
    b = asyncio.run(compound.acall_typed(City, "x", model=model, cache=False))
    assert a.value == b.value
