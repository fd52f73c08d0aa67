"""For every test run: the start-up times the cluster fixtures recorded, printed once at the end."""

from __future__ import annotations

import pytest

from kubetrain_testenv.pytest_support import TIMINGS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for what, seconds in TIMINGS.items():
        terminalreporter.write_line(f"kubetrain_testenv: {what}: {seconds:.1f}s")
