"""Seeded, deterministic, vectorised generator of a realistic online shop.

The shop feeds cohort analysis, CAC payback and BG/NBD + Gamma-Gamma predictive CLV:

* customers arrive over ``[start_date, end_date]`` with a growth trend, weekly and
  yearly seasonality (November/December and Black Friday peaks); each gets an
  acquisition channel whose shares drift over time and a first product category;
* repeat purchasing is BG/NBD: rate ``lambda ~ Gamma(r, alpha)`` per week (channel and
  first-category dependent), drop-out after each purchase with ``p ~ Beta(a, b)``;
  purchase times follow seasonality through a time change (operational time);
* order values are Gamma-Gamma (``nu ~ Gamma(q, gamma)``, value ``~ Gamma(p, nu)``) times
  a category multiplier; first orders are a bit smaller and often use WELCOME10;
* daily spend per paid channel = channel CAC x expected new customers x noise;
* refunds, cancellations, test orders, zero-value replacements, same-day follow-ups,
  cart events (converted and abandoned) and a small frame of deliberately dirty rows.

Everything is numpy/polars vectorised: 10M orders take a few seconds.

``generate_shop`` runs these stages, in this order (one function each, below):

1. window: calendar, seasonality, channel-share drift, expected arrivals (no randomness);
2. customers & acquisition: arrival times, acquisition channel, first category, BG/NBD and
   Gamma-Gamma traits;
3. purchase process: repeat purchase times (BG/NBD in operational time);
4. abandoned carts, placed in the gaps between a customer's orders;
5. order timeline: first + repeat orders, same-day follow-ups, chronological order;
6. order attributes: channel & category, order value, discounts & free replacements, cost,
   status (cancelled / test), refunds;
7. orders frame (ids, labels, euros);
8. marketing spend; 9. cart events (tracked orders and abandoned carts); 10. dirty rows.

Randomness: one independent numpy stream per stage family (``_Streams``). A stream's stages
draw from it in a fixed order (e.g. ``repeats``: purchase process, then follow-ups; ``carts``:
abandoned carts, tracked orders, cart event times), and that order is part of the output:
moving a draw, or a stage that draws from the same stream, changes every shop.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date
from typing import NamedTuple

import numpy as np
import polars as pl

from pipelines.sources import _synthetic_params as P
from pipelines.sources._synthetic_dirty import make_dirty_orders
from pipelines.sources._synthetic_schema import (
    CART_EVENTS_SCHEMA,
    MARKETING_SPEND_SCHEMA,
    ORDER_COLUMNS,
    ORDERS_SCHEMA,
)

__all__ = [
    "SyntheticShopConfig",
    "SyntheticShop",
    "generate_shop",
    "ORDERS_SCHEMA",
    "MARKETING_SPEND_SCHEMA",
    "CART_EVENTS_SCHEMA",
]

_log = logging.getLogger(__name__)

SECONDS_PER_DAY = 86_400
US = 1_000_000


@dataclass(frozen=True)
class SyntheticShopConfig:
    n_customers: int = 10_000
    start_date: date = date(2024, 1, 1)  # first customer arrival
    end_date: date = date(2026, 12, 31)  # last day with activity (arrivals and orders)
    seed: int = 42
    dirty_rows: int = 25  # number of deliberately bad rows; 0 disables


@dataclass(frozen=True)
class SyntheticShop:
    orders: pl.DataFrame  # clean, typed
    marketing_spend: pl.DataFrame
    cart_events: pl.DataFrame
    dirty_orders: pl.DataFrame  # all columns pl.String, same column names as orders


# =========================================================================== helpers


class _Stopwatch:
    """Logs the time spent per generation stage at DEBUG level."""

    def __init__(self) -> None:
        self._t = time.perf_counter()
        self._stage = "setup"

    def lap(self, next_stage: str) -> None:
        if not _log.isEnabledFor(logging.DEBUG):
            return
        now = time.perf_counter()
        try:
            with open("/proc/self/statm") as fh:
                rss_mb = int(fh.read().split()[1]) * 4096 / 2**20
        except (OSError, ValueError, IndexError):  # pragma: no cover - non-Linux
            rss_mb = float("nan")
        _log.debug("synthetic shop: %-30s %6.2fs  rss %7.0f MB", self._stage, now - self._t, rss_mb)
        self._t, self._stage = now, next_stage


def _calendar(start: date, n_days: int) -> dict[str, np.ndarray]:
    """Per-day calendar features and the seasonality factor (mean 1 over the window)."""
    days = np.datetime64(start, "D") + np.arange(n_days)
    month = days.astype("datetime64[M]").astype(np.int64) % 12  # 0 = Jan
    weekday = (days.astype(np.int64) + 3) % 7  # 0 = Monday
    dom = (days - days.astype("datetime64[M]")).astype(np.int64) + 1
    black_friday = (month == 10) & (weekday == 4) & (dom >= 22) & (dom <= 28)
    cyber = np.zeros(n_days, dtype=bool)
    for k in range(4):  # Black Friday .. Cyber Monday
        idx = np.flatnonzero(black_friday) + k
        cyber[idx[idx < n_days]] = True
    season = P.MONTH_FACTOR[month] * P.WEEKDAY_FACTOR[weekday]
    season = np.where(cyber, season * P.BLACK_FRIDAY_FACTOR, season)
    season = season / season.mean()
    summer = (month >= 5) & (month <= 7)
    return {"month": month, "season": season, "cyber": cyber, "summer": summer}


def _draw_categorical(rng: np.random.Generator, cum: np.ndarray, size: int) -> np.ndarray:
    """Draw from a fixed categorical distribution given its cumulative probabilities."""
    return _bucket(rng.random(size, dtype=np.float32), cum)


def _bucket(u: np.ndarray, cum: np.ndarray) -> np.ndarray:
    """Index of the bucket of ``u`` in cumulative probabilities ``cum`` (few buckets)."""
    out = np.zeros(u.size, dtype=np.int8)
    for c in np.asarray(cum, dtype=u.dtype)[:-1]:
        out += u >= c
    return out


def _channel_shares(t_frac: np.ndarray) -> np.ndarray:
    """Acquisition channel shares at window fraction ``t_frac`` (n, 6), logit-interpolated."""
    l0 = np.log(P.CHANNEL_SHARES_START)
    l1 = np.log(P.CHANNEL_SHARES_END)
    logits = (1.0 - t_frac)[:, None] * l0 + t_frac[:, None] * l1
    w = np.exp(logits - logits.max(axis=1, keepdims=True))
    return w / w.sum(axis=1, keepdims=True)


def _time_of_day(rng: np.random.Generator, size: int) -> np.ndarray:
    """Fraction of the day following an intraday shopping profile."""
    cum = np.cumsum(P.HOUR_WEIGHTS / P.HOUR_WEIGHTS.sum())
    hour = _bucket(rng.random(size, dtype=np.float32), cum)
    return (hour + rng.random(size)) / 24.0


def _labels(values: tuple[str | None, ...], codes: np.ndarray, name: str) -> pl.Series:
    """Map small integer codes to strings (fast polars gather)."""
    idx = pl.Series("idx", codes.astype(np.uint32, copy=False))
    return (
        pl.DataFrame({"v": pl.Series(list(values), dtype=pl.String)})
        .select(pl.col("v").gather(idx).alias(name))
        .to_series()
    )


def _sparse_datetimes(values_us: np.ndarray, idx: np.ndarray, size: int, name: str) -> pl.Series:
    """Datetime("us") series of ``size`` nulls with ``values_us`` at positions ``idx``."""
    return (
        pl.Series(name, [None], dtype=pl.Datetime("us"))
        .extend_constant(None, size - 1)
        .scatter(idx, pl.Series(values_us).cast(pl.Datetime("us")))
    )


def _ids(prefix: str, numbers: pl.Expr, width: int) -> pl.Expr:
    """``prefix`` + zero-padded number, e.g. ``O00000001``."""
    return pl.format(prefix + "{}", (numbers + 10**width).cast(pl.String).str.slice(1))


def _stable_argsort(key: np.ndarray) -> np.ndarray:
    """Deterministic (stable) multi-threaded argsort of an int64 key."""
    return (
        pl.DataFrame({"k": key, "i": np.arange(key.size, dtype=np.int64)})
        .sort("k", maintain_order=True)["i"]
        .to_numpy()
    )


def _cents(x: np.ndarray) -> np.ndarray:
    """Euros -> integer cents (int32: up to 21M EUR per value)."""
    return np.rint(x * 100.0).astype(np.int32)


def _euros(cents: np.ndarray, name: str) -> pl.Series:
    """Integer cents -> Float64 euros; ``k / 100`` is the double nearest to the decimal."""
    # true division in numpy (polars may multiply by 0.01, which is off by an ulp)
    return pl.Series(name, cents.astype(np.float64) / 100.0)


def _draw_per_row(rng: np.random.Generator, cum_table: np.ndarray, row: np.ndarray) -> np.ndarray:
    """One categorical draw per element; ``cum_table[row[i]]`` are its cumulative probabilities."""
    u = rng.random(row.size)
    out = np.zeros(row.size, dtype=np.int8)
    for k in range(cum_table.shape[1] - 1):
        out += u >= cum_table[row, k]
    return out


# =========================================================================== generator


def generate_shop(config: SyntheticShopConfig) -> SyntheticShop:
    """Generate a synthetic shop; the same config always gives identical frames.

    The stages run in a fixed order: stages sharing a random stream must keep it (module docstring).
    """
    _check_config(config)
    clock = _Stopwatch()
    win = _window(config)
    rng = _Streams.from_seed(config.seed)

    clock.lap("customers & acquisition")
    customers, purchase_traits = _customers(win, rng.customers)
    clock.lap("repeat purchases (BG/NBD)")
    repeats = _repeat_purchases(win, customers, purchase_traits, rng.repeats)
    del purchase_traits
    abandoned = _abandoned_carts(win, customers, repeats, rng.carts)  # needs the gaps between orders
    clock.lap("order timeline")
    timeline = _order_timeline(win, customers, repeats, rng.repeats)
    del repeats
    clock.lap("order attributes")
    attrs = _order_attributes(win, customers, timeline, rng.orders)
    converted = _tracked_orders(timeline, attrs, rng.carts)
    clock.lap("orders frame")
    customer_ids = _customer_ids(win.n_customers)
    id_width = max(8, len(str(timeline.ts.size + config.dirty_rows)))  # order ids, dirty rows' included
    arrays = {"ts": timeline.ts, "cust": timeline.cust, **attrs._asdict()}
    del timeline, attrs  # the frame frees each array once converted (peak memory)
    orders = _orders_frame(win, arrays, customer_ids, id_width)
    clock.lap("marketing spend")
    marketing_spend = _marketing_spend(win, rng.spend)
    clock.lap("cart events")
    cart_events = _cart_events(win, converted, abandoned, customer_ids["customer_id"], rng.carts)
    del converted, abandoned
    clock.lap("dirty rows")
    dirty = make_dirty_orders(orders, config, rng.dirty, id_width)
    clock.lap("done")
    return SyntheticShop(orders=orders, marketing_spend=marketing_spend, cart_events=cart_events, dirty_orders=dirty)


def _check_config(config: SyntheticShopConfig) -> None:
    if config.n_customers < 1:
        raise ValueError("n_customers must be >= 1")
    if config.end_date < config.start_date:
        raise ValueError("end_date must be >= start_date")
    if config.dirty_rows < 0:
        raise ValueError("dirty_rows must be >= 0")


# --------------------------------------------------------------------------- 1. window (no randomness)


class _Window(NamedTuple):
    """The shop's size and window, and everything about its days that is not random."""

    start_date: date
    end_date: date
    n_customers: int
    n_days: int
    horizon_s: int  # seconds in the window: order times are in [0, horizon_s)
    start_us: int  # the window's start, microseconds since the epoch
    cal: dict[str, np.ndarray]  # per day: month, season (mean 1), cyber (Black Friday..Cyber Monday), summer
    day_frac: np.ndarray  # per day: its midpoint as a fraction of the window
    channel_shares: np.ndarray  # (n_days, 6): acquisition channel shares per day
    arrival_p: np.ndarray  # per day: probability that a customer arrives that day


