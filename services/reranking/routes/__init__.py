"""HTTP routes of the reranking service."""
