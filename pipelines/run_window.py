"""What a run covers: the partition range it loads (plus the look-back) and its point in time (as-of).

Unpartitioned assets (dbt marts, models, reports) read the same range from the run's tags, so every asset of
one run agrees on one as-of date.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # settings imports the sources, which use Window
    from pipelines.settings import Settings

AS_OF_TAG = "clv/as_of"
# Widens the order dates a run reloads beyond its partitions (honoured for runs launched with it by hand or by
# older versions). `clv run` no longer uses it: it runs every partition up to the as-of day as one range, so the
# UI shows each loaded day as materialized (the event storage records ~1,100 partitions in about a second).
LOAD_START_TAG = "clv/load_start"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"


@dataclass(frozen=True)
class Window:
    """The one window type: the inclusive range of order dates a run loads (its partitions plus the look-back) and
    its point in time `as_of` (what the sources may know, and the date the marts are as of). A run that loads no
    partition (the refresh after a raw load, a hand-run model) has no start or end; `bounded` gives the window a
    load reads."""

    start: date | None  # the first partition minus the look-back, clamped to the first partition
    end: date | None  # the last partition
    as_of: date | None  # None: nothing loaded yet
    first_partition: date = date(2000, 1, 1)  # rows dated before it belong to no partition: rejected, not lost
    partition_start: date | None = None  # the first partition itself (for the run's log)

    def bounded(self, start: date, end: date) -> Window:
        """This window with a start and an end where it has none (a load of everything up to `end`)."""
        end = self.end or end
        return replace(self, start=self.start or start, end=end, as_of=self.as_of or end)

    def split(self, days: int) -> list[Window]:
        """Consecutive sub-windows of at most `days` order dates each, covering this window."""
        starts = [self.start + timedelta(days=d) for d in range(0, (self.end - self.start).days + 1, days)]
        return [replace(self, start=s, end=min(s + timedelta(days=days - 1), self.end)) for s in starts]


def partition_range_from_tags(tags: dict) -> tuple[date | None, date | None]:
    if RANGE_START_TAG in tags and RANGE_END_TAG in tags:
        return date.fromisoformat(tags[RANGE_START_TAG]), date.fromisoformat(tags[RANGE_END_TAG])
    if PARTITION_TAG in tags:
        day = date.fromisoformat(tags[PARTITION_TAG])
        return day, day
    return None, None


def as_of_problem(
    as_of: date, named: str, first_partition: date, partition_start: date | None = None, start_named: str = ""
) -> str | None:
    """Why a run cannot be as of `as_of` (one line, in the words of whoever asked for it: `named` is e.g.
    "--as-of 2030-01-01"), or None. In the future nothing is known yet; before the partitions the run loads, or
    before the first partition, the marts would be rebuilt from orders the run does not load (empty, or rolled back
    in time) and published."""
    today = datetime.now(UTC).date()
    if as_of > today:
        return f"{named} is in the future (today is {today} UTC): nothing after today is known yet"
    if partition_start is not None and as_of < partition_start:
        return f"{named} is before {start_named or 'the first partition of the run'} {partition_start}"
    if as_of < first_partition:
        return f"{named} is before the first partition {first_partition} (CLV_START_DATE / --start-date)"
    return None


def resolve(tags: dict, settings: Settings, latest_loaded: date | None) -> Window:
    """The as-of date is explicit (CLV_AS_OF / --as-of / the clv/as_of tag) or the newest loaded day, so
    re-running an old day never rolls the marts back in time. An explicit as-of the run cannot use (in the future,
    before its partitions or before the first partition: `as_of_problem`) is a ValueError, so a run launched from
    the UI or the schedule with one fails at its first step, before anything is loaded or published."""
    start, end = partition_range_from_tags(tags)
    load_start = max(settings.start_date, start - timedelta(days=settings.lookback_days)) if start else None
    if load_start and tags.get(LOAD_START_TAG):
        load_start = max(settings.start_date, min(load_start, date.fromisoformat(tags[LOAD_START_TAG])))
    explicit = date.fromisoformat(tags[AS_OF_TAG]) if tags.get(AS_OF_TAG) else settings.as_of
    if explicit:
        named = (
            f"as-of {explicit} (the run's {AS_OF_TAG} tag)"
            if tags.get(AS_OF_TAG)
            else f"as-of {explicit} (CLV_AS_OF or the warehouse resource's as_of)"
        )
        problem = as_of_problem(explicit, named, settings.start_date, start, "the run's first partition")
        if problem:
            raise ValueError(f"The run's {problem}.")
        as_of = explicit
    else:
        candidates = [d for d in (end, latest_loaded) if d is not None]
        as_of = max(candidates) if candidates else None
    return Window(load_start, end, as_of, first_partition=settings.start_date, partition_start=start)
