"""Loading is validation: saved programs, KNN examples and retrieval indexes as an attacker (or a careless
edit, or a disk that lost a write) leaves them.

Every damaged file is refused at load with a ``ConfigurationError`` naming the file and the field or line,
never a TypeError, IndexError or RecursionError at load or at the first call; ``save()`` creates missing
folders or says why it cannot."""

import json
from typing import Literal

import numpy as np
import pytest
from pydantic import BaseModel

from compound.core.errors import ConfigurationError
from compound.optimize.knn import KNNPredict, embed_cached
from compound.program.predict import Predict, Signature
from compound.retrieval.bm25 import BM25Retriever
from compound.retrieval.dense import DenseRetriever


class In(BaseModel):
    text: str


class Out(BaseModel):
    label: Literal["spam", "ham"]
    score: int


def step():
    return Predict(Signature(In, Out, "classify"))


def saved(tmp_path, **parameters):
    path = step().save(tmp_path / "prog.json")
    state = json.loads(path.read_text())
    state["parameters"].update(parameters)
    path.write_text(json.dumps(state))
    return path


BAD_DEMOS = {
    "a label not among the choices": ([{"text": "t", "label": "eggs", "score": 1}], "demos[0]"),
    "a number given as words": ([{"text": "t", "label": "spam", "score": "high"}], "score"),
    "an output missing": ([{"text": "t", "label": "spam"}], "score"),
    "no input field": ([{"label": "spam", "score": 1}], "input fields"),
    "the second demo bad": (
        [{"text": "t", "label": "spam", "score": 1}, {"text": "u", "label": 3, "score": 1}],
        "demos[1]",
    ),
    "a string instead of a demo": (["text: t"], "wrong type"),
    "a dict instead of a list": ({"text": "t"}, "wrong type"),
    "a null": (None, "wrong type"),
}


@pytest.mark.parametrize("name", BAD_DEMOS)
def test_demos_that_do_not_fit_the_signature_are_refused_at_load(tmp_path, name):
    demos, needle = BAD_DEMOS[name]
    path = saved(tmp_path, demos=demos)
    with pytest.raises(ConfigurationError) as caught:
        Predict.load(path, Signature(In, Out, "classify"))
    assert str(path) in str(caught.value) and "'demos'" in str(caught.value) and needle in str(caught.value)


def test_good_demos_load(tmp_path):
    path = saved(tmp_path, demos=[{"text": "t", "label": "ham", "score": 2}])
    assert Predict.load(path, Signature(In, Out, "classify")).demos == [{"text": "t", "label": "ham", "score": 2}]


DEEP = {
    "200,000 lists": "[" * 200_000 + "]" * 200_000,
    "5,000 objects": '{"a":' * 5_000 + "1" + "}" * 5_000,
    "150 levels inside parameters": None,
}


@pytest.mark.parametrize("name", DEEP)
def test_deeply_nested_program_files_are_refused_without_recursion(tmp_path, name):
    path = tmp_path / "prog.json"
    if DEEP[name] is None:
        state = step().state()
        state["parameters"]["demos"] = [
            {"text": "t", "label": "spam", "score": 1, "x": json.loads("[" * 150 + "]" * 150)}
        ]
        path.write_text(json.dumps(state))
    else:
        path.write_text(DEEP[name])
    with pytest.raises(ConfigurationError, match="nests"):
        Predict.load(path, Signature(In, Out, "classify"))


@pytest.mark.parametrize(
    "content,needle",
    [
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"", "not valid JSON"),
        (b'{"format": "compound.program"', "not valid JSON"),
    ],
    ids=["binary", "empty", "cut short"],
)
def test_unreadable_program_files_name_the_file(tmp_path, content, needle):
    path = tmp_path / "prog.json"
    path.write_bytes(content)
    with pytest.raises(ConfigurationError, match=needle) as caught:
        Predict.load(path, Signature(In, Out, "classify"))
    assert str(path) in str(caught.value)


def test_a_missing_program_file_and_a_folder_are_named(tmp_path):
    with pytest.raises(ConfigurationError, match="no such file"):
        Predict.load(tmp_path / "none.json", Signature(In, Out, "classify"))
    with pytest.raises(ConfigurationError, match="directory"):
        Predict.load(tmp_path, Signature(In, Out, "classify"))


def test_save_creates_missing_folders(tmp_path):
    path = step().save(tmp_path / "a" / "b" / "c" / "prog.json")
    assert Predict.load(path, Signature(In, Out, "classify")).signature.outputs is Out
    assert [p.name for p in path.parent.iterdir()] == ["prog.json"]  # no temporary file left


@pytest.mark.parametrize("target", ["under a file", "a folder"])
def test_save_says_why_it_cannot(tmp_path, target):
    (tmp_path / "file").write_text("x")
    path = tmp_path / "file" / "prog.json" if target == "under a file" else tmp_path
    with pytest.raises(ConfigurationError, match="cannot save the program"):
        step().save(path)


