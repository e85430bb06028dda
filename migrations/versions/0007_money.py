"""Money: the ledger, invoices, payments, refund requests and payouts; unpaid
bookings, the settlement of orders, the chargers' rated power

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 10:00:00.000000

Orders made before this revision were paid at the shop: their payment is
``pay_at_shop`` and the merchant's share is the whole cost (no fee was agreed).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = sa.DateTime(timezone=True)

OLD_BOOKING_STATES = (
    "requested",
    "accepted",
    "rejected",
    "expired",
    "cancelled",
    "charging",
    "completed",
    "no_show",
)
NEW_BOOKING_STATES = ("unpaid", *OLD_BOOKING_STATES)
BOOKING_CHECK = "bookingstatus"  # ck_bookings_bookingstatus by the naming convention


def _states(states: Sequence[str]) -> str:
    return "status IN (" + ", ".join(f"'{s}'" for s in states) + ")"


def _enum(name: str, length: int, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=length)


def upgrade() -> None:
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f(f"ck_bookings_{BOOKING_CHECK}"), type_="check")
        batch_op.create_check_constraint(BOOKING_CHECK, _states(NEW_BOOKING_STATES))
        batch_op.add_column(sa.Column("pay_by", UTC, nullable=True))
        batch_op.add_column(sa.Column("prepaid_minor", BIGINT, nullable=True))
        batch_op.create_index("ix_bookings_unpaid", ["status", "pay_by"], unique=False)

    with op.batch_alter_table("chargers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("power_kw", sa.Numeric(8, 2), nullable=True))

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prepaid_minor", BIGINT, nullable=True))
        batch_op.add_column(
            sa.Column("fee_minor", BIGINT, server_default=sa.text("0"), nullable=False)
        )
        batch_op.add_column(
            sa.Column("merchant_minor", BIGINT, server_default=sa.text("0"), nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "payment",
                _enum("orderpayment", 16, "prepaid", "pay_at_shop", "paid_at_shop"),
                server_default=sa.text("'pay_at_shop'"),
                nullable=False,
            )
        )
        batch_op.add_column(sa.Column("settled_at", UTC, nullable=True))
    op.execute("UPDATE orders SET merchant_minor = cost_minor")

    op.create_table(
        "ledger_accounts",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column(
            "kind",
            _enum(
                "accountkind",
                24,
                "user_wallet",
                "merchant_payable",
                "platform_fees",
                "provider_clearing",
                "booking_hold",
                "refunds_due",
            ),
            nullable=False,
        ),
        sa.Column("owner_id", BIGINT, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("balance_minor", BIGINT, nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_accounts")),
        sa.UniqueConstraint("kind", "owner_id", "currency", name=op.f("uq_ledger_accounts_kind")),
    )
    op.create_table(
        "ledger_transactions",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("booking_id", BIGINT, nullable=True),
        sa.Column("order_id", BIGINT, nullable=True),
        sa.Column("actor_id", BIGINT, nullable=True),
        sa.Column("memo", sa.Text(), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_transactions")),
        sa.UniqueConstraint("key", name=op.f("uq_ledger_transactions_key")),
    )
    with op.batch_alter_table("ledger_transactions", schema=None) as batch_op:
        for column in ("booking_id", "order_id", "created_at"):
            batch_op.create_index(batch_op.f(f"ix_ledger_transactions_{column}"), [column])
    op.create_table(
        "ledger_entries",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("transaction_id", BIGINT, nullable=False),
        sa.Column("account_id", BIGINT, nullable=False),
        sa.Column("amount_minor", BIGINT, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["ledger_accounts.id"],
            name=op.f("fk_ledger_entries_account_id_ledger_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_ledger_entries_transaction_id_ledger_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
    )
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        for column in ("account_id", "transaction_id"):
            batch_op.create_index(batch_op.f(f"ix_ledger_entries_{column}"), [column])

    op.create_table(
        "invoices",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("user_id", BIGINT, nullable=False),
        sa.Column("booking_id", BIGINT, nullable=True),
        sa.Column("order_id", BIGINT, nullable=True),
        sa.Column("purpose", _enum("invoicepurpose", 16, "booking", "topup"), nullable=False),
        sa.Column("amount_minor", BIGINT, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("payload", sa.String(length=128), nullable=False),
        sa.Column(
            "status",
            _enum("invoicestatus", 16, "open", "paid", "cancelled", "expired"),
            nullable=False,
        ),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.Column("pre_checkout_at", UTC, nullable=True),
        sa.Column("paid_at", UTC, nullable=True),
        sa.Column("telegram_payment_charge_id", sa.String(length=255), nullable=True),
        sa.Column("provider_payment_charge_id", sa.String(length=255), nullable=True),
        sa.Column("chat_id", BIGINT, nullable=True),
        sa.Column("message_id", BIGINT, nullable=True),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["bookings.id"], name=op.f("fk_invoices_booking_id_bookings")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_invoices_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("payload", name=op.f("uq_invoices_payload")),
        sa.UniqueConstraint(
            "telegram_payment_charge_id", name=op.f("uq_invoices_telegram_payment_charge_id")
        ),
    )
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.create_index("ix_invoices_open", ["status", "expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_invoices_booking_id"), ["booking_id"])
        batch_op.create_index(batch_op.f("ix_invoices_user_id"), ["user_id"])

    op.create_table(
        "payments",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("telegram_payment_charge_id", sa.String(length=255), nullable=False),
        sa.Column("provider_payment_charge_id", sa.String(length=255), nullable=False),
        sa.Column("user_id", BIGINT, nullable=False),
        sa.Column("invoice_id", BIGINT, nullable=True),
        sa.Column("amount_minor", BIGINT, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("received_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_payments_invoice_id_invoices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint(
            "telegram_payment_charge_id", name=op.f("uq_payments_telegram_payment_charge_id")
        ),
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payments_invoice_id"), ["invoice_id"])
        batch_op.create_index(batch_op.f("ix_payments_user_id"), ["user_id"])

    op.create_table(
        "refund_requests",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("user_id", BIGINT, nullable=False),
        sa.Column("amount_minor", BIGINT, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "status", _enum("refundstatus", 16, "requested", "done", "declined"), nullable=False
        ),
        sa.Column("requested_at", UTC, nullable=False),
        sa.Column("decided_by", BIGINT, nullable=True),
        sa.Column("decided_at", UTC, nullable=True),
        sa.Column("reference", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("card_chat_id", BIGINT, nullable=True),
        sa.Column("card_message_id", BIGINT, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refund_requests")),
    )
    with op.batch_alter_table("refund_requests", schema=None) as batch_op:
        batch_op.create_index("ix_refund_requests_status", ["status", "requested_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_refund_requests_user_id"), ["user_id"])

    op.create_table(
        "payouts",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("merchant_id", BIGINT, nullable=False),
        sa.Column("amount_minor", BIGINT, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reference", sa.String(length=128), nullable=False),
        sa.Column("admin_id", BIGINT, nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("key", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payouts")),
        sa.UniqueConstraint("key", name=op.f("uq_payouts_key")),
    )
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payouts_merchant_id"), ["merchant_id"])


def downgrade() -> None:
    for table in (
        "payouts",
        "refund_requests",
        "payments",
        "invoices",
        "ledger_entries",
        "ledger_transactions",
        "ledger_accounts",
    ):
        op.drop_table(table)
    with op.batch_alter_table("orders", schema=None) as batch_op:
        # SQLite's batch copy would keep the CHECK on a column it no longer has
        batch_op.drop_constraint(batch_op.f("ck_orders_orderpayment"), type_="check")
        for column in ("settled_at", "payment", "merchant_minor", "fee_minor", "prepaid_minor"):
            batch_op.drop_column(column)
    with op.batch_alter_table("chargers", schema=None) as batch_op:
        batch_op.drop_column("power_kw")
    # an unpaid booking has no state before this revision: it never reached a merchant
    op.execute("UPDATE bookings SET status = 'expired' WHERE status = 'unpaid'")
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.drop_index("ix_bookings_unpaid")
        batch_op.drop_column("prepaid_minor")
        batch_op.drop_column("pay_by")
        batch_op.drop_constraint(batch_op.f(f"ck_bookings_{BOOKING_CHECK}"), type_="check")
        batch_op.create_check_constraint(BOOKING_CHECK, _states(OLD_BOOKING_STATES))
