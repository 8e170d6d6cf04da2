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