def _window(config: SyntheticShopConfig) -> _Window:
    """Calendar, seasonality and drifts of the window (params: MONTH/WEEKDAY/BLACK_FRIDAY factors,
    CHANNEL_SHARES_START/END, ARRIVAL_GROWTH, ARRIVAL_SEASONALITY_POWER).

    The arrival intensity of a day is its seasonality to the power ARRIVAL_SEASONALITY_POWER (> 1:
    peaks amplified) times a linear growth trend (+ARRIVAL_GROWTH over the window).
    """
    n_days = (config.end_date - config.start_date).days + 1
    cal = _calendar(config.start_date, n_days)
    day_frac = (np.arange(n_days) + 0.5) / n_days
    arrival_w = cal["season"] ** P.ARRIVAL_SEASONALITY_POWER * (1.0 + P.ARRIVAL_GROWTH * day_frac)
    return _Window(
        start_date=config.start_date,
        end_date=config.end_date,
        n_customers=int(config.n_customers),
        n_days=n_days,
        horizon_s=n_days * SECONDS_PER_DAY,
        start_us=int(np.datetime64(config.start_date, "us").astype(np.int64)),
        cal=cal,
        day_frac=day_frac,
        channel_shares=_channel_shares(day_frac),
        arrival_p=arrival_w / arrival_w.sum(),
    )


