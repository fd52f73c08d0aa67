"""Data: sources, splits, tokenization and the global batch order."""
