"""Rank 0's reporting: one Progress object handed to every sink."""

from kubetrain.reporting.sink import Sink, register_sink_factory

__all__ = ["Sink", "register_sink_factory"]
