import warnings

from dagster import BackfillPolicy, BetaWarning, DailyPartitionsDefinition

from pipelines.settings import Settings

warnings.filterwarnings("ignore", category=BetaWarning)  # single-run backfill policies are beta, and wanted

# Daily partitions on order date. A backfill over any range runs as ONE run: ingest reads each source file once,
# and dbt and the models run once for the whole range instead of once per day.
daily_partitions = DailyPartitionsDefinition(start_date=Settings.from_env().start_date.isoformat(), timezone="UTC")
single_run_backfill = BackfillPolicy.single_run()
