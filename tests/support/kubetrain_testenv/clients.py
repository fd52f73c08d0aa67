"""Clients of the generated `kubernetes` package for tests."""

from __future__ import annotations

from pathlib import Path

from kubernetes import client, config


def kubernetes_client(kubeconfig: Path) -> client.ApiClient:
    """An ApiClient authenticated as `kubeconfig` says (admin, a ServiceAccount...)."""
    return config.new_client_from_config(config_file=str(kubeconfig))
