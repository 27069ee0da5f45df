"""Add rollover credits and scheduled grants to the credit ledger.

`ml_credits.carried` holds the credits a plan's `rollover_percent` carried into the
current period; `ml_credits.next_grant_at` is the earliest effective time of a grant
whose credits have not entered the balance yet; `ml_credit_grants.activated_at` is
when a grant's credits entered the balance (grants created before this revision
entered it when they were created).
"""

import sqlalchemy as sa
from alembic import op

from qml_cli.core.models import UtcDateTime

revision = "007"
down_revision = "006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ml_credits") as batch:
        batch.add_column(
            sa.Column("carried", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("next_grant_at", UtcDateTime(), nullable=True))
    with op.batch_alter_table("ml_credit_grants") as batch:
        batch.add_column(sa.Column("activated_at", UtcDateTime(), nullable=True))
    op.execute("UPDATE ml_credit_grants SET activated_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table("ml_credit_grants") as batch:
        batch.drop_column("activated_at")
    with op.batch_alter_table("ml_credits") as batch:
        batch.drop_column("next_grant_at")
        batch.drop_column("carried")
