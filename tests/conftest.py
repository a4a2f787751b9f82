"""Shared fixtures. The runner itself lives in tests/pipeline_runner.py (importable from every test module)."""

import pytest
from pipeline_runner import (
    SMALL_SHOP_AS_OF,
    PipelineRun,  # noqa: F401
    run_clv,
)


@pytest.fixture(scope="session")
def small_shop(tmp_path_factory) -> PipelineRun:
    """One full run on a small synthetic shop, shared by every test that only reads the marts."""
    return run_clv(tmp_path_factory.mktemp("small_shop"), "run", "--as-of", SMALL_SHOP_AS_OF)


@pytest.fixture(autouse=True, scope="session")
def _test_hash_key():
    """In-process code (assets, loaders) uses the tests' key, never a key file in the real ~/.config."""
    import os

    from pipeline_runner import TEST_HASH_KEY_HEX

    previous = os.environ.get("CLV_HASH_KEY")
    os.environ["CLV_HASH_KEY"] = TEST_HASH_KEY_HEX
    yield
    if previous is None:
        os.environ.pop("CLV_HASH_KEY", None)
    else:
        os.environ["CLV_HASH_KEY"] = previous
