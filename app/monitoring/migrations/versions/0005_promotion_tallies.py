"""Promotion's running tallies: the indexes that let a poll read only what is new (the
feedback given since a time, and the shadow pairs of a request).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Partial: a row enters it only when it gets feedback, so inserts pay nothing more.
    op.create_index(
        "ix_prediction_rows_feedback_at",
        "prediction_rows",
        ["model", "version", "feedback_at"],
        sqlite_where=sa.text("feedback_at IS NOT NULL"),
        postgresql_where=sa.text("feedback_at IS NOT NULL"),
    )
    op.create_index("ix_shadow_pairs_request", "shadow_pairs", ["request_id", "row_index"])


def downgrade() -> None:
    op.drop_index("ix_shadow_pairs_request", "shadow_pairs")
    op.drop_index("ix_prediction_rows_feedback_at", "prediction_rows")
