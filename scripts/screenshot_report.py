"""Regenerate docs/report.png (and docs/report-full.png): the README's screenshot of the CLV report.

Runs `clv run --as-of 2025-12-31` on the default synthetic shop (10,000 customers) into a temporary data directory
(./data is never touched), builds the report, and screenshots it in headless Chromium with Playwright.

    .venv/bin/python scripts/screenshot_report.py            # about 2 minutes
    .venv/bin/python scripts/screenshot_report.py --warehouse /path/to/warehouse.duckdb   # reuse a warehouse

Needs /usr/bin/chromium (apt-get install chromium); Playwright's own browser download is not used.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

CHROMIUM = "/usr/bin/chromium"
from pipelines.report.pdf import BROWSER_ARGS  # noqa: E402

CHROMIUM_ARGS = BROWSER_ARGS
AS_OF = "2025-12-31"
MAX_BYTES = 1_500_000


def run_pipeline(data_dir: Path) -> Path:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLV_")}
    env.update(
        {
            "CLV_DATA_DIR": str(data_dir),
            "CLV_RECORD_RUNS": "0",
            "DAGSTER_HOME": str(data_dir / "dagster_home"),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        }
    )
    (data_dir / "dagster_home").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", "--as-of", AS_OF],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"clv run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    print(f"clv run --as-of {AS_OF}: {time.perf_counter() - started:.0f} s")
    return data_dir / "warehouse.duckdb"


def _shrink(png: bytes, target: Path, max_width: int) -> None:
    """Save as an optimised palette PNG no wider than max_width, halving the width until under MAX_BYTES."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    width = min(max_width, image.width)
    while True:
        scaled = (
            image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
            if width < image.width
            else image
        )
        buffer = io.BytesIO()
        scaled.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(buffer, format="PNG", optimize=True)
        if buffer.tell() <= MAX_BYTES or width <= 400:
            break
        width = int(width * 0.8)
    target.write_bytes(buffer.getvalue())
    print(f"{target}: {scaled.width}×{scaled.height}, {buffer.tell() / 1e6:.2f} MB")


def screenshot(report: Path, docs: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1500}, device_scale_factor=1)
            page.goto(report.resolve().as_uri())
            page.wait_for_load_state("load")
            top = page.screenshot(full_page=False)
            full = page.screenshot(full_page=True)
        finally:
            browser.close()
    docs.mkdir(parents=True, exist_ok=True)
    _shrink(top, docs / "report.png", 1280)
    _shrink(full, docs / "report-full.png", 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, help="reuse this warehouse instead of running the pipeline")
    parser.add_argument(
        "--docs", type=Path, default=PROJECT_ROOT / "docs", help="where to write the PNGs (default docs/)"
    )
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} not found: apt-get install chromium")

    from pipelines.report import build_report

    with tempfile.TemporaryDirectory(prefix="clv-report-") as scratch:
        warehouse = args.warehouse.resolve() if args.warehouse else run_pipeline(Path(scratch) / "data")
        result = build_report(warehouse, Path(scratch) / "report")
        print(
            f"report: {len(result.charts)} charts in {result.seconds:.1f} s, {result.path.stat().st_size / 1e6:.2f} MB"
        )
        screenshot(result.path, args.docs)


if __name__ == "__main__":
    main()