class _Streams(NamedTuple):
    """Independent random streams, one per stage family (their order is part of the output)."""

    customers: np.random.Generator
    repeats: np.random.Generator  # purchase process, then follow-ups
    orders: np.random.Generator  # order attributes
    spend: np.random.Generator
    carts: np.random.Generator  # abandoned carts, tracked orders, cart event times
    dirty: np.random.Generator

    @classmethod
    def from_seed(cls, seed: int) -> _Streams:
        return cls(*(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)))


# --------------------------------------------------------------------------- 2. customers & acquisition


class _Customers(NamedTuple):
    """Per customer; index = customer number - 1, in arrival order."""

    arrival_t: np.ndarray  # arrival = first order, days since start (sorted)
    acq: np.ndarray  # acquisition channel (index into P.CHANNELS)
    first_cat: np.ndarray  # category of the first order (index into P.CATEGORIES)
    nu: np.ndarray  # Gamma-Gamma rate of the order value (mean value P.GG_P / nu before multipliers)


class _PurchaseTraits(NamedTuple):
    """Per customer, BG/NBD; only the purchase process needs them."""

    lam: np.ndarray  # purchase rate while alive, per week
    p_drop: np.ndarray  # drop-out probability after each purchase


def _customers(win: _Window, rng: np.random.Generator) -> tuple[_Customers, _PurchaseTraits]:
    """Customers: when they arrive, through which channel, what they buy first, and their latent traits."""
    arrival_t, arrival_day = _arrivals(win, rng)
    acq, first_cat = _acquisition(win, arrival_day, rng)
    purchase_traits = _purchase_traits(acq, first_cat, rng)
    nu = _spend_trait(acq, rng)
    return _Customers(arrival_t, acq, first_cat, nu), purchase_traits


