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
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from pipelines import contract
from pipelines.sources import _synthetic_params as P
from pipelines.sources._synthetic_dirty import ORDER_COLUMNS, make_dirty_orders

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

ORDERS_SCHEMA: dict[str, pl.DataType] = {name: contract.ORDERS.schema()[name] for name in ORDER_COLUMNS}
MARKETING_SPEND_SCHEMA = contract.MARKETING_SPEND.schema(input=True, stored=True)
CART_EVENTS_SCHEMA = contract.CART_EVENTS.schema(input=True)


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
    """Generate a synthetic shop; the same config always gives identical frames."""
    if config.n_customers < 1:
        raise ValueError("n_customers must be >= 1")
    if config.end_date < config.start_date:
        raise ValueError("end_date must be >= start_date")
    if config.dirty_rows < 0:
        raise ValueError("dirty_rows must be >= 0")

    clock = _Stopwatch()
    n = int(config.n_customers)
    n_days = (config.end_date - config.start_date).days + 1
    horizon_s = n_days * SECONDS_PER_DAY
    start_us = int(np.datetime64(config.start_date, "us").astype(np.int64))
    rng_cust, rng_rep, rng_ord, rng_spend, rng_cart, rng_dirty = (
        np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(6)
    )
    cal = _calendar(config.start_date, n_days)
    season = cal["season"]
    day_frac = (np.arange(n_days) + 0.5) / n_days
    channel_shares = _channel_shares(day_frac)  # (n_days, 6)

    # ------------------------------------------------------------------ customers
    clock.lap("customers")
    arrival_w = season**P.ARRIVAL_SEASONALITY_POWER * (1.0 + P.ARRIVAL_GROWTH * day_frac)
    p_day = arrival_w / arrival_w.sum()
    arrival_day = np.repeat(np.arange(n_days, dtype=np.int32), rng_cust.multinomial(n, p_day))
    arrival_t = arrival_day + _time_of_day(rng_cust, n)  # days since start
    arrival_t.sort()  # customer ids follow arrival order
    acq = _draw_per_row(rng_cust, np.cumsum(channel_shares, axis=1), arrival_day)
    del arrival_day
    cat_probs = P.CATEGORY_SHARES[None, :] * P.CATEGORY_CHANNEL_TILT
    cat_probs = cat_probs / cat_probs.sum(axis=1, keepdims=True)
    first_cat = _draw_per_row(rng_cust, np.cumsum(cat_probs, axis=1), acq)

    params = np.array([P.BGNBD_PARAMS[c] for c in P.CHANNELS])  # (6, 4)
    lam = rng_cust.gamma(params[acq, 0], 1.0 / params[acq, 1])  # purchases per week
    lam *= P.CATEGORY_FREQ_MULT[first_cat]
    p_drop = np.clip(rng_cust.beta(params[acq, 2], params[acq, 3]), 1e-6, 1.0)
    nu = rng_cust.gamma(P.GG_Q, 1.0 / (P.GG_GAMMA * P.CHANNEL_VALUE_MULT[acq]))

    # ------------------------------------------------------------------ repeat purchases (BG/NBD)
    clock.lap("repeat purchases (BG/NBD)")
    # Seasonality through a time change: operational time Lambda(t) = int_0^t season.
    op_grid = np.concatenate([[0.0], np.cumsum(season)])
    day_grid = np.arange(n_days + 1, dtype=np.float64)
    op_arrival = np.interp(arrival_t, day_grid, op_grid)
    op_left = op_grid[-1] - op_arrival  # operational days until the end of the window
    m_cand = rng_rep.poisson(lam * op_left / 7.0)  # Poisson purchases while alive
    n_alive = rng_rep.geometric(p_drop) - 1  # repeat purchases before drop-out
    n_rep = np.minimum(m_cand, n_alive)
    del lam, p_drop, n_alive
    total_rep = int(n_rep.sum())

    # The first X = n_rep of M = m_cand sorted uniforms, without drawing all M of them:
    # U_(k) = S_k / (S_X + Gamma(M - X + 1)), S_k partial sums of Exp(1).
    rep_cust = np.repeat(np.arange(n, dtype=np.int32), n_rep)
    seg_end = np.cumsum(n_rep)
    seg_start = seg_end - n_rep
    cs = np.cumsum(rng_rep.standard_exponential(total_rep))
    base = np.zeros(n)
    has_prev = seg_start > 0
    base[has_prev] = cs[seg_start[has_prev] - 1]
    denom = rng_rep.standard_gamma((m_cand - n_rep + 1).astype(np.float64))
    has_rep = n_rep > 0
    denom[has_rep] += cs[seg_end[has_rep] - 1] - base[has_rep]
    del m_cand, has_prev, has_rep, seg_end
    cs -= base[rep_cust]
    cs /= denom[rep_cust]  # now U_(k)
    cs *= op_left[rep_cust]
    cs += op_arrival[rep_cust]  # operational time of each repeat purchase
    del base, denom, op_left, op_arrival
    rep_t = np.floor(np.interp(cs, op_grid, day_grid))
    del cs
    np.minimum(rep_t, n_days - 1, out=rep_t)
    rep_t += _time_of_day(rng_rep, total_rep)  # intraday profile
    # a repeat order on the arrival day cannot precede the first order
    min_t = arrival_t[rep_cust] + (60.0 + 1800.0 * rng_rep.random(total_rep)) / SECONDS_PER_DAY
    np.maximum(rep_t, min_t, out=rep_t)
    del min_t
    rep_seq = np.arange(1, total_rep + 1, dtype=np.int32) - np.repeat(seg_start, n_rep).astype(np.int32)

    # abandoned carts sit in gaps between orders (decided here, where gaps are known)
    abandoned = _abandoned_carts(arrival_t, rep_t, rep_cust, seg_start, n_rep, nu, n_days, rng_cart)
    del seg_start, n_rep

    # ------------------------------------------------------------------ assemble order skeleton
    clock.lap("assemble order skeleton")
    cust = np.concatenate([np.arange(n, dtype=np.int32), rep_cust])
    t_days = np.concatenate([arrival_t, rep_t])
    seq = np.concatenate([np.zeros(n, dtype=np.int32), rep_seq])
    del rep_cust, rep_t, rep_seq
    # same-day "forgot something" follow-ups, 3 to 90 minutes after an order
    fu = np.flatnonzero(rng_rep.random(cust.size, dtype=np.float32) < P.FOLLOWUP_PROB)
    fu_t = t_days[fu] + (180.0 + 5220.0 * rng_rep.random(fu.size)) / SECONDS_PER_DAY
    kind = np.concatenate(
        [np.zeros(n, np.int8), np.ones(total_rep, np.int8), np.full(fu.size, 2, np.int8)]
    )  # 0 first, 1 repeat, 2 follow-up
    cust = np.concatenate([cust, cust[fu]])
    seq = np.concatenate([seq, seq[fu]])
    t_days = np.concatenate([t_days, fu_t])
    del fu, fu_t
    t_days *= SECONDS_PER_DAY
    ts = np.minimum(t_days.astype(np.int64), horizon_s - 1)  # seconds since start
    del t_days

    # chronological order; ties broken by customer, then generation order (stable sort)
    cust_bits = max(int(n).bit_length(), 1)
    if int(horizon_s).bit_length() + cust_bits <= 62:
        key = (ts << cust_bits) | cust
        order = _stable_argsort(key)
        del key
    else:  # pragma: no cover - absurdly long windows
        order = np.lexsort((cust, ts))
    ts, cust, seq, kind = ts[order], cust[order], seq[order], kind[order]
    del order
    n_orders = ts.size
    is_first = kind == 0
    day_idx = (ts // SECONDS_PER_DAY).astype(np.int32)

    # ------------------------------------------------------------------ order attributes
    clock.lap("order attributes")
    rng = rng_ord
    acq_o = acq[cust]
    # channel: acquisition channel for first orders, else a retention-heavy mix
    chan = _draw_categorical(rng, np.cumsum(P.REPEAT_CHANNEL_MIX), n_orders)
    same = is_first | (rng.random(n_orders, dtype=np.float32) < P.REPEAT_SAME_CHANNEL_PROB)
    chan[same] = acq_o[same]
    # category: first category for first orders, often again for repeats
    cat = _draw_categorical(rng, np.cumsum(P.CATEGORY_SHARES), n_orders)
    same = is_first | (rng.random(n_orders, dtype=np.float32) < P.REPEAT_SAME_CATEGORY_PROB)
    cat[same] = first_cat[cust[same]]
    del same
    # gross value (Gamma-Gamma x category)
    gross = rng.standard_gamma(P.GG_P, n_orders, dtype=np.float32)
    gross /= nu.astype(np.float32)[cust]
    gross *= P.CATEGORY_VALUE_MULT.astype(np.float32)[cat]
    gross[is_first] *= P.FIRST_ORDER_VALUE_MULT
    gross[kind == 2] *= P.FOLLOWUP_VALUE_MULT
    np.maximum(gross, P.MIN_ORDER_VALUE, out=gross)
    gross_c = _cents(gross)
    del gross
    # discount codes: 0 none, 1 WELCOME10, 2 SUMMER20, 3 BF30, 4 VIP15
    u = rng.random(n_orders, dtype=np.float32)
    code = np.zeros(n_orders, dtype=np.int8)
    code[(seq >= P.VIP_MIN_SEQ) & (u < P.VIP_PROB)] = 4
    code[cal["summer"][day_idx] & (u < P.SUMMER_PROB)] = 2
    code[cal["cyber"][day_idx] & (u < P.BF_PROB)] = 3
    first_idx = np.flatnonzero(is_first)
    welcome_p = np.where(acq_o[first_idx] == P.CHANNELS.index("affiliate"), P.WELCOME_PROB_AFFILIATE, P.WELCOME_PROB)
    code[first_idx] = np.where(u[first_idx] < welcome_p, 1, 0)
    del welcome_p, first_idx, acq_o, seq, day_idx
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
    del zero
    # cost (COGS) from the gross value and the category margin, with noise
    cost = rng.standard_normal(n_orders, dtype=np.float32)
    cost *= P.COST_NOISE_SIGMA
    cost -= 0.5 * P.COST_NOISE_SIGMA**2
    np.exp(cost, out=cost)
    cost *= (1.0 - P.CATEGORY_MARGIN).astype(np.float32)[cat]
    cost *= gross_c
    cost_c = np.rint(cost).astype(np.int32)
    del cost
    # status: 0 completed, 1 cancelled, 2 test
    u = rng.random(n_orders, dtype=np.float32)
    status = (u < P.TEST_PROB + P.CANCELLED_PROB).astype(np.int8)
    status[u < P.TEST_PROB] = 2
    # refunds of completed, non-zero orders; refunds after the window are not known yet
    u = rng.random(n_orders, dtype=np.float32)
    ref_idx = np.flatnonzero((u < P.CATEGORY_REFUND_PROB.astype(np.float32)[cat]) & (status == 0) & (net_c > 0))
    del u
    ref_at = ts[ref_idx] + rng.integers(SECONDS_PER_DAY, 30 * SECONDS_PER_DAY + 1, ref_idx.size)
    known = ref_at < horizon_s
    ref_idx, ref_at = ref_idx[known], ref_at[known]
    del known
    net_ref = net_c[ref_idx]
    partial = np.clip(np.rint(net_ref * (0.1 + 0.8 * rng.random(ref_idx.size))), 1, net_ref)
    full = rng.random(ref_idx.size) < P.FULL_REFUND_PROB
    ref_c = np.zeros(n_orders, dtype=np.int32)
    ref_c[ref_idx] = np.where(full, net_ref, partial)
    del net_ref, partial, full

    # converted cart events: a share of the (non-test) orders were tracked
    tracked = np.flatnonzero((rng_cart.random(n_orders, dtype=np.float32) < P.CART_TRACKED_PROB) & (status != 2))
    converted = (cust[tracked], ts[tracked], gross_c[tracked])
    del tracked, gross_c

    # ------------------------------------------------------------------ orders frame
    clock.lap("orders frame")
    width_o = max(8, len(str(n_orders + config.dirty_rows)))
    width_c = max(7, len(str(n)))
    customers = pl.select(_ids("C", pl.int_range(1, n + 1, dtype=pl.Int64), width_c).alias("customer_id")).with_columns(
        pl.format("{}@example.com", pl.col("customer_id").str.to_lowercase()).alias("email")
    )
    # numeric columns first, freeing their numpy sources as we go (peak memory)
    cols: dict[str, pl.Series] = {}
    cols["ordered_at"] = pl.Series("ordered_at", start_us + ts * US).cast(pl.Datetime("us"))
    del ts
    cols["net_revenue"] = _euros(net_c, "net_revenue")
    del net_c
    cols["discount_amount"] = _euros(disc_c, "discount_amount")
    del disc_c
    cols["refunded_amount"] = _euros(ref_c, "refunded_amount")
    del ref_c
    cols["cost"] = _euros(cost_c, "cost")
    del cost_c
    cols["refunded_at"] = _sparse_datetimes(start_us + ref_at * US, ref_idx, n_orders, "refunded_at")
    del ref_at, ref_idx
    cols["discount_code"] = _labels((None,) + P.DISCOUNT_CODES, code, "discount_code")
    cols["channel"] = _labels(P.CHANNELS, chan, "channel")
    cols["status"] = _labels(("completed", "cancelled", "test"), status, "status")
    cols["product_category"] = _labels(P.CATEGORIES, cat, "product_category")
    del code, chan, status, cat
    cols["currency"] = pl.repeat("EUR", n_orders, dtype=pl.String, eager=True).alias("currency")
    cols["order_id"] = pl.select(
        _ids("O", pl.int_range(1, n_orders + 1, dtype=pl.Int64), width_o).alias("order_id")
    ).to_series()
    id_frame = customers.select(pl.all().gather(pl.Series("c", cust, dtype=pl.UInt32)))
    del cust
    cols["customer_id"] = id_frame["customer_id"]
    cols["email"] = id_frame["email"]
    del id_frame
    orders = pl.DataFrame([cols.pop(c) for c in ORDER_COLUMNS])

    # ------------------------------------------------------------------ marketing spend
    clock.lap("marketing spend")
    marketing_spend = _marketing_spend(config, n, n_days, p_day, day_frac, channel_shares, rng_spend)

    # ------------------------------------------------------------------ cart events
    clock.lap("cart events")
    cart_events = _cart_events(converted, abandoned, start_us, customers["customer_id"], rng_cart)
    del converted, abandoned

    # ------------------------------------------------------------------ dirty rows
    clock.lap("dirty rows")
    dirty = make_dirty_orders(orders, config, rng_dirty, width_o)

    clock.lap("done")
    return SyntheticShop(
        orders=orders,
        marketing_spend=marketing_spend,
        cart_events=cart_events,
        dirty_orders=dirty,
    )


def _marketing_spend(
    config: SyntheticShopConfig,
    n: int,
    n_days: int,
    p_day: np.ndarray,
    day_frac: np.ndarray,
    channel_shares: np.ndarray,
    rng: np.random.Generator,
) -> pl.DataFrame:
    """Daily spend per channel: CAC x expected new customers of the day x log-normal noise."""
    expected_new = n * p_day[:, None] * channel_shares
    dates = pl.date_range(config.start_date, config.end_date, "1d", eager=True)
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


def _abandoned_carts(
    arrival_t: np.ndarray,
    rep_t: np.ndarray,
    rep_cust: np.ndarray,
    seg_start: np.ndarray,
    n_rep: np.ndarray,
    nu: np.ndarray,
    n_days: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Abandoned carts placed so that no order of the customer follows within 7 days.

    Times are in days since start. Repeat days never decrease along a customer's
    sequence (only the time of day may), and follow-ups come < 1.5 h after their order,
    so an event in ``[floor(prev) + 1 day + 2 h, floor(next) - 7 days - 2 h]`` is safe.
    Returns (customer, add_to_cart time in seconds, checkout offset in seconds or -1, value cents).
    """
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


def _cart_events(
    converted: tuple[np.ndarray, np.ndarray, np.ndarray],
    abandoned: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    start_us: int,
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
        pl.Series("event_at", start_us + e_ts * US).cast(pl.Datetime("us")),
        _labels(("add_to_cart", "checkout_started"), e_type, "event_type"),
        _euros(e_val, "cart_value"),
    )
