"""Metrics: losses, evaluation metrics reducible across ranks, throughput and MFU."""
