"""Serve the marts: read-only snapshot + Parquet exports, dbt docs."""

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import dagster as dg

from pipelines import contract
from pipelines.defs.resources import WarehouseResource
from pipelines.publish import publish
from pipelines.settings import DBT_PROJECT_DIR

ALL_MARTS = [dg.AssetKey(["marts", name]) for name in contract.MARTS]
PUBLISHED = dg.AssetKey(["reporting", "published_marts"])


@dg.asset(
    key=PUBLISHED,
    deps=ALL_MARTS,
    group_name="reporting",
    kinds={"duckdb", "parquet"},
    description="Read-only snapshot data/published/warehouse.duckdb and data/exports/<mart>.parquet, "
    "swapped in atomically after every successful run.",
)
def published_marts(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    settings = warehouse.settings()
    counts = publish(
        settings.warehouse,
        settings.published_dir,
        settings.exports_dir,
        threads=settings.duckdb_threads,
        memory_limit=settings.duckdb_memory_limit,
    )
    context.log.info(
        f"Published {len(counts)} marts to {settings.published_dir / 'warehouse.duckdb'} and {settings.exports_dir}."
    )
    return dg.MaterializeResult(
        metadata={
            "snapshot": dg.MetadataValue.path(str(settings.published_dir / "warehouse.duckdb")),
            "exports": dg.MetadataValue.path(str(settings.exports_dir)),
            "row_counts": dg.MetadataValue.json(counts),
        }
    )


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


@dg.asset(
    key=dg.AssetKey(["reporting", "dbt_docs"]),
    deps=ALL_MARTS,
    group_name="reporting",
    kinds={"dbt"},
    description="dbt docs (models, columns, tests, lineage, exposures) as one static page: data/docs/index.html.",
)
def dbt_docs(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    settings = warehouse.settings()
    target = settings.data_dir / "docs"
    # The docs describe the project (models, columns, tests, lineage): regenerate them when the project changed
    # (or the fixes applied to the page).
    manifest_hash = hashlib.sha256(
        (DBT_PROJECT_DIR / "target" / "manifest.json").read_bytes() + repr(STATIC_DOCS_FIXES).encode()
    ).hexdigest()
    stamp = target / ".manifest-sha256"
    if (target / "index.html").exists() and stamp.exists() and stamp.read_text() == manifest_hash:
        context.log.info("dbt project unchanged since the docs were generated: data/docs kept as is.")
        return dg.MaterializeResult(
            metadata={"docs": dg.MetadataValue.path(str(target / "index.html")), "regenerated": False}
        )
    with tempfile.TemporaryDirectory() as scratch:
        # test_polars_marts: the tests of the polars marts (off in the pipeline's dbt build, which runs before the
        # polars assets) are shown in the docs too.
        command = [
            str(Path(sys.executable).parent / "dbt"),
            "docs",
            "generate",
            "--static",
            "--target-path",
            scratch,
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--quiet",
            "--vars",
            "{test_polars_marts: true}",
        ]
        env = {**os.environ, "CLV_WAREHOUSE": str(settings.warehouse), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
        done = subprocess.run(command, cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise dg.Failure(f"dbt docs generate failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        target.mkdir(parents=True, exist_ok=True)
        page = fix_static_docs((Path(scratch) / "static_index.html").read_text(encoding="utf-8"))
        (target / ".index.html.tmp").write_text(page, encoding="utf-8")
        (target / ".index.html.tmp").replace(target / "index.html")
    stamp.write_text(manifest_hash)
    return dg.MaterializeResult(
        metadata={"docs": dg.MetadataValue.path(str(target / "index.html")), "regenerated": True}
    )
