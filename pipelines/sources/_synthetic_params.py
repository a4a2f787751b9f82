"""Parameters of the synthetic online shop (see ``synthetic.py``).

Kept apart from the generator so tests and docs can refer to the "configured" values
(e.g. the CAC per paid channel) without duplicating numbers.
"""

from __future__ import annotations

import numpy as np

# --------------------------------------------------------------------------- channels
CHANNELS: tuple[str, ...] = (
    "paid_search",
    "paid_social",
    "email",
    "organic",
    "referral",
    "affiliate",
)
#: channels whose spend is proportional to the customers they bring
PAID_CHANNELS: tuple[str, ...] = ("paid_search", "paid_social", "affiliate")
#: channels with rows in ``marketing_spend`` (email: a small flat daily tool/platform fee)
SPEND_CHANNELS: tuple[str, ...] = ("paid_search", "paid_social", "affiliate", "email")

#: acquisition cost per new customer (EUR) at the start of the window
CHANNEL_CAC: dict[str, float] = {"paid_search": 35.0, "paid_social": 45.0, "affiliate": 25.0}
#: relative CAC increase from the start to the end of the window (auction inflation)
CHANNEL_CAC_DRIFT: dict[str, float] = {"paid_search": 0.10, "paid_social": 0.20, "affiliate": 0.0}
#: flat email cost, expressed per expected email-acquired customer, spread evenly per day
EMAIL_COST_PER_CUSTOMER: float = 6.0
#: log-normal sigma of the daily spend noise
SPEND_NOISE_SIGMA: float = 0.25

#: acquisition channel shares at the start / end of the window (interpolated on logits)
CHANNEL_SHARES_START = np.array([0.30, 0.20, 0.08, 0.24, 0.08, 0.10])
CHANNEL_SHARES_END = np.array([0.27, 0.28, 0.10, 0.19, 0.07, 0.09])

#: channel of repeat orders: probability to reuse the acquisition channel, else this mix
REPEAT_SAME_CHANNEL_PROB = 0.45
REPEAT_CHANNEL_MIX = np.array([0.10, 0.05, 0.45, 0.30, 0.05, 0.05])

#: BG/NBD parameters per acquisition channel: (r, alpha) of the Gamma purchase rate
#: (per week) and (a, b) of the Beta drop-out probability.
BGNBD_PARAMS: dict[str, tuple[float, float, float, float]] = {
    "paid_search": (0.41, 2.5, 1.0, 12.0),
    "paid_social": (0.30, 2.7, 1.3, 9.0),
    "email": (0.56, 2.25, 0.9, 14.0),
    "organic": (0.49, 2.25, 0.9, 13.0),
    "referral": (0.52, 2.25, 0.8, 13.0),
    "affiliate": (0.26, 2.7, 1.4, 9.0),
}

# --------------------------------------------------------------------------- spend per order
#: Gamma-Gamma: order value ~ Gamma(GG_P, rate=nu), nu ~ Gamma(GG_Q, rate=GG_GAMMA * channel mult)
GG_P = 6.0
GG_Q = 4.0
GG_GAMMA = 38.0
CHANNEL_VALUE_MULT = np.array([1.00, 0.90, 1.05, 1.00, 1.10, 0.85])
FIRST_ORDER_VALUE_MULT = 0.85
FOLLOWUP_VALUE_MULT = 0.5
MIN_ORDER_VALUE = 1.5

# --------------------------------------------------------------------------- products
CATEGORIES: tuple[str, ...] = (
    "apparel",
    "shoes",
    "accessories",
    "beauty",
    "home",
    "electronics",
    "sports",
    "kids",
)
CATEGORY_SHARES = np.array([0.26, 0.14, 0.10, 0.14, 0.10, 0.08, 0.10, 0.08])
CATEGORY_MARGIN = np.array([0.55, 0.45, 0.65, 0.62, 0.42, 0.18, 0.40, 0.50])
CATEGORY_VALUE_MULT = np.array([1.00, 1.30, 0.60, 0.65, 1.15, 2.00, 1.05, 0.80])
#: first-category effect on the purchase rate (beauty = consumables, electronics = one-off)
CATEGORY_FREQ_MULT = np.array([1.10, 0.90, 0.95, 1.40, 0.80, 0.60, 1.00, 1.15])
CATEGORY_REFUND_PROB = np.array([0.075, 0.10, 0.03, 0.02, 0.04, 0.045, 0.04, 0.04])
#: channel tilt of the first category (rows: CHANNELS)
CATEGORY_CHANNEL_TILT = np.ones((len(CHANNELS), len(CATEGORIES)))
CATEGORY_CHANNEL_TILT[0, [4, 5]] = [1.2, 1.3]  # paid_search: home, electronics
CATEGORY_CHANNEL_TILT[1, [0, 3]] = [1.3, 1.3]  # paid_social: apparel, beauty
CATEGORY_CHANNEL_TILT[5, [2, 5]] = [1.2, 2.0]  # affiliate: accessories, electronics
REPEAT_SAME_CATEGORY_PROB = 0.55
COST_NOISE_SIGMA = 0.08

# --------------------------------------------------------------------------- discounts
DISCOUNT_CODES: tuple[str, ...] = ("WELCOME10", "SUMMER20", "BF30", "VIP15")
DISCOUNT_RATES = np.array([0.10, 0.20, 0.30, 0.15])
WELCOME_PROB = 0.35
WELCOME_PROB_AFFILIATE = 0.60
SUMMER_PROB = 0.10
BF_PROB = 0.35
VIP_PROB = 0.15
VIP_MIN_SEQ = 5  # 0-based order number from which VIP15 can apply

# --------------------------------------------------------------------------- order statuses
CANCELLED_PROB = 0.02
TEST_PROB = 0.001
ZERO_VALUE_PROB = 0.0035  # of non-first orders (free replacements)
FULL_REFUND_PROB = 0.55
FOLLOWUP_PROB = 0.012  # an order gets a same-day "forgot something" follow-up order

# --------------------------------------------------------------------------- carts
CART_TRACKED_PROB = 0.25  # share of orders with tracked add_to_cart / checkout_started events
ABANDON_GAP_PROB = 0.2  # chance of an abandoned cart in the gap after an order (if >= ~8 days)
ABANDON_BEFORE_FIRST_PROB = 0.1  # chance of an abandoned cart 8-60 days before the first order
ABANDON_CHECKOUT_PROB = 0.4
ABANDON_WINDOW_DAYS = 7

# --------------------------------------------------------------------------- seasonality
#: Jan..Dec
MONTH_FACTOR = np.array([0.85, 0.80, 0.92, 0.95, 0.98, 0.95, 0.90, 0.90, 0.98, 1.05, 1.40, 1.45])
#: Mon..Sun
WEEKDAY_FACTOR = np.array([1.05, 1.02, 1.00, 0.98, 0.95, 0.92, 1.08])
BLACK_FRIDAY_FACTOR = 1.8  # Black Friday .. Cyber Monday
ARRIVAL_GROWTH = 1.5  # arrival intensity grows linearly by this much over the window
ARRIVAL_SEASONALITY_POWER = 1.2
HOUR_WEIGHTS = np.array(
    [
        0.6,
        0.35,
        0.2,
        0.15,
        0.15,
        0.25,
        0.5,
        1.0,
        1.5,
        1.8,
        2.0,
        2.1,
        2.3,
        2.2,
        2.1,
        2.1,
        2.2,
        2.4,
        2.8,
        3.2,
        3.4,
        3.1,
        2.3,
        1.3,
    ]
)
