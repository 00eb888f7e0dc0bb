"""Hospital appointments, second part (flows/appointments.py): where to go inside the
hospital for a service, the files a desk attached to a
visit (ids of the case's messages, whose bytes are sealed there), the slots a booking was
moved away from (so an earlier slip still passes the file check), one open appointment per
referral as a database rule, and admins' one-time invitations that make someone a hospital's
desk.

Additive: a column with a default, a partial unique index and a new table. The index would
fail on a database where a referral has two open appointments; the earlier version refused
that in the flow, so only a race could have left one (the upgrade then stops and names the
index; cancel the later booking and run it again). Safe to run while workers of the previous
version are up.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

OPEN = sa.text("status IN ('booked', 'arrived')")


def upgrade() -> None:
    with op.batch_alter_table("hospital_services") as batch:
        batch.add_column(sa.Column("directions", sa.Text(), nullable=False, server_default=""))
    with op.batch_alter_table("hospital_appointments") as batch:
        batch.add_column(sa.Column("attachments", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("moved_from", sa.Text(), nullable=False, server_default=""))
    op.create_index(
        "uq_hospital_appointments_open",
        "hospital_appointments",
        ["referral_id"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )
    op.create_table(
        "desk_invites",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("hospital_id", sa.String(32), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_by", sa.String(32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_desk_invites")),
        sa.UniqueConstraint("token_hash", name="uq_desk_invites_token_hash"),
    )


def downgrade() -> None:
    op.drop_table("desk_invites")
    op.drop_index("uq_hospital_appointments_open", table_name="hospital_appointments")
    with op.batch_alter_table("hospital_appointments") as batch:
        batch.drop_column("moved_from")
        batch.drop_column("attachments")
    with op.batch_alter_table("hospital_services") as batch:
        batch.drop_column("directions")
