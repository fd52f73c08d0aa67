"""Kubeconfig rendering (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubetrain_testenv.kubeconfig import render_kubeconfig


def test_token_kubeconfig() -> None:
    config = render_kubeconfig("https://127.0.0.1:1", Path("/ca"), "sa", token="t", namespace="ml")
    assert config["users"] == [{"name": "sa", "user": {"token": "t"}}]
    assert config["contexts"][0]["context"] == {
        "cluster": "testenv",
        "user": "sa",
        "namespace": "ml",
    }
    assert config["clusters"][0]["cluster"] == {
        "server": "https://127.0.0.1:1",
        "certificate-authority": "/ca",
    }


def test_client_certificate_kubeconfig() -> None:
    config = render_kubeconfig(
        "https://h", Path("/ca"), "admin", client_cert=Path("/c"), client_key=Path("/k")
    )
    assert config["users"][0]["user"] == {"client-certificate": "/c", "client-key": "/k"}
    assert "namespace" not in config["contexts"][0]["context"]


def test_exactly_one_credential() -> None:
    with pytest.raises(ValueError):
        render_kubeconfig("https://h", Path("/ca"), "u")
    with pytest.raises(ValueError):
        render_kubeconfig("https://h", Path("/ca"), "u", token="t", client_cert=Path("/c"))