# ---- KNN: examples, settings, on-disk index ----


def knn_saved(tmp_path, **parameters):
    path = KNNPredict(Signature(In, Out, "classify"), examples=[{"text": "t", "label": "spam", "score": 1}]).save(
        tmp_path / "knn.json"
    )
    state = json.loads(path.read_text())
    state["parameters"].update(parameters)
    path.write_text(json.dumps(state))
    return path


@pytest.mark.parametrize(
    "parameters,needle",
    [
        ({"examples": [{"text": "t", "label": "maybe", "score": 1}]}, r"examples\[0\]"),
        ({"examples": "all of them"}, "wrong type"),
        ({"k": -3}, "must be >= 0"),
        ({"k": "4"}, "wrong type"),
        ({"k": 2.5}, "wrong type"),
        ({"demo_chars": -1}, "must be >= 0"),
        ({"space": "pixels"}, "wrong type"),
    ],
    ids=["bad example", "examples a string", "k negative", "k a string", "k a float", "demo_chars negative", "space"],
)
def test_knn_settings_are_checked_at_load(tmp_path, parameters, needle):
    path = knn_saved(tmp_path, **parameters)
    with pytest.raises(ConfigurationError, match=needle):
        KNNPredict.load(path, Signature(In, Out, "classify"))


@pytest.mark.parametrize(
    "damage",
    [
        b"not numpy",
        np.zeros((1, 3), dtype="float32"),
        np.zeros((2,), dtype="float32"),
        np.array([["a"], ["b"]]),
        np.full((2, 3), np.nan, dtype="float32"),
    ],
    ids=["garbage", "too few rows", "one dimension", "strings", "NaN"],
)
def test_a_damaged_knn_index_is_computed_again(monkeypatch, damage):
    import compound.optimize.students.embedding as embedding
    from compound.optimize import knn

    monkeypatch.setattr(
        embedding, "embed_texts", lambda texts, model_path=None: np.ones((len(texts), 3), dtype="float32")
    )
    texts = ["a", "b"]
    path = knn._index_path(texts)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(damage, bytes):
        path.write_bytes(damage)
    else:
        np.save(path, damage)
    vectors = embed_cached(texts)
    assert vectors.shape == (2, 3) and np.isfinite(vectors).all()
    assert np.load(path).shape == (2, 3)  # replaced


# ---- retrieval indexes ----


@pytest.fixture
def bm25_index(tmp_path):
    return BM25Retriever(["the cat sat", "a dog barked", "cats and dogs"]).save(tmp_path / "idx")


def edit_manifest(index, **changes):
    manifest = json.loads((index / "manifest.json").read_text())
    manifest.update(changes)
    (index / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    "changes,needle",
    [
        ({"version": "1"}, "version"),
        ({"version": 99}, "newer compound"),
        ({"version": 0}, "version"),
        ({"documents": "3"}, "documents"),
        ({"documents": 5}, "holds 3 documents but the manifest says 5"),
        ({"format": "evil.index"}, "format"),
        ({"kind": "dense"}, "not a 'bm25' one"),
        ({"stopwords": {"a": 1}}, "stopwords"),
    ],
    ids=[
        "version a string",
        "version newer",
        "version zero",
        "count a string",
        "count too high",
        "format",
        "kind",
        "stopwords",
    ],
)
def test_a_damaged_manifest_is_refused_naming_the_field(bm25_index, changes, needle):
    edit_manifest(bm25_index, **changes)
    with pytest.raises(ConfigurationError, match=needle):
        BM25Retriever.load(bm25_index)


