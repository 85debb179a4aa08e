"""Running tallies of predicted rows per (model, version, caller, predicted, true label), kept
with every insert, feedback and delete, so that a monitoring report reads O(labels^2) rows
instead of counting the table; and a partial index on the rows with feedback (the recent
accuracy window). Backfilled from the rows already stored.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prediction_tallies",
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("caller", sa.String(32), primary_key=True),
        sa.Column("predicted", sa.String(128), primary_key=True),
        sa.Column("true_label", sa.String(128), primary_key=True),  # "" without feedback
        sa.Column("rows", sa.BigInteger(), nullable=False),
    )
    op.execute(
        "INSERT INTO prediction_tallies (model, version, caller, predicted, true_label, rows) "
        "SELECT model, version, caller, predicted, COALESCE(true_label, ''), COUNT(*) "
        "FROM prediction_rows GROUP BY model, version, caller, predicted, "
        "COALESCE(true_label, '')"
    )
    op.create_index(
        "ix_prediction_rows_feedback",
        "prediction_rows",
        ["model", "version", "id"],
        sqlite_where=sa.text("true_label IS NOT NULL"),
        postgresql_where=sa.text("true_label IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_prediction_rows_feedback", "prediction_rows")
    op.drop_table("prediction_tallies")
