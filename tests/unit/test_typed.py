import json

import pytest
from pydantic import BaseModel

import compound
from compound import OutputParseError, ScriptedBackend
from compound.models import schemas
from compound.models.typed import call_typed


class City(BaseModel):
    city: str
    country: str


def test_valid_reply_parses_and_the_schema_is_sent():
    model = ScriptedBackend(['{"city": "Lyon", "country": "France"}'])
    out = call_typed(City, "Give a city", model=model)
    assert out.value == City(city="Lyon", country="France")
    assert not out.repaired
    req = model.requests[0]
    closed = {**City.model_json_schema(), "additionalProperties": False}
    assert req.json_schema == schemas.decoding_schema(closed, req.max_tokens)
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


class Topic(BaseModel):
    topic: str


def test_a_one_str_field_output_asked_as_text_sends_no_schema_and_takes_the_whole_reply():
    from compound.models.typed import output_spec

    model = ScriptedBackend(["  Cooking at home \n"])
    out = call_typed(output_spec(Topic, "text"), "What is it about?", model=model)
    assert out.value == Topic(topic="Cooking at home")
    req = model.requests[0]
    assert req.json_schema is None
    assert "topic only, as plain text" in req.messages[0].content and "JSON object" not in req.messages[0].content


def test_an_empty_text_reply_is_repaired_in_words_then_refused_with_every_generation():
    from compound.models.typed import output_spec

    model = ScriptedBackend(["   ", "Gardening"])
    out = call_typed(output_spec(Topic, "text"), "What is it about?", model=model)
    assert out.value.topic == "Gardening" and out.repaired
    repair = model.requests[1].messages[-1].content
    assert "empty" in repair and "topic only" in repair and "JSON" not in repair
    with pytest.raises(OutputParseError) as e:
        call_typed(output_spec(Topic, "text"), "?", model=ScriptedBackend(["", " "]))
    assert len(e.value.generations) == 2


@pytest.mark.parametrize("output", [City, {"type": "object"}])
def test_text_format_refuses_an_output_that_is_not_one_str_field(output):
    from compound.models.typed import output_spec

    with pytest.raises(compound.ConfigurationError, match="one str field"):
        output_spec(output, "text")
    with pytest.raises(compound.ConfigurationError, match="output format"):
        output_spec(City, "yaml")


def test_a_text_step_shows_its_demos_as_plain_text_and_refuses_a_wrong_output_at_construction():
    model = ScriptedBackend(["Sport"])
    step = compound.Predict("text -> topic", demos=[{"text": "a goal", "topic": "Football"}], output_format="text")
    step.model = model
    assert step(text="a try").topic == "Sport"
    assert [m.content for m in model.requests[0].messages if m.role == "assistant"] == ["Football"]
    with pytest.raises(compound.ConfigurationError, match="one str field"):
        compound.Predict("text -> topic, mood", output_format="text")


def test_a_text_output_restates_the_task_after_the_input_and_keeps_the_format_note_as_system():
    from compound.models.typed import output_spec

    model = ScriptedBackend(["Sport"])
    call_typed(output_spec(Topic, "text"), "row: a goal", model=model, instructions="Name the topic.")
    system, user = model.requests[0].messages
    assert system.role == "system" and "plain text" in system.content and "Name the topic" not in system.content
    assert user.content == "row: a goal\n\nName the topic."
    json_model = ScriptedBackend(['{"topic": "Sport"}'])  # JSON keeps the instruction first, as system
    call_typed(Topic, "row: a goal", model=json_model, instructions="Name the topic.")
    assert json_model.requests[0].messages[0].content.startswith("Name the topic.")
    assert json_model.requests[0].messages[1].content == "row: a goal"
