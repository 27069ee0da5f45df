"""Create the indexes that the hot queries need: due predictions, history by tenant
and time, live grants and pending holds."""

from alembic import op

revision = "005"
down_revision = "004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_auto_predictions_due", "auto_predictions", ["is_active", "next_run_at"]
    )
    op.create_index(
        "ix_ml_usage_history_tenant_created",
        "ml_usage_history",
        ["tenant_id", "created_at"],
    )
    op.create_index(
        "ix_ml_usage_history_operation", "ml_usage_history", ["tenant_id", "operation"]
    )
    op.create_index(
        "ix_ml_credit_grants_tenant_expired",
        "ml_credit_grants",
        ["tenant_id", "expired"],
    )
    op.create_index(
        "ix_ml_credit_holds_status_expires", "ml_credit_holds", ["status", "expires_at"]
    )
    op.create_index(
        "ix_prediction_runs_prediction_started",
        "prediction_runs",
        ["prediction_id", "started_at"],
    )
    op.create_index("ix_tenants_plan", "tenants", ["plan_id"])


def downgrade() -> None:
    op.drop_index("ix_tenants_plan", table_name="tenants")
    op.drop_index("ix_prediction_runs_prediction_started", table_name="prediction_runs")
    op.drop_index("ix_ml_credit_holds_status_expires", table_name="ml_credit_holds")
    op.drop_index("ix_ml_credit_grants_tenant_expired", table_name="ml_credit_grants")
    op.drop_index("ix_ml_usage_history_operation", table_name="ml_usage_history")
    op.drop_index("ix_ml_usage_history_tenant_created", table_name="ml_usage_history")
    op.drop_index("ix_auto_predictions_due", table_name="auto_predictions")
