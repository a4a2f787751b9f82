"""Shopify's "Export orders" CSV (Orders > Export, "Plain CSV file"): one row per line item, the order's own fields
on its first row. docs/bring_your_own_data.md has the field mapping and the rules below in a table."""

from __future__ import annotations

import polars as pl

from pipelines.sources.formats.platform import (
    Export,
    Platform,
    contract_frame,
    exact,
    group_orders,
    money_text,
    net_share_of_refund,
)

# Orders paid through Shopify's test gateway carry its name as the payment method; the export has no test flag.
TEST_GATEWAY = "bogus"
CENT = 0.005


def adapt(export: Export) -> tuple[pl.DataFrame, list[str]]:
    t = export.text
    order_level = {
        "name": t("name"),
        "id": t("id"),
        "email": t("email"),
        "financial_status": t("financial status"),
        "created_at": t("created at"),
        "currency": t("currency"),
        "subtotal": t("subtotal"),
        "shipping": t("shipping"),
        "taxes": t("taxes"),
        "total": t("total"),
        "discount_code": t("discount code"),
        "discount_amount": t("discount amount"),
        "cancelled_at": t("cancelled at"),
        "refunded_amount": t("refunded amount"),
        "payment_method": t("payment method"),
        "tags": t("tags"),
    }
    orders = group_orders(export, pl.coalesce(t("name"), t("id")), order_level, {"vendor": t("vendor")})

    subtotal, subtotal_problem = export.amount("Subtotal", "subtotal")
    shipping, shipping_problem = export.amount("Shipping", "shipping")
    taxes, taxes_problem = export.amount("Taxes", "taxes")
    total, total_problem = export.amount("Total", "total")
    discount, discount_problem = export.amount("Discount Amount", "discount_amount")
    refunded, refunded_problem = export.amount("Refunded Amount", "refunded_amount")
    ordered_at, date_problem = export.timestamp("Created at", "created_at")

    sub, ship, tax, paid = exact(subtotal), exact(shipping).fill_null(0), exact(taxes).fill_null(0), exact(total)
    # Shopify's Subtotal is the line items after discounts, before shipping; taxes are added to it (Total =
    # Subtotal + Shipping + Taxes) unless the shop's prices include tax (Total = Subtotal + Shipping), when the
    # included tax is taken out of it. Other totals (tips, duties) leave the Subtotal as it is.
    tax_included = (
        (tax > 0)
        & paid.is_not_null()
        & ((sub + ship - paid).cast(pl.Float64).abs() < CENT)
        & ((sub + ship + tax - paid).cast(pl.Float64).abs() >= CENT)
    )
    net = pl.when(tax_included).then(sub - tax).otherwise(sub)
    financial = pl.col("financial_status").str.to_lowercase()
    tags = pl.col("tags").str.to_lowercase()
    is_test = pl.col("payment_method").str.to_lowercase().str.contains(TEST_GATEWAY, literal=True).fill_null(
        False
    ) | tags.str.contains(r"(^|,)\s*test\s*(,|$)").fill_null(False)
    cancelled = pl.col("cancelled_at").is_not_null() | (financial == "voided").fill_null(False)
    status = pl.when(cancelled).then(pl.lit("cancelled")).when(is_test).then(pl.lit("test")).otherwise(financial)
    refund_text = net_share_of_refund(exact(refunded), net, paid, (financial == "refunded").fill_null(False))
    contract = contract_frame(
        orders,
        [
            date_problem,
            subtotal_problem,
            shipping_problem,
            taxes_problem,
            total_problem,
            discount_problem,
            refunded_problem,
        ],
        order_id=pl.coalesce("name", "id"),
        customer_id=pl.col("email"),
        email=pl.col("email"),
        ordered_at=ordered_at,
        net_revenue=pl.when(sub.is_not_null()).then(money_text(net)).otherwise(subtotal),
        currency=pl.col("currency"),
        discount_amount=discount,
        discount_code=pl.col("discount_code"),
        refunded_amount=refund_text,
        status=status,
        product_category=pl.col("vendor"),
    )
    items = int(orders["_items"].sum()) if orders.height else 0
    return contract, [
        f"{export.file_name}: a Shopify orders export: {items} line items in {orders.height} orders "
        "(net revenue = Subtotal, without included tax; cancelled and test orders are loaded with "
        "status cancelled/test and left out of the marts)"
    ]


PLATFORM = Platform(
    name="Shopify",
    signature=frozenset(
        {"name", "email", "financial status", "created at", "subtotal", "total", "lineitem quantity", "lineitem name"}
    ),
    adapt=adapt,
)
