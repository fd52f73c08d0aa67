"""Starting and stopping a control plane from pytest fixtures (test support only)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from .assets import AssetsError
from .control_plane import ControlPlane
from .real_cluster import real_cluster
from .real_node import RealNode, leftovers

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


def check_cleaned_up(
    cp: ControlPlane, nodes: list[RealNode], request: pytest.FixtureRequest, what: str
) -> None:
    """After a real cluster stopped: fail if a process or anything of a node survived (`what`
    left things behind); keep its logs when so, when a test failed or KUBETRAIN_TESTENV_KEEP
    is set, else remove its files."""
    left = cp.survivors() + [x for node in nodes for x in leftovers(node)]
    if left or request.session.testsfailed or os.environ.get("KUBETRAIN_TESTENV_KEEP"):
        print(f"\nkubetrain_testenv: logs kept in {cp.root}")
    else:
        cp.remove_files()
    assert not left, f"{what} left things behind: {left}"
