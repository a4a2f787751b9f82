"""Dagster's SQLite instance storage with batched writes of a run's per-partition asset events.

`clv run` loads every day since the start: one run over ~1,100 daily partitions of raw/orders. Dagster records one
"materialization planned" and one materialization event per partition, so the UI's partition status tells the
truth. The stock SQLite event log writes each event alone (a connection, a commit and an fsync per shard and event:
20-35 ms each here, 40-75 s for 1,100 partitions). Dagster already hands such events over in batches
(`EventLogStorage.store_event_batch`, enabled by DAGSTER_EVENT_BATCH_SIZE); SQLite's storage only loops over them.
This one writes a batch in one transaction per shard, the same rows the loop would write (about 1 s for 1,100).

Selected by dagster_home/dagster.yaml (`storage: custom:`), so every process that opens the instance (the CLI, the
webserver, the daemon, run workers) writes the same way. tests/ops/test_ui_operations.py fails if a Dagster upgrade
renames the private hooks used here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import yaml
from dagster._config import StringSource
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS, EVENT_TYPE_TO_PIPELINE_RUN_STATUS
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.sqlalchemy_compat import db_result
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage, _event_logs_directory
from dagster._serdes import ConfigurableClassData

# Events Dagster emits with batch metadata (per-partition materializations of one output, the planned events of a
# run) are buffered up to this many, then written by `store_event_batch`. Read by Dagster at each event.
BATCH_SIZE = "5000"


class BatchedSqliteEventLogStorage(SqliteEventLogStorage):
    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(inst_data=inst_data, **config_value)

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        if not events or len({event.run_id for event in events}) != 1:
            super().store_event_batch(events)
            return
        with self.run_connection(events[0].run_id) as conn:
            conn.execute(self.prepare_insert_event_batch(events))
        asset_events = [e for e in events if e.is_dagster_event and e.dagster_event_type in ASSET_EVENTS]
        if asset_events:
            # mirrored in the cross-run index shard, as SqliteEventLogStorage.store_event does one at a time
            with self.index_transaction() as conn:
                ids = []
                for event in asset_events:
                    with db_result(conn, self.prepare_insert_event(event)) as result:
                        ids.append(result.inserted_primary_key[0])
                self._store_asset_event_tags(conn, asset_events, ids)
                # The asset's summary row keeps, per field, the value of the last event that sets it: the last
                # event of each (asset, event type), applied in order, leaves the row one-by-one writes would.
                last = {(e.dagster_event.asset_key, e.dagster_event_type): i for i, e in enumerate(asset_events)}
                for i in sorted(last.values()):
                    self._store_asset_event(conn, asset_events[i], ids[i])
        for event in events:
            if not event.is_dagster_event:
                continue
            if event.dagster_event_type in ASSET_CHECK_EVENTS:
                with self.index_connection() as conn, db_result(conn, self.prepare_insert_event(event)) as result:
                    event_id = result.inserted_primary_key[0]
                self.store_asset_check_event(event, event_id)
            elif event.dagster_event_type in EVENT_TYPE_TO_PIPELINE_RUN_STATUS:
                with self.index_connection() as conn:
                    conn.execute(self.prepare_insert_event(event))


class BatchedSqliteStorage(DagsterSqliteStorage):
    """DagsterSqliteStorage (the default: runs, event logs, schedules under `base_dir`) with the batched event log."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        super().__init__(base_dir, inst_data=inst_data)
        self._event_log_storage = BatchedSqliteEventLogStorage(_event_logs_directory(base_dir))
        os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", BATCH_SIZE)

    @classmethod
    def config_type(cls):
        return {"base_dir": StringSource}

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls.from_local(inst_data=inst_data, **config_value)

    @property
    def event_storage_data(self) -> ConfigurableClassData | None:
        return ConfigurableClassData(
            "pipelines.event_storage",
            "BatchedSqliteEventLogStorage",
            yaml.dump({"base_dir": _event_logs_directory(self.base_dir)}),
        )
