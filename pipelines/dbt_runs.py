"""What the dbt assets need around `dbt build` and `dbt docs generate`: which dates the incremental models rebuild,
the run's context for the models (raw.run_context), the build log, the subprocess's environment, and the static
docs page. No Dagster here: pipelines/defs/assets/dbt.py and report.py call these."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import duckdb
import polars as pl

from pipelines import warehouse as wh
from pipelines.run_window import Window
from pipelines.settings import DBT_PROJECT_DIR, Settings

# The loads each successful build has taken in (load_log.loaded_at up to loads_through): a run that loads nothing
# itself (the refresh after a UI backfill of raw/orders, pipelines/defs/jobs.py) rebuilds from the earliest date
# loaded since, so its incremental models redo that range only.
BUILDS_DDL = (
    "create table if not exists raw.dbt_builds (run_id varchar, rebuilt_from date, "
    "loads_through timestamp, built_at timestamp)"
)
MANIFEST = DBT_PROJECT_DIR / "target" / "manifest.json"


@dataclass(frozen=True)
class BuildPlan:
    rebuild_from: date | None  # the first order date the incremental models rebuild; None: all of them
    loads_through: datetime | None  # the newest load this build takes in
    full_refresh: bool

    @property
    def args(self) -> list[str]:
        # A run that reloads all history rebuilds the incremental models from scratch (--full-refresh): the same
        # rows, and it is how a changed model or dbt var (new ltv_windows columns, say) reaches them. The models'
        # unit tests check SQL, not data: `make test` runs them (tests/dbt), the daily build does not pay for them.
        build = ["build", "--exclude-resource-type", "unit_test"]
        return [*build, "--full-refresh"] if self.full_refresh else build

    def describe(self, as_of: date | None) -> str:
        return f"dbt build as of {as_of or 'the newest loaded day'}; the incremental models rebuild " + (
            "everything (full refresh)." if self.full_refresh else f"order dates from {self.rebuild_from}."
        )


def plan_build(con: duckdb.DuckDBPyConnection, window: Window, run_id: str, settings: Settings) -> BuildPlan:
    """Decide what the build rebuilds and hand the models the run's point in time, window and margin rate."""
    con.execute(BUILDS_DDL)
    loads_through = con.execute("select max(loaded_at) from raw.load_log").fetchall()[0][0]
    if window.start is not None:
        # Late changes the load found before its window (a refund a month late) widen what the models rebuild.
        rebuild_from = wh.rebuild_start(con, window.start, run_id)
    else:
        rebuild_from = _unbuilt_loads_start(con)
    wh.set_run_context(con, window.as_of, rebuild_from, settings.default_margin_rate)
    full = rebuild_from is None or rebuild_from <= settings.start_date
    return BuildPlan(rebuild_from, loads_through, full)


def record_build(con: duckdb.DuckDBPyConnection, run_id: str, plan: BuildPlan) -> None:
    con.execute(
        "insert into raw.dbt_builds values (?, ?, ?, current_timestamp)",
        [run_id, plan.rebuild_from, plan.loads_through],
    )


def _unbuilt_loads_start(con: duckdb.DuckDBPyConnection) -> date | None:
    """The first order date loaded (or changed) since the last successful build. None (rebuild everything, as a
    hand-started run of the models always did) when there was no build yet or nothing was loaded since."""
    built = con.execute("select max(loads_through) from raw.dbt_builds").fetchall()[0][0]
    if built is None:
        return None
    return con.execute(
        "select min(least(window_start, coalesce(changed_from, window_start))) from raw.load_log where loaded_at > ?",
        [built],
    ).fetchall()[0][0]


def missing_relations(con: duckdb.DuckDBPyConnection, relations: list[tuple[str, str]]) -> list[str]:
    """The names of the (schema, name) relations the warehouse does not have."""
    existing = {schema: wh.table_names(con, schema) for schema in {schema for schema, _ in relations}}
    return sorted(name for schema, name in relations if name not in existing[schema])


