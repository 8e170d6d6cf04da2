import pytest

from compound import ConfigurationError
from compound.retrieval.base import Document, Retrieve
from compound.retrieval.bm25 import BM25Retriever

POLICIES = [
    Document("refunds", "Refunds are issued within 14 days of purchase to the original payment method."),
    Document("shipping", "Standard shipping takes 3 to 5 business days; express shipping takes 1 day."),
    Document("passwords", "To reset your password, use the link on the login page."),
]


def test_bm25_finds_the_relevant_document():
    r = BM25Retriever(POLICIES)
    hits = r.search("how long does shipping take", k=2)
    assert hits[0].document.id == "shipping"
    assert r.search("refund my purchase", k=1)[0].document.id == "refunds"


def test_bm25_index_persists_without_pickle(tmp_path):
    r = BM25Retriever(POLICIES)
    r.save(tmp_path / "idx")
    files = {p.name for p in (tmp_path / "idx").rglob("*") if p.is_file()}
    assert "manifest.json" in files and not any(f.endswith((".pkl", ".pickle")) for f in files)
    loaded = BM25Retriever.load(tmp_path / "idx")
    assert [h.document.id for h in loaded.search("reset password", k=3)] == [
        h.document.id for h in r.search("reset password", k=3)
    ]


def test_adding_documents_extends_the_index():
    r = BM25Retriever(POLICIES[:1])
    r.add(["Gift cards never expire."])
    assert r.search("gift card expiry", k=1)[0].document.text.startswith("Gift cards")


def test_loading_the_wrong_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigurationError, match="not a compound index"):
        BM25Retriever.load(tmp_path)


def test_retrieve_step_in_a_program():
    step = Retrieve(BM25Retriever(POLICIES), k=1)
    assert step(query="express delivery time") == [POLICIES[1].text]
    assert step.named_parameters() == {"k": 1}
