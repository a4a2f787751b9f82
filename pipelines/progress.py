"""`clv`'s progress lines: one per step as it finishes (name, seconds, rows), like a build tool.

A listener on the run's events (DagsterInstance.add_event_listener): it sees every event as it is stored, keeps the
row counts of the step's materializations and the results of its checks, and writes one line when the step ends.
Dagster's full event stream still goes to the run's log file (pipelines/cli.py).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

MAX_LINE = 120
LABEL = 40
NAMED_ASSETS = 3


@dataclass
class _Step:
    started: float | None = None
    rows: dict = field(default_factory=dict)  # asset -> rows (summed over partitions of one run)
    partitions: dict = field(default_factory=lambda: defaultdict(int))
    checks_passed: int = 0
    checks_failed: list = field(default_factory=list)
    check_names: list = field(default_factory=list)


def _rows(metadata: dict) -> int | None:
    for key in ("rows_loaded_this_run", "dagster/row_count"):
        value = metadata.get(key)
        value = getattr(value, "value", value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return int(value)
    return None


class StepProgress:
    def __init__(self, write):
        self.write = write
        self.steps: dict[str, _Step] = defaultdict(_Step)
        self.finished = 0
        self.failed: list[str] = []

    def __call__(self, entry) -> None:
        event = entry.dagster_event
        if event is None or not event.step_key:
            return
        step = self.steps[event.step_key]
        kind = event.event_type_value
        if kind == "STEP_START":
            step.started = entry.timestamp
        elif kind == "ASSET_MATERIALIZATION":
            materialization = event.step_materialization_data.materialization
            name = materialization.asset_key.to_user_string()
            rows = _rows(dict(materialization.metadata))
            if materialization.partition:
                step.partitions[name] += 1
                # every partition of one range carries the run's figure once (rows_loaded_this_run), or its own
                if rows is not None and "rows_loaded_this_run" in materialization.metadata:
                    step.rows[name] = rows
                elif rows is not None:
                    step.rows[name] = step.rows.get(name, 0) + rows
            else:
                step.rows.setdefault(name, rows)
                if rows is not None:
                    step.rows[name] = rows
        elif kind == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            step.check_names.append(f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}")
            if evaluation.passed:
                step.checks_passed += 1
            else:
                warn = getattr(evaluation.severity, "value", "") == "WARN"
                step.checks_failed.append(evaluation.check_name + (" (warning)" if warn else ""))
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
            self._finish(event.step_key, kind, entry.timestamp)

    def _finish(self, key: str, kind: str, ended: float) -> None:
        step = self.steps[key]
        seconds = ended - step.started if step.started else 0.0
        names = list(step.rows)
        if len(names) == 1:
            label = names[0]
        elif len(step.check_names) == 1 and not names:
            label = step.check_names[0]
        else:  # a step of several assets (dbt_models), or one that failed before materialising (raw__orders)
            label = key.replace("__", "/")
        mark = {"STEP_SUCCESS": "ok  ", "STEP_FAILURE": "FAIL", "STEP_SKIPPED": "skip"}[kind]
        if kind == "STEP_SKIPPED":
            self.write(_line(f"  {mark} {label:<{LABEL}} (skipped: an upstream step failed)") + "\n")
            return
        self.finished += 1
        if kind == "STEP_FAILURE":
            self.failed.append(key)
        self.write(_line(f"  {mark} {label:<{LABEL}} {seconds:6.1f} s  {_what(step)}".rstrip()) + "\n")

    def summary(self) -> str:
        return f"{self.finished} steps" + (f", {len(self.failed)} failed" if self.failed else "")


def _what(step: _Step) -> str:
    if not step.rows and len(step.check_names) == 1:  # a step that is one check
        return (
            "passed"
            if step.checks_passed
            else ("failed (a warning: the run goes on)" if step.checks_failed[0].endswith("(warning)") else "FAILED")
        )
    parts = []
    if len(step.rows) == 1:
        name, rows = next(iter(step.rows.items()))
        if rows is not None:
            parts.append(f"{rows:,} rows")
        if step.partitions.get(name, 0) > 1:
            parts.append(f"{step.partitions[name]:,} partitions")
    elif step.rows:
        parts.append(f"{len(step.rows)} assets")
    if step.checks_passed or step.checks_failed:
        checks = f"{step.checks_passed} checks passed"
        if step.checks_failed:
            checks += f", {len(step.checks_failed)} failed: {', '.join(step.checks_failed)}"
        parts.append(checks)
    if len(step.rows) > 1:  # the tables last, largest first, as many as the line holds
        counted = sorted(((r, n) for n, r in step.rows.items() if r is not None), reverse=True)
        parts.append("rows: " + ", ".join(f"{n.split('/')[-1]} {r:,}" for r, n in counted[:NAMED_ASSETS]))
    return "; ".join(parts)


def _line(text: str) -> str:
    return text if len(text) <= MAX_LINE else text[: MAX_LINE - 1] + "…"