@pytest.mark.parametrize(
    "lines,needle",
    [
        (['{"id": "0", "text": "the cat sat", "meta": {}}'], "holds 1 documents"),
        (['{"id": "0", "text": "the cat sat"', "", ""], "line 1"),
        (['{"id": 0, "text": "x"}'] * 3, "id"),
        (['{"id": "0", "text": ["x"]}'] * 3, "text"),
        (['{"id": "0", "text": "x"}', '{"id": "0", "text": "y"}', '{"id": "2", "text": "z"}'], "appears twice"),
        (["[" * 100_000 + "]" * 100_000] * 3, "nests"),
        (['{"id": "0", "text": "x", "meta": []}'] * 3, "meta"),
    ],
    ids=["fewer documents", "cut short", "id a number", "text a list", "duplicate id", "deep", "meta a list"],
)
def test_damaged_documents_are_refused_naming_the_line(bm25_index, lines, needle):
    (bm25_index / "documents.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigurationError, match=needle):
        BM25Retriever.load(bm25_index)


def test_a_bm25_index_over_other_documents_is_refused(tmp_path, bm25_index):
    other = BM25Retriever(["one", "two", "three", "four"]).save(tmp_path / "other")
    (other / "documents.jsonl").write_text((bm25_index / "documents.jsonl").read_text())
    edit_manifest(other, documents=3)
    with pytest.raises(ConfigurationError, match="BM25 index holds 4"):
        BM25Retriever.load(other)


def test_a_deep_manifest_and_a_missing_folder_are_named(tmp_path, bm25_index):
    (bm25_index / "manifest.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ConfigurationError, match="manifest"):
        BM25Retriever.load(bm25_index)
    with pytest.raises(ConfigurationError, match="no such folder"):
        BM25Retriever.load(tmp_path / "nothing")


def test_a_bm25_index_loads_and_searches_after_all_the_checks(bm25_index):
    hits = BM25Retriever.load(bm25_index).search("cat", k=1)
    assert hits and hits[0].document.text == "the cat sat"


def test_save_of_an_index_creates_folders_or_says_why(tmp_path):
    assert BM25Retriever(["hello world"]).save(tmp_path / "deep" / "er" / "idx").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigurationError, match="cannot save the bm25 index"):
        BM25Retriever(["hello world"]).save(tmp_path / "file")


def dense_index(tmp_path, embeddings, dims=3, count=2):
    path = tmp_path / "dense"
    path.mkdir()
    manifest = {
        "format": "compound.index",
        "version": 1,
        "kind": "dense",
        "documents": count,
        "model": "m",
        "dims": dims,
    }
    (path / "manifest.json").write_text(json.dumps(manifest))
    (path / "documents.jsonl").write_text(
        "".join(json.dumps({"id": str(i), "text": f"d{i}"}) + "\n" for i in range(count))
    )
    if isinstance(embeddings, bytes):
        (path / "embeddings.npy").write_bytes(embeddings)
    else:
        np.save(path / "embeddings.npy", embeddings)
    return path


@pytest.mark.parametrize(
    "embeddings,needle",
    [
        (np.zeros((3, 3), dtype="float32"), "embeddings file holds 3"),
        (np.zeros((2, 4), dtype="float32"), "shape"),
        (np.zeros((2,), dtype="float32"), "shape"),
        (np.array([["a"] * 3] * 2), "shape"),
        (b"\x93NUMPY garbage", "cannot be loaded"),
    ],
    ids=["more rows", "other width", "one dimension", "strings", "garbage"],
)
def test_dense_embeddings_that_do_not_match_are_refused(tmp_path, embeddings, needle):
    with pytest.raises(ConfigurationError, match=needle):
        DenseRetriever.load(dense_index(tmp_path, embeddings), model_path=tmp_path / "no-model")


def test_a_saved_step_class_is_only_ever_one_of_compounds_and_a_subclass_of_the_programs(tmp_path):
    """A file names each step's class (version 2): a KNNPredict saved from a Predict loads into a Predict;
    a class outside compound is never imported, and one that is not a subclass of the step is refused,
    with nothing set. A version-1 file (no classes named) loads as before."""
    knn = KNNPredict.from_step(step(), [{"text": "hi", "label": "ham", "score": 1}], k=1, demo_chars=50)
    path = knn.save(tmp_path / "knn.json")
    state = json.loads(path.read_text())
    assert state["version"] == 2

    class Holder(Predict):  # a program whose one step sits at path "inner"
        def __init__(self):
            super().__init__(Signature(In, Out, "outer"))
            self.inner = step()

    holder = Holder()
    doc = holder.state()
    doc["modules"]["inner"] = "compound.optimize.knn:KNNPredict"
    doc["parameters"].update({"inner.examples": state["parameters"]["examples"], "inner.k": 1})
    (tmp_path / "holder.json").write_text(json.dumps(doc))
    loaded = Holder().load_state(json.loads((tmp_path / "holder.json").read_text()))
    assert isinstance(loaded.inner, KNNPredict) and loaded.inner.examples[0]["text"] == "hi"
    assert loaded.inner.k == 1 and loaded.inner.demo_chars == 400  # the rest: KNNPredict's defaults

    for where, needle in [
        ("os:system", "not a step class of compound's"),
        ("tests.nowhere:Evil", "not a step class of compound's"),
        ("compound.retrieval.base:Retrieve", "saved as a Retrieve"),
    ]:
        bad = {**doc, "modules": {"inner": where}}
        fresh = Holder()
        with pytest.raises(ConfigurationError, match=needle):
            fresh.load_state(bad, "holder.json")
        assert type(fresh.inner) is Predict and fresh.inner.demos == []  # nothing was set

    old = {k: v for k, v in holder.state().items() if k != "modules"} | {"version": 1}
    old["parameters"]["inner.instructions"] = "from version 1"
    assert Holder().load_state(old).inner.instructions == "from version 1"
