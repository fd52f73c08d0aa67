"""Models: the registry (linear, mlp, cnn, gpt), user factories, init and parameter counts."""

from kubetrain.models.registry import build_model, count_parameters

__all__ = ["build_model", "count_parameters"]