def _arrivals(win: _Window, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Arrival (first order) times: day ~ the window's arrival intensity, time of day ~ HOUR_WEIGHTS.

    Returns (arrival time in days since start, sorted so that customer ids follow arrival order; arrival day).
    """
    arrival_day = np.repeat(np.arange(win.n_days, dtype=np.int32), rng.multinomial(win.n_customers, win.arrival_p))
    arrival_t = arrival_day + _time_of_day(rng, win.n_customers)  # days since start
    arrival_t.sort()  # customer ids follow arrival order
    return arrival_t, arrival_day


def _acquisition(win: _Window, arrival_day: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Acquisition channel (shares of the arrival day, CHANNEL_SHARES_START -> _END: paid social grows,
    organic shrinks) and first product category (CATEGORY_SHARES tilted per channel by
    CATEGORY_CHANNEL_TILT, e.g. electronics weighted x2 for affiliate customers)."""
    acq = _draw_per_row(rng, np.cumsum(win.channel_shares, axis=1), arrival_day)
    cat_probs = P.CATEGORY_SHARES[None, :] * P.CATEGORY_CHANNEL_TILT
    cat_probs = cat_probs / cat_probs.sum(axis=1, keepdims=True)
    first_cat = _draw_per_row(rng, np.cumsum(cat_probs, axis=1), acq)
    return acq, first_cat


def _purchase_traits(acq: np.ndarray, first_cat: np.ndarray, rng: np.random.Generator) -> _PurchaseTraits:
    """BG/NBD traits (Fader, Hardie & Lee, "Counting your customers the easy way", 2005): purchase rate
    ``lambda ~ Gamma(r, alpha)`` per week and drop-out probability ``p ~ Beta(a, b)``, parameters per
    acquisition channel (BGNBD_PARAMS: email, organic and referral customers buy more often and churn less
    than paid social or affiliate ones); the rate is scaled by the first category (CATEGORY_FREQ_MULT:
    beauty = consumables, electronics = one-off)."""
    params = np.array([P.BGNBD_PARAMS[c] for c in P.CHANNELS])  # (6, 4)
    lam = rng.gamma(params[acq, 0], 1.0 / params[acq, 1])  # purchases per week
    lam *= P.CATEGORY_FREQ_MULT[first_cat]
    p_drop = np.clip(rng.beta(params[acq, 2], params[acq, 3]), 1e-6, 1.0)
    return _PurchaseTraits(lam, p_drop)


def _spend_trait(acq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gamma-Gamma spend trait (as in Fader, Hardie & Lee, "RFM and CLV", 2005): ``nu ~ Gamma(GG_Q,
    rate=GG_GAMMA x CHANNEL_VALUE_MULT)``; a customer's order values are ``Gamma(GG_P, rate=nu)``,
    independent of the purchase process as the model assumes."""
    return rng.gamma(P.GG_Q, 1.0 / (P.GG_GAMMA * P.CHANNEL_VALUE_MULT[acq]))


# --------------------------------------------------------------------------- 3. purchase process


class _Repeats(NamedTuple):
    """Repeat orders, grouped by customer in customer order; within a customer the day never decreases."""

    t: np.ndarray  # days since start
    cust: np.ndarray  # customer index
    seq: np.ndarray  # 1-based repeat number within the customer
    seg_start: np.ndarray  # per customer: index of its first repeat order
    n_rep: np.ndarray  # per customer: number of repeat orders


def _repeat_purchases(
    win: _Window, customers: _Customers, traits: _PurchaseTraits, rng: np.random.Generator
) -> _Repeats:
    """Repeat purchases after the first order: BG/NBD in operational time ``Lambda(t) = int_0^t season``,
    so that repeat purchases follow seasonality (a time change of a homogeneous process)."""
    op_grid = np.concatenate([[0.0], np.cumsum(win.cal["season"])])
    day_grid = np.arange(win.n_days + 1, dtype=np.float64)
    op_arrival = np.interp(customers.arrival_t, day_grid, op_grid)
    op_left = op_grid[-1] - op_arrival  # operational days until the end of the window
    m_cand, n_rep = _repeat_counts(traits, op_left, rng)
    u, rep_cust, seg_start = _first_sorted_uniforms(m_cand, n_rep, rng)
    del m_cand
    u *= op_left[rep_cust]
    u += op_arrival[rep_cust]  # operational time of each repeat purchase
    del op_left, op_arrival
    rep_t = np.floor(np.interp(u, op_grid, day_grid))
    del u
    rep_t = _repeat_times(win, customers.arrival_t, rep_t, rep_cust, rng)
    rep_seq = np.arange(1, rep_t.size + 1, dtype=np.int32) - np.repeat(seg_start, n_rep).astype(np.int32)
    return _Repeats(rep_t, rep_cust, rep_seq, seg_start, n_rep)


def _repeat_counts(
    traits: _PurchaseTraits, op_left: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Number of repeat purchases: Poisson(lambda) purchases while alive over the rest of the window
    (M of them), cut at the drop-out, which comes after a Geometric(p) number of purchases.

    Returns (M, X = number of repeat purchases <= M).
    """
    m_cand = rng.poisson(traits.lam * op_left / 7.0)  # Poisson purchases while alive
    n_alive = rng.geometric(traits.p_drop) - 1  # repeat purchases before drop-out
    return m_cand, np.minimum(m_cand, n_alive)


def _first_sorted_uniforms(
    m_cand: np.ndarray, n_rep: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Given M Poisson-process events on the remaining window, their times are M sorted uniforms; the
    customer makes the first X of them. Draws only those X, per customer, from normalised partial sums
    of exponentials: ``U_(k) = S_k / (S_X + Gamma(M - X + 1))``, ``S_k`` partial sums of Exp(1).

    Returns (U_(k) per repeat order, grouped by customer; its customer; per customer the start of its group).
    """
    n = n_rep.size
    total_rep = int(n_rep.sum())
    rep_cust = np.repeat(np.arange(n, dtype=np.int32), n_rep)
    seg_end = np.cumsum(n_rep)
    seg_start = seg_end - n_rep
    cs = np.cumsum(rng.standard_exponential(total_rep))
    base = np.zeros(n)
    has_prev = seg_start > 0
    base[has_prev] = cs[seg_start[has_prev] - 1]
    denom = rng.standard_gamma((m_cand - n_rep + 1).astype(np.float64))
    has_rep = n_rep > 0
    denom[has_rep] += cs[seg_end[has_rep] - 1] - base[has_rep]
    del has_prev, has_rep, seg_end
    cs -= base[rep_cust]
    cs /= denom[rep_cust]  # now U_(k)
    return cs, rep_cust, seg_start


def _repeat_times(
    win: _Window, arrival_t: np.ndarray, rep_day: np.ndarray, rep_cust: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Time of day of the repeat orders (HOUR_WEIGHTS profile), 1 to 31 minutes after the first order
    at the earliest. ``rep_day`` (float days, consumed) -> times in days since start."""
    rep_t = rep_day
    np.minimum(rep_t, win.n_days - 1, out=rep_t)
    rep_t += _time_of_day(rng, rep_t.size)  # intraday profile
    # a repeat order on the arrival day cannot precede the first order
    min_t = arrival_t[rep_cust] + (60.0 + 1800.0 * rng.random(rep_t.size)) / SECONDS_PER_DAY
    np.maximum(rep_t, min_t, out=rep_t)
    return rep_t


# --------------------------------------------------------------------------- 4. abandoned carts


def _abandoned_carts(
    win: _Window, customers: _Customers, repeats: _Repeats, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Abandoned carts placed so that no order of the customer follows within 7 days.

    Decided here, where the gaps between a customer's orders are known: after an order with
    ABANDON_GAP_PROB, and 8-60 days before the first order with ABANDON_BEFORE_FIRST_PROB; a
    share ABANDON_CHECKOUT_PROB also started the checkout; the value is ``Gamma(GG_P, rate=nu)`` like an
    order's (without the category multiplier).

    Times are in days since start. Repeat days never decrease along a customer's
    sequence (only the time of day may), and follow-ups come < 1.5 h after their order,
    so an event in ``[floor(prev) + 1 day + 2 h, floor(next) - 7 days - 2 h]`` is safe.
    Returns (customer, add_to_cart time in seconds, checkout offset in seconds or -1, value cents).
    """
    arrival_t, nu, n_days = customers.arrival_t, customers.nu, win.n_days
    rep_t, rep_cust, seg_start, n_rep = repeats.t, repeats.cust, repeats.seg_start, repeats.n_rep
    n = arrival_t.size
    total_rep = rep_t.size
    p_gap = P.ABANDON_GAP_PROB
    # gaps after first orders
    g1 = np.flatnonzero(rng.random(n, dtype=np.float32) < p_gap)
    nxt1 = np.full(g1.size, np.inf)
    if total_rep:
        has1 = n_rep[g1] > 0
        nxt1[has1] = rep_t[seg_start[g1[has1]]]
    # gaps after repeat orders
    g2 = np.flatnonzero(rng.random(total_rep, dtype=np.float32) < p_gap)
    nxt2 = np.full(g2.size, np.inf)
    j = g2 + 1
    has2 = j < total_rep
    has2[has2] = rep_cust[j[has2]] == rep_cust[g2[has2]]
    nxt2[has2] = rep_t[j[has2]]
    g_cust = np.concatenate([g1.astype(np.int32), rep_cust[g2]])
    prev = np.concatenate([arrival_t[g1], rep_t[g2]])
    nxt = np.concatenate([nxt1, nxt2])
    del g1, g2, nxt1, nxt2, j, has2
    margin = 2.0 / 24 + 20.0 / 1440  # 2 h + room for the checkout event
    lo = np.floor(prev) + 1.0 + 2.0 / 24
    hi = np.where(np.isinf(nxt), float(n_days), np.floor(np.minimum(nxt, 1e9)) - P.ABANDON_WINDOW_DAYS) - margin
    ok = hi > lo
    g_cust, lo, hi = g_cust[ok], lo[ok], hi[ok]
    t = lo + rng.random(lo.size) * (hi - lo)
    # browsing before the first order (8 to 60 days earlier)
    pre = np.flatnonzero(rng.random(n, dtype=np.float32) < P.ABANDON_BEFORE_FIRST_PROB)
    pre_t = arrival_t[pre] - rng.uniform(P.ABANDON_WINDOW_DAYS + 1, 60.0, pre.size)
    keep = pre_t >= 0
    g_cust = np.concatenate([g_cust, pre[keep].astype(np.int32)])
    t = np.concatenate([t, pre_t[keep]])
    t_s = (t * SECONDS_PER_DAY).astype(np.int64)
    checkout = np.where(rng.random(t_s.size) < P.ABANDON_CHECKOUT_PROB, rng.integers(60, 901, t_s.size), -1)
    value = rng.standard_gamma(P.GG_P, t_s.size) / nu[g_cust]
    return g_cust, t_s, checkout, _cents(np.maximum(value, P.MIN_ORDER_VALUE))


# --------------------------------------------------------------------------- 5. order timeline


class _Timeline(NamedTuple):
    """Every order (first, repeat, follow-up), in chronological order."""

    ts: np.ndarray  # seconds since start
    cust: np.ndarray  # customer index
    seq: np.ndarray  # 0-based order number within the customer (a follow-up shares its order's)
    kind: np.ndarray  # 0 first, 1 repeat, 2 follow-up
    is_first: np.ndarray  # kind == 0


def _order_timeline(win: _Window, customers: _Customers, repeats: _Repeats, rng: np.random.Generator) -> _Timeline:
    """First and repeat orders plus same-day follow-ups, sorted by time (ties: customer, then generation order)."""
    n = win.n_customers
    cust = np.concatenate([np.arange(n, dtype=np.int32), repeats.cust])
    t_days = np.concatenate([customers.arrival_t, repeats.t])
    seq = np.concatenate([np.zeros(n, dtype=np.int32), repeats.seq])
    kind = np.concatenate([np.zeros(n, np.int8), np.ones(repeats.t.size, np.int8)])
    cust, t_days, seq, kind = _add_followups(cust, t_days, seq, kind, rng)
    t_days *= SECONDS_PER_DAY
    ts = np.minimum(t_days.astype(np.int64), win.horizon_s - 1)  # seconds since start
    del t_days
    order = _chronological_order(ts, cust, win.n_customers, win.horizon_s)
    ts, cust, seq, kind = ts[order], cust[order], seq[order], kind[order]
    return _Timeline(ts, cust, seq, kind, kind == 0)


def _add_followups(
    cust: np.ndarray, t_days: np.ndarray, seq: np.ndarray, kind: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Same-day "forgot something" follow-ups (FOLLOWUP_PROB of the orders), 3 to 90 minutes after an order."""
    fu = np.flatnonzero(rng.random(cust.size, dtype=np.float32) < P.FOLLOWUP_PROB)
    fu_t = t_days[fu] + (180.0 + 5220.0 * rng.random(fu.size)) / SECONDS_PER_DAY
    kind = np.concatenate([kind, np.full(fu.size, 2, np.int8)])
    cust = np.concatenate([cust, cust[fu]])
    seq = np.concatenate([seq, seq[fu]])
    t_days = np.concatenate([t_days, fu_t])
    return cust, t_days, seq, kind


def _chronological_order(ts: np.ndarray, cust: np.ndarray, n_customers: int, horizon_s: int) -> np.ndarray:
    """Permutation sorting by time, ties broken by customer, then generation order (stable sort)."""
    cust_bits = max(int(n_customers).bit_length(), 1)
    if int(horizon_s).bit_length() + cust_bits <= 62:
        return _stable_argsort((ts << cust_bits) | cust)
    return np.lexsort((cust, ts))  # pragma: no cover - absurdly long windows


# --------------------------------------------------------------------------- 6. order attributes


class _Refunds(NamedTuple):
    amount_c: np.ndarray  # per order: refunded cents (0 if none)
    idx: np.ndarray  # refunded orders
    at_s: np.ndarray  # their refund times, seconds since start


class _OrderAttributes(NamedTuple):
    """Per order (timeline order); amounts in integer cents, labels as small integer codes."""

    chan: np.ndarray  # index into P.CHANNELS
    cat: np.ndarray  # index into P.CATEGORIES
    gross_c: np.ndarray  # value before discount
    code: np.ndarray  # discount code: 0 none, else index + 1 into P.DISCOUNT_CODES
    disc_c: np.ndarray
    net_c: np.ndarray
    cost_c: np.ndarray
    status: np.ndarray  # 0 completed, 1 cancelled, 2 test
    refunds: _Refunds


def _order_attributes(
    win: _Window, customers: _Customers, timeline: _Timeline, rng: np.random.Generator
) -> _OrderAttributes:
    """Everything about an order but its time and customer (all from the ``orders`` stream, in this order)."""
    chan, cat = _channels_and_categories(customers, timeline, rng)
    gross_c = _gross_values(customers, timeline, cat, rng)
    code, disc_c, net_c = _discounts(win, customers, timeline, gross_c, rng)
    cost_c = _costs(gross_c, cat, rng)
    status = _statuses(timeline.ts.size, rng)
    refunds = _refunds(win, timeline.ts, cat, status, net_c, rng)
    return _OrderAttributes(chan, cat, gross_c, code, disc_c, net_c, cost_c, status, refunds)


def _channels_and_categories(
    customers: _Customers, timeline: _Timeline, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Channel: the acquisition channel for first orders; for repeats the acquisition channel again
    with REPEAT_SAME_CHANNEL_PROB, else the retention-heavy REPEAT_CHANNEL_MIX (email, organic).
    Category: the first category for first orders, again with REPEAT_SAME_CATEGORY_PROB for repeats,
    else CATEGORY_SHARES."""
    cust, is_first = timeline.cust, timeline.is_first
    n_orders = cust.size
    chan = _draw_categorical(rng, np.cumsum(P.REPEAT_CHANNEL_MIX), n_orders)
    same = is_first | (rng.random(n_orders, dtype=np.float32) < P.REPEAT_SAME_CHANNEL_PROB)
    chan[same] = customers.acq[cust[same]]
    cat = _draw_categorical(rng, np.cumsum(P.CATEGORY_SHARES), n_orders)
    same = is_first | (rng.random(n_orders, dtype=np.float32) < P.REPEAT_SAME_CATEGORY_PROB)
    cat[same] = customers.first_cat[cust[same]]
    return chan, cat


def _gross_values(customers: _Customers, timeline: _Timeline, cat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gross order value (cents): Gamma-Gamma ``Gamma(GG_P, rate=nu)`` x CATEGORY_VALUE_MULT (electronics
    dear, accessories cheap); first orders x FIRST_ORDER_VALUE_MULT (a bit smaller), follow-ups x
    FOLLOWUP_VALUE_MULT; at least MIN_ORDER_VALUE."""
    gross = rng.standard_gamma(P.GG_P, cat.size, dtype=np.float32)
    gross /= customers.nu.astype(np.float32)[timeline.cust]
    gross *= P.CATEGORY_VALUE_MULT.astype(np.float32)[cat]
    gross[timeline.is_first] *= P.FIRST_ORDER_VALUE_MULT
    gross[timeline.kind == 2] *= P.FOLLOWUP_VALUE_MULT
    np.maximum(gross, P.MIN_ORDER_VALUE, out=gross)
    return _cents(gross)


def _discounts(
    win: _Window, customers: _Customers, timeline: _Timeline, gross_c: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Discount codes, then zero-value free replacements (ZERO_VALUE_PROB of non-first orders: no code,
    nothing paid). Returns (code, discount cents, net cents).

    One uniform per order picks the code; later rules win: VIP15 from (0-based) order VIP_MIN_SEQ on,
    SUMMER20 in June-August, BF30 Black Friday..Cyber Monday; first orders only ever get WELCOME10
    (WELCOME_PROB; WELCOME_PROB_AFFILIATE for affiliate-acquired customers).
    """
    is_first = timeline.is_first
    n_orders = is_first.size
    day_idx = (timeline.ts // SECONDS_PER_DAY).astype(np.int32)
    u = rng.random(n_orders, dtype=np.float32)
    code = np.zeros(n_orders, dtype=np.int8)
    code[(timeline.seq >= P.VIP_MIN_SEQ) & (u < P.VIP_PROB)] = 4
    code[win.cal["summer"][day_idx] & (u < P.SUMMER_PROB)] = 2
    code[win.cal["cyber"][day_idx] & (u < P.BF_PROB)] = 3
    del day_idx
    first_idx = np.flatnonzero(is_first)
    affiliate = customers.acq[timeline.cust[first_idx]] == P.CHANNELS.index("affiliate")
    welcome_p = np.where(affiliate, P.WELCOME_PROB_AFFILIATE, P.WELCOME_PROB)
    code[first_idx] = np.where(u[first_idx] < welcome_p, 1, 0)
    del welcome_p, first_idx, affiliate
    # zero-value free replacements (never first orders)
    zero = np.flatnonzero(~is_first & (rng.random(n_orders, dtype=np.float32) < P.ZERO_VALUE_PROB))
    code[zero] = 0
    rate = np.concatenate([[0.0], P.DISCOUNT_RATES]).astype(np.float32)[code]
    rate *= gross_c
    disc_c = np.rint(rate).astype(np.int32)
    del rate
    net_c = gross_c - disc_c
    net_c[zero] = 0
    disc_c[zero] = 0
    return code, disc_c, net_c


def _costs(gross_c: np.ndarray, cat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Cost of goods (cents): gross value x (1 - CATEGORY_MARGIN) x mean-1 log-normal noise (COST_NOISE_SIGMA)."""
    cost = rng.standard_normal(gross_c.size, dtype=np.float32)
    cost *= P.COST_NOISE_SIGMA
    cost -= 0.5 * P.COST_NOISE_SIGMA**2
    np.exp(cost, out=cost)
    cost *= (1.0 - P.CATEGORY_MARGIN).astype(np.float32)[cat]
    cost *= gross_c
    return np.rint(cost).astype(np.int32)


def _statuses(n_orders: int, rng: np.random.Generator) -> np.ndarray:
    """Status: test orders (TEST_PROB), cancellations (CANCELLED_PROB), else completed."""
    u = rng.random(n_orders, dtype=np.float32)
    status = (u < P.TEST_PROB + P.CANCELLED_PROB).astype(np.int8)
    status[u < P.TEST_PROB] = 2
    return status


def _refunds(
    win: _Window, ts: np.ndarray, cat: np.ndarray, status: np.ndarray, net_c: np.ndarray, rng: np.random.Generator
) -> _Refunds:
    """Refunds of completed, non-zero orders (CATEGORY_REFUND_PROB: shoes and apparel are returned most),
    1 to 30 days after the order; full with FULL_REFUND_PROB, else 10-90 % of the net value. Refunds
    after the window are not known yet (dropped)."""
    horizon_s = win.horizon_s
    u = rng.random(ts.size, dtype=np.float32)
    ref_idx = np.flatnonzero((u < P.CATEGORY_REFUND_PROB.astype(np.float32)[cat]) & (status == 0) & (net_c > 0))
    del u
    ref_at = ts[ref_idx] + rng.integers(SECONDS_PER_DAY, 30 * SECONDS_PER_DAY + 1, ref_idx.size)
    known = ref_at < horizon_s
    ref_idx, ref_at = ref_idx[known], ref_at[known]
    del known
    net_ref = net_c[ref_idx]
    partial = np.clip(np.rint(net_ref * (0.1 + 0.8 * rng.random(ref_idx.size))), 1, net_ref)
    full = rng.random(ref_idx.size) < P.FULL_REFUND_PROB
    ref_c = np.zeros(ts.size, dtype=np.int32)
    ref_c[ref_idx] = np.where(full, net_ref, partial)
    return _Refunds(ref_c, ref_idx, ref_at)


# --------------------------------------------------------------------------- 7. orders frame


def _customer_ids(n: int) -> pl.DataFrame:
    """customer_id (``C0000001``, in arrival order) and its e-mail, one row per customer."""
    width_c = max(7, len(str(n)))
    return pl.select(_ids("C", pl.int_range(1, n + 1, dtype=pl.Int64), width_c).alias("customer_id")).with_columns(
        pl.format("{}@example.com", pl.col("customer_id").str.to_lowercase()).alias("email")
    )


def _orders_frame(
    win: _Window, arrays: dict[str, np.ndarray], customer_ids: pl.DataFrame, id_width: int
) -> pl.DataFrame:
    """The orders export (ORDER_COLUMNS): order ids ``O00000001`` in time order, euros, labels, EUR.

    ``arrays`` (the timeline's ``ts`` and ``cust`` and the ``_OrderAttributes``) is consumed: each array is
    dropped as soon as it is converted, so that the numpy columns and the frame never coexist (peak memory).
    """
    start_us, n_orders = win.start_us, arrays["ts"].size
    take = arrays.pop
    # numeric columns first, then labels and ids (their strings are the bulk of the frame)
    cols: dict[str, pl.Series] = {
        "ordered_at": pl.Series("ordered_at", start_us + take("ts") * US).cast(pl.Datetime("us")),
        "net_revenue": _euros(take("net_c"), "net_revenue"),
        "discount_amount": _euros(take("disc_c"), "discount_amount"),
        "cost": _euros(take("cost_c"), "cost"),
    }
    refunds: _Refunds = take("refunds")
    cols["refunded_amount"] = _euros(refunds.amount_c, "refunded_amount")
    cols["refunded_at"] = _sparse_datetimes(start_us + refunds.at_s * US, refunds.idx, n_orders, "refunded_at")
    del refunds
    cols["discount_code"] = _labels((None,) + P.DISCOUNT_CODES, take("code"), "discount_code")
    cols["channel"] = _labels(P.CHANNELS, take("chan"), "channel")
    cols["status"] = _labels(("completed", "cancelled", "test"), take("status"), "status")
    cols["product_category"] = _labels(P.CATEGORIES, take("cat"), "product_category")
    cust = take("cust")
    arrays.clear()  # not exported (gross_c)
    cols["currency"] = pl.repeat("EUR", n_orders, dtype=pl.String, eager=True).alias("currency")
    cols["order_id"] = pl.select(
        _ids("O", pl.int_range(1, n_orders + 1, dtype=pl.Int64), id_width).alias("order_id")
    ).to_series()
    id_frame = customer_ids.select(pl.all().gather(pl.Series("c", cust, dtype=pl.UInt32)))
    del cust
    cols["customer_id"] = id_frame["customer_id"]
    cols["email"] = id_frame["email"]
    del id_frame
    return pl.DataFrame([cols.pop(c) for c in ORDER_COLUMNS])


# --------------------------------------------------------------------------- 8. marketing spend


def _marketing_spend(win: _Window, rng: np.random.Generator) -> pl.DataFrame:
    """Daily spend per channel: CAC x expected new customers of the day x log-normal noise.

    Expected (not realised) new customers of the day; CHANNEL_CAC per paid channel
    drifts up by CHANNEL_CAC_DRIFT over the window (auction inflation), noise SPEND_NOISE_SIGMA;
    email is a flat daily fee (EMAIL_COST_PER_CUSTOMER per expected email customer, spread evenly).
    """
    n_days, day_frac = win.n_days, win.day_frac
    expected_new = win.n_customers * win.arrival_p[:, None] * win.channel_shares
    dates = pl.date_range(win.start_date, win.end_date, "1d", eager=True)
    sigma = P.SPEND_NOISE_SIGMA
    frames = []
    for ch in P.SPEND_CHANNELS:
        k = P.CHANNELS.index(ch)
        if ch == "email":  # flat daily fee
            spend = np.full(n_days, P.EMAIL_COST_PER_CUSTOMER * expected_new[:, k].sum() / n_days)
        else:
            cac = P.CHANNEL_CAC[ch] * (1.0 + P.CHANNEL_CAC_DRIFT[ch] * day_frac)
            spend = cac * expected_new[:, k] * np.exp(rng.normal(-0.5 * sigma**2, sigma, n_days))
        spend = np.maximum(np.rint(spend * 100.0), 1.0) / 100.0
        frames.append(
            pl.DataFrame(
                {
                    "date": dates,
                    "channel": pl.repeat(ch, n_days, dtype=pl.String, eager=True),
                    "spend": spend,
                },
                schema=MARKETING_SPEND_SCHEMA,
            )
        )
    return pl.concat(frames).sort("date", "channel", maintain_order=True)


# --------------------------------------------------------------------------- 9. cart events


def _tracked_orders(
    timeline: _Timeline, attrs: _OrderAttributes, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orders whose cart was tracked (CART_TRACKED_PROB of the non-test orders): (customer, time s, gross cents)."""
    n_orders = timeline.ts.size
    tracked = np.flatnonzero((rng.random(n_orders, dtype=np.float32) < P.CART_TRACKED_PROB) & (attrs.status != 2))
    return timeline.cust[tracked], timeline.ts[tracked], attrs.gross_c[tracked]


def _cart_events(
    win: _Window,
    converted: tuple[np.ndarray, np.ndarray, np.ndarray],
    abandoned: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    customer_ids: pl.Series,
    rng: np.random.Generator,
) -> pl.DataFrame:
    """add_to_cart / checkout_started events: before tracked orders, and abandoned carts."""
    c_cust, c_ts, c_val = converted
    co_ts = c_ts - rng.integers(30, 301, c_ts.size)  # checkout 0.5-5 min before the order
    add_ts = co_ts - rng.integers(60, 2401, c_ts.size)  # cart 1-40 min before checkout
    keep = add_ts >= 0
    a_cust, a_add, a_off, a_val = abandoned
    has_co = a_off >= 0
    e_cust = np.concatenate([c_cust[keep], c_cust, a_cust, a_cust[has_co]])
    e_ts = np.concatenate([add_ts[keep], np.maximum(co_ts, 0), a_add, a_add[has_co] + a_off[has_co]])
    e_type = np.concatenate(
        [
            np.zeros(int(keep.sum()), np.int8),
            np.ones(c_ts.size, np.int8),
            np.zeros(a_cust.size, np.int8),
            np.ones(int(has_co.sum()), np.int8),
        ]
    )
    e_val = np.concatenate([c_val[keep], c_val, a_val, a_val[has_co]])
    del add_ts, co_ts, keep, has_co
    order = _stable_argsort(e_ts)
    e_cust, e_ts, e_type, e_val = e_cust[order], e_ts[order], e_type[order], e_val[order]
    del order
    frame = pl.DataFrame({"customer_id": customer_ids}).select(
        pl.col("customer_id").gather(pl.Series(e_cust, dtype=pl.UInt32))
    )
    return frame.with_columns(
        pl.Series("event_at", win.start_us + e_ts * US).cast(pl.Datetime("us")),
        _labels(("add_to_cart", "checkout_started"), e_type, "event_type"),
        _euros(e_val, "cart_value"),
    )
