import compound
from compound import ScriptedBackend


def test_identical_requests_hit_the_cache_and_count_as_cached_usage():
    model = ScriptedBackend(["first", "second"])
    with compound.track_usage() as t:
        a = model.generate("hello")
        b = model.generate("hello")
    assert (a.text, b.text) == ("first", "first")
    assert not a.cached and b.cached
    assert len(model.requests) == 1
    assert t.physical.calls == 1 and t.cached.calls == 1
    assert t.cached.total_tokens == a.usage.total_tokens


def test_n_samples_are_n_entries():
    model = ScriptedBackend([f"s{i}" for i in range(4)])
    first = [model.generate("q", temperature=0.8, sample_index=i).text for i in range(4)]
    again = [model.generate("q", temperature=0.8, sample_index=i).text for i in range(4)]
    assert first == again == ["s0", "s1", "s2", "s3"]
    assert len(model.requests) == 4


def test_cache_can_be_turned_off_per_call_and_per_context():
    model = ScriptedBackend(["a", "b", "c"])
    model.generate("q")
    assert model.generate("q", cache=False).text == "b"
    with compound.context(cache=False):
        assert model.generate("q").text == "c"


def test_hits_are_copies_not_shared_objects():
    model = ScriptedBackend(["x"])
    model.generate("q")
    hit1 = model.generate("q")
    hit1.text = "mutated"
    hit1.usage.prompt_tokens = -1
    hit2 = model.generate("q")
    assert hit2.text == "x" and hit2.usage.prompt_tokens > 0


def test_other_parameters_are_other_entries():
    model = ScriptedBackend(["a", "b"])
    model.generate("q", max_tokens=10)
    assert model.generate("q", max_tokens=11).text == "b"


def test_a_failing_store_write_is_reported_on_flush_not_lost_or_hung():
    import sqlite3

    import pytest

    from compound.store.sqlite import BatchWriter

    def broken():
        raise sqlite3.OperationalError("disk I/O error")

    w = BatchWriter(broken)
    w.put("INSERT INTO x VALUES (?)", (1,))
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        w.flush()
    w.flush()  # the error is reported once; the writer keeps serving


def test_cache_keys_are_the_sorted_json_keys_whatever_the_request():
    """The key is encoded without ``sort_keys`` (key_fields are in canonical order): it must stay the
    sha256 of the sorted JSON, so caches written before keep answering."""
    import hashlib
    import json

    from compound.core.types import Message, Request
    from compound.store.cache import cache_key

    def sorted_everywhere(value):
        if isinstance(value, dict):
            return list(value) == sorted(value) and all(sorted_everywhere(v) for v in value.values())
        return all(sorted_everywhere(v) for v in value) if isinstance(value, list) else True

    requests = [
        Request((Message("user", "hi"),)),
        Request(
            (Message("system", "Réponds en JSON ✓"), Message("user", "q"), Message("assistant", "a")),
            max_tokens=7,
            temperature=0.7,
            top_p=0.9,
            stop=("\n", "END"),
            seed=3,
            json_schema={"type": "object", "properties": {"b": {"type": "string"}, "a": {"type": "integer"}}},
            logprobs=True,
            sample_index=4,
        ),
        Request((Message("user", "x"),), grammar='root ::= "yes" | "no"'),
    ]
    for request in requests:
        fields = request.key_fields()
        assert sorted_everywhere(fields)
        blob = json.dumps(["llama_cpp:m", fields], sort_keys=True, separators=(",", ":"), default=str)
        assert cache_key("llama_cpp:m", fields) == hashlib.sha256(blob.encode()).hexdigest()
    assert len({cache_key("m", r.key_fields()) for r in requests}) == len(requests)


def test_schemas_that_differ_only_in_field_order_are_different_requests():
    """A constrained reply follows the schema's field order, so the order is part of what is asked."""
    from compound.core.types import Message, Request
    from compound.store.cache import cache_key

    def request(properties):
        return Request((Message("user", "q"),), json_schema={"type": "object", "properties": properties})

    first = request({"reasoning": {"type": "string"}, "answer": {"type": "string"}})
    second = request({"answer": {"type": "string"}, "reasoning": {"type": "string"}})
    again = request({"reasoning": {"type": "string"}, "answer": {"type": "string"}})
    assert cache_key("m", first.key_fields()) != cache_key("m", second.key_fields())
    assert cache_key("m", first.key_fields()) == cache_key("m", again.key_fields())
