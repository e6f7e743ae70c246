"""named tokens with a last use, and edited posts

Revision ID: b7e2c9d41f06
Revises: 8c3f1a2b7d90
Create Date: 2026-12-04 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "b7e2c9d41f06"
down_revision: str | None = "8c3f1a2b7d90"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tokens") as tokens:
        tokens.add_column(sa.Column("name", sa.String(length=64), nullable=True))
        tokens.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("posts") as posts:
        posts.add_column(sa.Column("edited_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("posts") as posts:
        posts.drop_column("edited_at")
    with op.batch_alter_table("tokens") as tokens:
        tokens.drop_column("last_used_at")
        tokens.drop_column("name")
