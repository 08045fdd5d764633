"""Stems: identity (signatures), the write-once store, and lookup by signature."""
