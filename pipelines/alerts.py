"""Someone is told when an unattended run fails: the 02:00 schedule, the raw-files sensor, the automation refresh.

`alert_on_failure` (a run-failure sensor, on by default) writes a short message into the failed run's own log (an
engine event: it shows in the run's page) and, when CLV_ALERT_WEBHOOK_URL is set, POSTs it as Slack-compatible JSON
(`{"text": ...}`; Slack and Mattermost incoming webhooks, Teams via a workflow, or any HTTP endpoint). The message
says the job, the partition(s), the failed step, the cause in one line and the run's address in the UI
(CLV_UI_URL, default http://127.0.0.1:3000). E-mail addresses are redacted (pipelines.privacy.redact): a cause
quoting a bad input row never carries personal data to a chat channel. Runs started by hand (UI, `clv`) are not
alerted: whoever started them sees the failure.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request

import dagster as dg

from pipelines.privacy import redact
from pipelines.run_window import PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG

WEBHOOK_ENV = "CLV_ALERT_WEBHOOK_URL"
UI_URL_ENV = "CLV_UI_URL"
DEFAULT_UI_URL = "http://127.0.0.1:3000"
SCHEDULE_TAG = "dagster/schedule_name"
SENSOR_TAG = "dagster/sensor_name"
MAX_CAUSE_CHARS = 300
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # dbt colours its log lines
DBT_ERRORS = "Errors parsed from dbt logs:"  # dagster-dbt's failure message: the command first, dbt's errors after


def _innermost(error) -> str:
    """The innermost cause of an error, in one line, without Dagster's wrappers."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    cls = getattr(error, "cls_name", None) or ""
    message = getattr(error, "message", None) or str(error)
    if DBT_ERRORS in message:
        message = message.split(DBT_ERRORS, 1)[1]
    message = " ".join(ANSI.sub("", message).split())
    head, sep, rest = message.partition(": ")  # Dagster prefixes the (qualified) class name
    if sep and head.split(".")[-1] == cls:
        message = rest
    return message if cls in ("", "Failure") else f"{cls}: {message}"


def _partitions(tags: dict) -> str:
    if tags.get(RANGE_START_TAG):
        return f"{tags[RANGE_START_TAG]}..{tags.get(RANGE_END_TAG, '?')}"
    return tags.get(PARTITION_TAG) or "none (unpartitioned run)"


def _trigger(tags: dict) -> str | None:
    if tags.get(SCHEDULE_TAG):
        return f"schedule {tags[SCHEDULE_TAG]}"
    if tags.get(SENSOR_TAG):
        return f"sensor {tags[SENSOR_TAG]}"
    return None


def failure_message(
    run: dg.DagsterRun, failure_event: dg.DagsterEvent | None, step_failures: list[dg.DagsterEvent]
) -> str:
    """The alert's text: job, partition(s), trigger, failed step, cause, link. Personal data redacted."""
    if step_failures:
        first = step_failures[0]
        step = first.step_key or "?"
        cause = _innermost(first.step_failure_data.error) if first.step_failure_data.error else first.message
    else:
        step = "none (the run failed outside any step)"
        data = failure_event.job_failure_data if failure_event is not None else None
        error = getattr(data, "error", None)
        cause = _innermost(error) if error is not None else (failure_event.message if failure_event else "unknown")
    cause = " ".join((cause or "unknown").split())
    if len(cause) > MAX_CAUSE_CHARS:
        cause = cause[: MAX_CAUSE_CHARS - 1] + "…"
    url = f"{os.environ.get(UI_URL_ENV, DEFAULT_UI_URL).rstrip('/')}/runs/{run.run_id}"
    job = run.job_name
    if job.startswith("__ASSET_JOB"):  # a run of selected assets (a UI materialisation, the automation refresh)
        job = f"{len(run.asset_selection or ())} assets"
    lines = [
        f"CLV warehouse: run of {job} failed ({_trigger(run.tags) or 'started by hand'}), "
        f"partition {_partitions(run.tags)}.",
        f"Failed step: {step}. Cause: {cause}",
        f"Run: {url}",
    ]
    return redact("\n".join(lines))


def post(url: str, text: str, timeout: float = 10.0) -> None:
    request = urllib.request.Request(
        url, data=json.dumps({"text": text}).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        response.read()


def alert(
    instance: dg.DagsterInstance,
    run: dg.DagsterRun,
    failure_event: dg.DagsterEvent | None,
    step_failures: list[dg.DagsterEvent],
    log=None,
) -> str | None:
    """Writes the message into the run's log and POSTs it to the webhook; None for runs started by hand."""
    if _trigger(run.tags) is None:
        return None
    text = failure_message(run, failure_event, step_failures)
    instance.report_engine_event(f"Failure alert:\n{text}", run)
    url = os.environ.get(WEBHOOK_ENV, "").strip()
    if url:
        try:
            post(url, text)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            note = f"The failure alert could not be POSTed to {WEBHOOK_ENV}: {type(exc).__name__}: {exc}"
            instance.report_engine_event(redact(note), run)
            if log:
                log(note)
    return text
