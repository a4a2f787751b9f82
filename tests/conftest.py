"""Shared fixtures. The runner itself lives in tests/pipeline_runner.py (importable from every test module)."""

import pytest

from pipeline_runner import (PROJECT_ROOT, SMALL_SHOP_AS_OF, SMALL_SHOP_CUSTOMERS, PipelineRun,  # noqa: F401
                             pipeline_env, run_clv)


@pytest.fixture(scope="session")
def small_shop(tmp_path_factory) -> PipelineRun:
    """One full run on a small synthetic shop, shared by every test that only reads the marts."""
    return run_clv(tmp_path_factory.mktemp("small_shop"), "run", "--as-of", SMALL_SHOP_AS_OF)