def relation_figures(con: duckdb.DuckDBPyConnection, path: list[str], preview_rows: int) -> tuple[int, pl.DataFrame]:
    """(row count, first rows) of a relation."""
    relation = ".".join('"' + part.replace('"', '""') + '"' for part in path)
    rows = con.execute(f"select count(*) from {relation}").fetchall()[0][0]
    return rows, wh.read_frame(con, f"select * from {relation} limit {preview_rows}")


def target_path(settings: Settings) -> Path:
    """One target directory per warehouse: dbt's partial-parse state survives from run to run (the profile names the
    warehouse, and a changed profile forces a full parse)."""
    return DBT_PROJECT_DIR / "target" / f"runs-{hashlib.sha1(str(settings.warehouse).encode()).hexdigest()[:12]}"


@contextmanager
def dbt_environment(settings: Settings, *, read_only: bool = False) -> Iterator[None]:
    """The warehouse and engine limits of these settings for the dbt subprocess (profiles.yml reads them), set for
    the duration only: dagster-dbt starts dbt with this process's environment and takes no other. `read_only`: dbt
    attaches the warehouse read-only (`dbt docs generate`), so that other readers may hold it at the same time."""
    wanted = {
        "CLV_WAREHOUSE": str(settings.warehouse),
        # unset for the build: its partial-parse state (which records the profile's variables) stays valid
        "CLV_WAREHOUSE_READ_ONLY": "true" if read_only else None,
        "CLV_DUCKDB_THREADS": str(settings.duckdb_threads),
        "CLV_DUCKDB_MEMORY_LIMIT": settings.duckdb_memory_limit,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": os.environ.get("DBT_SEND_ANONYMOUS_USAGE_STATS", "false"),
    }
    saved = {name: os.environ.get(name) for name in wanted}
    _set_environment(wanted)
    try:
        yield
    finally:
        _set_environment(saved)


def _set_environment(values: dict[str, str | None]) -> None:
    """Set each variable; None unsets it."""
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


# dbt-docs' page has two template bugs that only show where nothing is served for them, e.g. opened from a file:
# the menu icons are `<use xlink:href="{{ getIcon(...) }}">`, which the browser resolves as a URL before AngularJS
# fills it in (two blocked file:// loads per menu entry: ~300 console errors), and the favicon link is an unbuilt
# webpack placeholder. Fixed in the generated page: AngularJS sets the icon reference once it is interpolated
# (ng-attr-href: SVG 2 `href`), and the favicon is an empty data: URL (no request at all).
STATIC_DOCS_FIXES = (
    ('xlink:href="{{ getIcon(', 'ng-attr-href="{{ getIcon('),
    ("href=\"${require('./assets/favicons/favicon.ico')}\"", 'href="data:,"'),
)


def fix_static_docs(page: str) -> str:
    for broken, fixed in STATIC_DOCS_FIXES:
        page = page.replace(broken, fixed)
    return page


def _docs_hash() -> str:
    return hashlib.sha256(MANIFEST.read_bytes() + repr(STATIC_DOCS_FIXES).encode()).hexdigest()


@contextmanager
def static_docs_target(docs_dir: Path) -> Iterator[Path | None]:
    """A scratch target directory for `dbt docs generate --static` when data/docs/index.html is older than the dbt
    project (or the fixes applied to it), None when the page is current. When the block ends without an error, the
    page generated there is fixed and renamed into place (readers never see half a page)."""
    manifest_hash = _docs_hash()
    stamp = docs_dir / ".manifest-sha256"
    if (docs_dir / "index.html").exists() and stamp.exists() and stamp.read_text() == manifest_hash:
        yield None
        return
    with tempfile.TemporaryDirectory() as scratch:
        yield Path(scratch)
        docs_dir.mkdir(parents=True, exist_ok=True)
        page = fix_static_docs((Path(scratch) / "static_index.html").read_text(encoding="utf-8"))
        (docs_dir / ".index.html.tmp").write_text(page, encoding="utf-8")
        (docs_dir / ".index.html.tmp").replace(docs_dir / "index.html")
    stamp.write_text(manifest_hash)
