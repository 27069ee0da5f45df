"""SQLAlchemy 2 models of the ML tables; the Alembic revisions create the same schema.

Times are stored in UTC (`timestamptz` on PostgreSQL, naive UTC on SQLite) and always
come back as aware UTC datetimes. Credits are whole numbers.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every backend; naive input is rejected."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware UTC datetime")
        value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# BigInteger primary keys fall back to INTEGER on SQLite so that they autoincrement.
BigId = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    type_annotation_map = {dt.datetime: UtcDateTime, dict[str, Any]: JSON}


class SubscriptionPlan(Base):
    __tablename__ = "subscription_plans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128))
    monthly_ml_credits: Mapped[int] = mapped_column(Integer)
    auto_predictions_per_day: Mapped[int] = mapped_column(Integer)
    scheduled_workflows: Mapped[int] = mapped_column(Integer)
    features: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    price_cents: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="BRL")
    rollover_percent: Mapped[int] = mapped_column(Integer, default=0)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    plan_id: Mapped[int] = mapped_column(ForeignKey("subscription_plans.id"))
    pending_plan_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscription_plans.id"), default=None
    )
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    status: Mapped[str] = mapped_column(String(16), default="active")
    is_test: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class MlCredits(Base):
    """One row per tenant: the cached balances of the ledger for the current period."""

    __tablename__ = "ml_credits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), unique=True
    )
    period_start: Mapped[dt.datetime]
    period_end: Mapped[dt.datetime]
    allowance: Mapped[int] = mapped_column(Integer)
    allowance_remaining: Mapped[int] = mapped_column(Integer)
    grant_remaining: Mapped[int] = mapped_column(Integer, default=0)
    held: Mapped[int] = mapped_column(Integer, default=0)
    used_this_period: Mapped[int] = mapped_column(Integer, default=0)
    # Credits carried into this period by the plan's rollover_percent.
    carried: Mapped[int] = mapped_column(Integer, default=0)
    # Earliest effective time of a grant whose credits are not in the balance yet.
    next_grant_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class MlCreditGrant(Base):
    """A top-up or bonus bucket that survives resets until it expires."""

    __tablename__ = "ml_credit_grants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    amount: Mapped[int] = mapped_column(Integer)
    remaining: Mapped[int] = mapped_column(Integer)
    priority: Mapped[int] = mapped_column(Integer, default=100)
    reason: Mapped[str] = mapped_column(Text)
    effective_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    expired: Mapped[bool] = mapped_column(Boolean, default=False)
    # When the credits entered the balance; None while the grant is scheduled.
    activated_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class MlUsageHistory(Base):
    """The append-only ledger. `credits` is signed; `buckets` maps each bucket
    (`allowance` or `grant:ID`) to its signed share of `credits`."""

    __tablename__ = "ml_usage_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    operation: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    credits: Mapped[int] = mapped_column(Integer)
    balance_after: Mapped[int] = mapped_column(Integer)
    buckets: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    processing_time_ms: Mapped[float | None] = mapped_column(Float, default=None)
    success: Mapped[bool] = mapped_column(Boolean, default=True)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class MlCreditHold(Base):
    """A reservation: credits taken from the buckets while work runs, then
    committed with the result or released."""

    __tablename__ = "ml_credit_holds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    operation: Mapped[str] = mapped_column(String(64))
    amount: Mapped[int] = mapped_column(Integer)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    expires_at: Mapped[dt.datetime]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class CreditAlert(Base):
    __tablename__ = "ml_credit_alerts"
    __table_args__ = (UniqueConstraint("tenant_id", "period_start", "threshold"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    period_start: Mapped[dt.datetime]
    threshold: Mapped[str] = mapped_column(String(16))
    used: Mapped[int] = mapped_column(Integer)
    allowance: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    notified_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class MlConfig(Base):
    """Operator-editable configuration, such as the credit cost of each operation."""

    __tablename__ = "ml_config"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class MetricPoint(Base):
    __tablename__ = "metric_points"
    __table_args__ = (UniqueConstraint("tenant_id", "metric", "ts"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(100))
    ts: Mapped[dt.datetime]
    value: Mapped[float] = mapped_column(Float)


class AutoPrediction(Base):
    __tablename__ = "auto_predictions"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    prediction_type: Mapped[str] = mapped_column(String(32))
    metric: Mapped[str] = mapped_column(String(100))
    horizon: Mapped[int] = mapped_column(Integer)
    levels: Mapped[dict[str, Any]] = mapped_column(JSON)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    schedule: Mapped[str] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64))
    next_run_at: Mapped[dt.datetime]
    last_run_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    last_result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    run_count: Mapped[int] = mapped_column(Integer, default=0)
    success_count: Mapped[int] = mapped_column(Integer, default=0)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    claimed_by: Mapped[str | None] = mapped_column(String(255), default=None)
    claimed_until: Mapped[dt.datetime | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PredictionRun(Base):
    __tablename__ = "prediction_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    prediction_id: Mapped[int] = mapped_column(
        ForeignKey("auto_predictions.id", ondelete="CASCADE")
    )
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64), default=None)
    model: Mapped[str | None] = mapped_column(String(100), default=None)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    input_fingerprint: Mapped[str | None] = mapped_column(String(64), default=None)
    credits_charged: Mapped[int] = mapped_column(Integer, default=0)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    started_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    processing_time_ms: Mapped[float | None] = mapped_column(Float, default=None)


class Insight(Base):
    __tablename__ = "insights"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(100))
    insight_type: Mapped[str] = mapped_column(String(32))
    input_fingerprint: Mapped[str] = mapped_column(String(64))
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    low_confidence: Mapped[bool] = mapped_column(Boolean, default=False)
    credits_charged: Mapped[int] = mapped_column(Integer, default=0)
    processing_time_ms: Mapped[float | None] = mapped_column(Float, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class JobRun(Base):
    __tablename__ = "job_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    host: Mapped[str | None] = mapped_column(String(255), default=None)
    pid: Mapped[int | None] = mapped_column(Integer, default=None)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, default=None)


class FeatureFlag(Base):
    """A stored switch that overrides the environment (used by `rollback --ml-only`)."""

    __tablename__ = "feature_flags"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Release(Base):
    __tablename__ = "releases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[str] = mapped_column(String(64), unique=True)
    schema_revision: Mapped[str] = mapped_column(String(64))
    backup_id: Mapped[str | None] = mapped_column(String(100), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# Indexes for the hot queries; revision 005 creates them and `qml db verify` checks them.
HOT_INDEXES = (
    Index(
        "ix_auto_predictions_due", AutoPrediction.is_active, AutoPrediction.next_run_at
    ),
    Index(
        "ix_ml_usage_history_tenant_created",
        MlUsageHistory.tenant_id,
        MlUsageHistory.created_at,
    ),
    Index(
        "ix_ml_usage_history_operation",
        MlUsageHistory.tenant_id,
        MlUsageHistory.operation,
    ),
    Index(
        "ix_ml_credit_grants_tenant_expired",
        MlCreditGrant.tenant_id,
        MlCreditGrant.expired,
    ),
    Index(
        "ix_ml_credit_holds_status_expires",
        MlCreditHold.status,
        MlCreditHold.expires_at,
    ),
    Index(
        "ix_prediction_runs_prediction_started",
        PredictionRun.prediction_id,
        PredictionRun.started_at,
    ),
    Index("ix_tenants_plan", Tenant.plan_id),
)
LATER_INDEXES = (
    Index(
        "ix_insights_tenant_fingerprint",
        Insight.tenant_id,
        Insight.input_fingerprint,
        Insight.created_at,
    ),
    Index("ix_job_runs_job_started", JobRun.job, JobRun.started_at),
)
