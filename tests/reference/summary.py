"""One summary line written after a reference module's tests (the measured agreement, shown even under -q)."""

from __future__ import annotations

import pytest


def write_summary(request: pytest.FixtureRequest, line: str) -> None:
    """Write ``line`` to the terminal past output capture, when pytest's reporter is there."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\n{line}")
