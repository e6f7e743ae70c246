"""usernames unique in any case, server-side browser sessions, token expiry index

Revision ID: 5d1e07a4b9c2
Revises: 422c8bc6c3e2
Create Date: 2026-11-28 08:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "5d1e07a4b9c2"
down_revision: str | None = "422c8bc6c3e2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

USERNAME_MAX = 32


def upgrade() -> None:
    _rename_case_duplicates()
    op.create_index("uq_users_username_lower", "users", [sa.text("lower(username)")], unique=True)
    op.create_index(op.f("ix_tokens_expires_at"), "tokens", ["expires_at"])
    op.create_table(
        "browser_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("remember", sa.Boolean(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_browser_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_browser_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_browser_sessions_token_hash")),
    )
    op.create_index(op.f("ix_browser_sessions_user_id"), "browser_sessions", ["user_id"])


def _rename_case_duplicates() -> None:
    """Before names become unique in any case, the later of two same-but-for-case accounts
    becomes ``<name>_<id>``; the oldest keeps its name. Nothing else about them changes."""
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, username FROM users ORDER BY id")).all()
    seen = {row.username.lower() for row in rows}
    kept: set[str] = set()
    for user_id, username in rows:
        if username.lower() not in kept:
            kept.add(username.lower())
            continue
        suffix = f"_{user_id}"
        renamed = username[: USERNAME_MAX - len(suffix)] + suffix
        while renamed.lower() in seen:
            suffix = "_" + suffix
            renamed = username[: USERNAME_MAX - len(suffix)] + suffix
        seen.add(renamed.lower())
        conn.execute(
            sa.text("UPDATE users SET username = :name WHERE id = :id"),
            {"name": renamed, "id": user_id},
        )


def downgrade() -> None:
    op.drop_index(op.f("ix_browser_sessions_user_id"), table_name="browser_sessions")
    op.drop_table("browser_sessions")
    op.drop_index(op.f("ix_tokens_expires_at"), table_name="tokens")
    op.drop_index("uq_users_username_lower", table_name="users")
