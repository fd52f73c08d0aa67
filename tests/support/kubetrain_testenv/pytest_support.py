"""Starting and stopping a control plane from pytest fixtures (test support only)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from .assets import AssetsError
from .control_plane import ControlPlane
from .real_cluster import real_cluster
from .real_node import RealNode

RUN_IDS: list[str] = []
"""Every control plane a fixture started; the session's survivor check reads them."""
TIMINGS: dict[str, float] = {}


@contextmanager
def started_control_plane() -> Iterator[ControlPlane]:
    """A started control plane of its own with no node (API objects only: pods stay Pending;
    for pods, `started_real_cluster`), stopped afterwards (also on failure).

    A failed build of the binaries fails the test with the build's output; it never skips.
    """
    started = time.monotonic()
    cp = ControlPlane()
    RUN_IDS.append(cp.run_id)
    try:
        cp.start()
        TIMINGS.setdefault("control plane start to ready", time.monotonic() - started)
    except AssetsError as exc:
        cp.stop()
        pytest.fail(f"building the control plane failed: {exc}", pytrace=False)
    except BaseException:
        cp.stop()
        raise
    try:
        yield cp
    finally:
        cp.stop()


@contextmanager
def started_real_cluster(
    images: tuple[str, ...] = ("pause", "operator", "trainer"),
    nodes: int = 1,
) -> Iterator[tuple[ControlPlane, list[RealNode]]]:
    """`real_cluster.real_cluster` for fixtures: a failed build fails the test with the build's
    output (it never skips); start-up times go to the session's summary."""
    try:
        with real_cluster(images, TIMINGS, nodes) as (cp, members):
            RUN_IDS.append(cp.run_id)
            yield cp, members
    except AssetsError as exc:
        pytest.fail(f"building what the real node needs failed: {exc}", pytrace=False)
