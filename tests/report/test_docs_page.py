"""The dbt docs page's bookkeeping around `dbt docs generate --static` (pipelines/dbt_runs.py), without dbt: when the
page is regenerated, that it is swapped in whole, and the read-only warehouse the docs run uses (so the report can
read the warehouse at the same time)."""

from __future__ import annotations

import os

import pytest

from pipelines.dbt_runs import STATIC_DOCS_FIXES, dbt_environment, static_docs_target
from pipelines.settings import Settings

BROKEN_PAGE = "<html>" + "".join(broken for broken, _ in STATIC_DOCS_FIXES) + "</html>"


def _generate(scratch, page: str = BROKEN_PAGE) -> None:
    (scratch / "static_index.html").write_text(page, encoding="utf-8")


def test_the_page_is_regenerated_once_per_project_and_swapped_in_fixed(tmp_path):
    docs = tmp_path / "docs"
    with static_docs_target(docs) as scratch:
        assert scratch is not None
        _generate(scratch)
        assert not (docs / "index.html").exists(), "the page appears only once it is complete"
    page = (docs / "index.html").read_text(encoding="utf-8")
    assert all(fixed in page and broken not in page for broken, fixed in STATIC_DOCS_FIXES)
    with static_docs_target(docs) as scratch:
        assert scratch is None, "the dbt project did not change: nothing to regenerate"
    (docs / ".manifest-sha256").write_text("another project")
    with static_docs_target(docs) as scratch:
        assert scratch is not None, "the stamp says another project: regenerated"
        _generate(scratch)


def test_a_failed_generation_keeps_the_previous_page(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.html").write_text("the previous page")
    with pytest.raises(RuntimeError), static_docs_target(docs) as scratch:
        _generate(scratch, "half a page")
        raise RuntimeError("dbt failed")
    assert (docs / "index.html").read_text() == "the previous page"
    assert not (docs / ".manifest-sha256").exists(), "the next run tries again"


def test_only_the_docs_run_attaches_the_warehouse_read_only(tmp_path, monkeypatch):
    settings = Settings.from_env()
    monkeypatch.setenv("CLV_WAREHOUSE_READ_ONLY", "true")  # left over in the caller's environment
    with dbt_environment(settings):
        assert "CLV_WAREHOUSE_READ_ONLY" not in os.environ  # the build writes
        assert os.environ["CLV_WAREHOUSE"] == str(settings.warehouse)
    assert os.environ["CLV_WAREHOUSE_READ_ONLY"] == "true"
    monkeypatch.delenv("CLV_WAREHOUSE_READ_ONLY")
    with dbt_environment(settings, read_only=True):
        assert os.environ["CLV_WAREHOUSE_READ_ONLY"] == "true"
    assert "CLV_WAREHOUSE_READ_ONLY" not in os.environ
