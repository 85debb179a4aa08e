"""The prediction store: predicted rows and their feedback.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prediction_rows",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("route", sa.String(64), nullable=False),
        sa.Column("row_index", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("features", sa.LargeBinary(), nullable=True),
        sa.Column("stats", sa.LargeBinary(), nullable=False),
        sa.Column("probabilities", sa.LargeBinary(), nullable=False),
        sa.Column("predicted", sa.String(128), nullable=False),
        sa.Column("true_label", sa.String(128), nullable=True),
        sa.Column("feedback_at", sa.Float(), nullable=True),
    )
    op.create_index("ix_prediction_rows_request", "prediction_rows", ["request_id", "model"])
    op.create_index(
        "ix_prediction_rows_model_version_id", "prediction_rows", ["model", "version", "id"]
    )


def downgrade() -> None:
    op.drop_table("prediction_rows")
