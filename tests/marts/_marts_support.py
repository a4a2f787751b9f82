"""Helpers shared by the mart tests (no fixtures here: each module owns its pipeline run)."""

from __future__ import annotations

import math


def rows(con, sql: str, params=None) -> list[dict]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def same(actual, expected, rel: float = 1e-9, abs_: float = 1e-6) -> bool:
    """Equality with float tolerance; None only equals None."""
    if expected is None or actual is None:
        return actual is None and expected is None
    if isinstance(expected, bool) or isinstance(actual, bool):
        return bool(actual) == bool(expected) and isinstance(actual, bool) == isinstance(expected, bool)
    if isinstance(expected, float) or isinstance(actual, float):
        return math.isclose(float(actual), float(expected), rel_tol=rel, abs_tol=abs_)
    return actual == expected


def diff_rows(actual: list[dict], expected: list[dict], key: tuple[str, ...], columns=None) -> list[str]:
    """Human-readable differences between two row lists matched on `key` (only the expected columns are compared)."""
    problems = []
    act = {tuple(r[k] for k in key): r for r in actual}
    exp = {tuple(r[k] for k in key): r for r in expected}
    for k in sorted(set(exp) - set(act), key=str):
        problems.append(f"missing row {k}")
    for k in sorted(set(act) - set(exp), key=str):
        problems.append(f"unexpected row {k}: {act[k]}")
    for k in sorted(set(exp) & set(act), key=str):
        for col, want in exp[k].items():
            if columns is not None and col not in columns:
                continue
            got = act[k].get(col, "<absent column>")
            if not same(got, want):
                problems.append(f"{k} {col}: expected {want!r}, got {got!r}")
    return problems
