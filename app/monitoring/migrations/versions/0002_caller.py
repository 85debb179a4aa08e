"""Each predicted row remembers the fingerprint of the API key that made it (feedback
ownership, per-caller figures; docs/security.md).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("prediction_rows") as batch:
        batch.add_column(sa.Column("caller", sa.String(32), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("prediction_rows") as batch:
        batch.drop_column("caller")
