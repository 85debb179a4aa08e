"""Promotion: the shadow pairs of a request found by their full key, so that reading the
feedback of a shadow comparison costs a lookup per feedback row, not a scan.

With 0005's (request id, row) index, SQLite preferred `ix_shadow_pairs_versions` (three equal
columns against two) for the join from a feedback row to its pair, and walked every pair of
the two versions for each feedback row: a poll's cost grew with the history. An index on the
join's five columns is the planner's clear choice, on SQLite and PostgreSQL alike.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_shadow_pairs_request", "shadow_pairs")
    op.create_index(
        "ix_shadow_pairs_request",
        "shadow_pairs",
        ["request_id", "row_index", "model", "primary_version", "shadow_version"],
    )


def downgrade() -> None:
    op.drop_index("ix_shadow_pairs_request", "shadow_pairs")
    op.create_index("ix_shadow_pairs_request", "shadow_pairs", ["request_id", "row_index"])
