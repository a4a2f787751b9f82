"""Fixtures of the operational tests: private copies of the session's small synthetic shop."""

from __future__ import annotations

import pytest
from _ops_support import copy_data_dir


@pytest.fixture(scope="module")
def shop_copy_factory(small_shop, tmp_path_factory):
    """Returns a function making a private copy of `small_shop`'s data directory (a complete run as of
    2025-12-31), so each module starts from complete marts without paying for another first run."""

    def make(name: str):
        return copy_data_dir(small_shop.data_dir, tmp_path_factory.mktemp(name) / "data")

    return make
