"""Promotion: the shadow's answers next to the primary's, and the decisions taken.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shadow_pairs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("row_index", sa.Integer(), nullable=False),
        sa.Column("primary_version", sa.Integer(), nullable=False),
        sa.Column("shadow_version", sa.Integer(), nullable=False),
        sa.Column("primary_predicted", sa.String(128), nullable=False),
        sa.Column("shadow_predicted", sa.String(128), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_index(
        "ix_shadow_pairs_versions",
        "shadow_pairs",
        ["model", "shadow_version", "primary_version", "id"],
    )
    op.create_table(
        "promotion_decisions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("candidate", sa.Integer(), nullable=False),
        sa.Column("baseline", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(16), nullable=False),
        sa.Column("verdict", sa.Text(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("replica", sa.String(128), nullable=False),
    )
    op.create_index("ix_promotion_decisions_model", "promotion_decisions", ["model", "id"])


def downgrade() -> None:
    op.drop_table("promotion_decisions")
    op.drop_table("shadow_pairs")
