"""Retrieval: a retriever protocol, BM25 and dense retrievers with indexes kept on disk, and a step."""
