"""Rank 0's reporting: one Progress object handed to every sink."""

from kubetrain.reporting.sink import Sink

__all__ = ["Sink"]
