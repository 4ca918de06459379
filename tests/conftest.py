"""Suite-wide test options.

The `large` tier: tests marked `@pytest.mark.large` (the 1,000-node simulator
runs, minutes of CPU each) are skipped unless the run asks for them with
`--large` (what `scripts/test --large` passes) or SHOAL_LARGE=1.  The default
suite checks the same properties at a size that fits CI's 15 minutes.
"""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--large", action="store_true", default=False,
                     help="also run the tests marked `large` (1,000-node simulations; env SHOAL_LARGE=1)")


def large_tier_enabled(config: pytest.Config) -> bool:
    return bool(config.getoption("--large")) or os.environ.get("SHOAL_LARGE") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if large_tier_enabled(config):
        return
    skip = pytest.mark.skip(reason="large tier: run with `scripts/test --large` (or SHOAL_LARGE=1)")
    for item in items:
        if item.get_closest_marker("large") is not None:
            item.add_marker(skip)
