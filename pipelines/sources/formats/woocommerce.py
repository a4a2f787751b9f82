"""WooCommerce orders exported with "Advanced Order Export For WooCommerce" (woo-order-export-lite, the widely used
order export plugin; WooCommerce itself has no orders CSV with customers in it): its default column labels, with
products (and coupons) as rows, order fields on every row or on the first row of each order only.
docs/bring_your_own_data.md has the field mapping."""

from __future__ import annotations

import polars as pl

from pipelines.sources.formats.dialect import map_values
from pipelines.sources.formats.platform import (
    Export,
    Platform,
    contract_frame,
    exact,
    group_orders,
    money_text,
    net_share_of_refund,
)

# Statuses of orders that are not sales (unpaid, failed, cancelled, deleted, abandoned checkouts): loaded as
# 'cancelled', which the marts leave out. Known statuses that are sales keep their name.
NOT_SALES = frozenset({"cancelled", "failed", "pending", "trash", "checkout-draft", "draft"})
SALES = frozenset({"processing", "completed", "on-hold", "refunded"})
EMAIL_COLUMNS = ("email (billing)", "billing email", "customer user email", "customer email")


def _status(raw: pl.Expr, export: Export) -> pl.Expr:
    """`Pending payment`, `wc-pending` and `pending` are one status: lower case, no `wc-`, words joined by '-'."""
    named = map_values(raw, dict(export.fmt.status_values)).str.to_lowercase().str.strip_chars()
    slug = named.str.replace(r"^wc-", "").str.replace_all(r"\s+", "-").replace({"pending-payment": "pending"})
    return pl.when(slug.is_in(list(NOT_SALES))).then(pl.lit("cancelled")).otherwise(slug)


def adapt(export: Export) -> tuple[pl.DataFrame, list[str]]:
    t = export.text
    order_level = {
        "order_number": t("order number"),
        "order_id": t("order id"),
        "status": t("order status"),
        "order_date": t("order date"),
        "email": t(*EMAIL_COLUMNS),
        "user_id": t("customer user id"),
        "currency": t("currency", "order currency"),
        "subtotal": t("order subtotal amount"),
        "cart_discount": t("cart discount amount"),
        "net": t("order subtotal - cart discount"),
        "total": t("order total amount"),
        "refund": t("order refund amount"),
        "subtotal_refunded": t("order subtotal amount refunded"),
    }
    first_item = {"coupon": t("coupon code", "coupons used"), "category": t("category")}
    orders = group_orders(export, pl.coalesce(t("order number"), t("order id")), order_level, first_item)

    subtotal, subtotal_problem = export.amount("Order Subtotal Amount", "subtotal")
    discount, discount_problem = export.amount("Cart Discount Amount", "cart_discount")
    given_net, net_problem = export.amount("Order Subtotal - Cart Discount", "net")
    total, total_problem = export.amount("Order Total Amount", "total")
    refund, refund_problem = export.amount("Order Refund Amount", "refund")
    subtotal_refunded, subtotal_refunded_problem = export.amount("Order Subtotal Amount Refunded", "subtotal_refunded")
    ordered_at, date_problem = export.timestamp("Order Date", "order_date")

    # WooCommerce keeps line subtotals and the cart discount without tax (whether prices are entered with or without
    # it): net revenue is the subtotal minus the cart discount, or the plugin's own column for it when exported.
    computed = exact(subtotal) - exact(discount).fill_null(0)
    net = pl.coalesce(exact(given_net), computed)
    status = _status(pl.col("status"), export)
    refunded = pl.coalesce(
        exact(subtotal_refunded),
        net_share_of_refund(exact(refund), net, exact(total), status == "refunded").cast(pl.Decimal(38, 6)),
    ).cast(pl.String)
    user = pl.col("user_id")
    customer = pl.coalesce("email", pl.when(user.is_not_null() & (user != "0")).then(pl.format("user:{}", user)))
    contract = contract_frame(
        orders,
        [
            date_problem,
            net_problem,
            subtotal_problem,
            discount_problem,
            total_problem,
            refund_problem,
            subtotal_refunded_problem,
        ],
        order_id=pl.coalesce("order_number", "order_id"),
        customer_id=customer,
        email=pl.col("email"),
        ordered_at=ordered_at,
        net_revenue=pl.when(net.is_not_null()).then(money_text(net)).otherwise(pl.coalesce(given_net, subtotal)),
        currency=pl.col("currency"),
        discount_amount=discount,
        discount_code=pl.col("coupon"),
        refunded_amount=refunded,
        status=status,
        product_category=pl.col("category"),
    )
    notes = [
        f"{export.file_name}: a WooCommerce orders export (Advanced Order Export): {orders['_items'].sum()} "
        f"rows in {orders.height} orders (net revenue = Order Subtotal Amount - Cart Discount Amount; "
        "cancelled, failed, pending and trashed orders are loaded with status cancelled and left out of the "
        "marts)"
    ]
    unknown = contract.filter(~pl.col("status").is_in(list(SALES | {"cancelled"})) & pl.col("status").is_not_null())
    if unknown.height:
        counts = unknown.group_by("status").len().sort("status").iter_rows()
        seen = ", ".join(f"'{s}' ({n} orders)" for s, n in counts)
        notes.append(
            f"{export.file_name}: WooCommerce statuses not recognised, loaded as sales: {seen}; name them in "
            "columns.yml (status_values: {Anulowane: cancelled}) if they are not"
        )
    return contract, notes


PLATFORM = Platform(
    name="WooCommerce",
    signature=frozenset({"order status", "order date", "order subtotal amount", "order total amount"}),
    adapt=adapt,
)
