"""SLA breaches raise exactly one alert, to the sink of their role; items within SLA none."""

from __future__ import annotations

import email
import email.policy
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest
import sqlalchemy as sa
from alert_receivers import SmtpReceiver, WebhookReceiver, smtp_receiver, webhook_receiver

from retailsync.bus.backend import BackendConfig, EventBusBackend
from retailsync.bus.backends.sql import create_backend
from retailsync.db import create_engine_for, upgrade_database
from retailsync.observability.monitor import SlaMonitor
from retailsync.observability.settings import (
    AlertRoute,
    AlertSettings,
    Measure,
    ObservabilitySettings,
    Role,
    SlaTarget,
    SmtpSettings,
)
from retailsync.observability.tables import alerts_sent
from retailsync.observability.testkit import RetailJourney

H = timedelta(hours=1)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    url = str(
        request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    )
    upgrade_database(url)
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = create_engine_for(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
async def bus(database_url: str) -> AsyncIterator[EventBusBackend]:
    backend = create_backend(BackendConfig(database_url=database_url))
    await backend.start()
    yield backend
    await backend.close()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture
def mailbox() -> Iterator[SmtpReceiver]:
    with smtp_receiver() as receiver:
        yield receiver


def _config(webhook: WebhookReceiver, mailbox: SmtpReceiver) -> ObservabilitySettings:
    return ObservabilitySettings(
        slas=(
            SlaTarget(
                name="refund_completed",
                measure=Measure.REFUND_CYCLE,
                within=48 * H,
                at_risk_after=36 * H,
                role=Role.FINANCE,
            ),
            SlaTarget(
                name="return_authorized",
                measure=Measure.RETURN_AUTHORIZATION,
                within=timedelta(minutes=15),
                role=Role.SERVICE_OPERATIONS,
            ),
        ),
        alerts=AlertSettings(
            routes={
                Role.FINANCE: AlertRoute(webhook_url=webhook.url, log=False),
                Role.SERVICE_OPERATIONS: AlertRoute(email_to=("ops@retailer.test",), log=False),
                Role.INTEGRATION: AlertRoute(log=True),
            },
            smtp=SmtpSettings(port=mailbox.port, sender="hub@retailer.test", timeout_seconds=5),
            trace_base_url="https://hub.retailer.test/v1/admin/traces",
        ),
    )


async def test_each_breach_alerts_its_role_once_and_nothing_else_alerts(
    engine: sa.Engine, bus: EventBusBackend, webhook: WebhookReceiver, mailbox: SmtpReceiver
) -> None:
    now = datetime.now(UTC)
    late_refund = RetailJourney(correlation_id="a" * 32)
    young_refund = RetailJourney()
    paid_refund = RetailJourney()
    late_return = RetailJourney()
    young_return = RetailJourney()
    await bus.publish(
        [
            late_refund.order_created(now - 60 * H),
            late_refund.refund_requested(now - 50 * H, for_return=False),
            young_refund.refund_requested(now - 2 * H, for_return=False),
            paid_refund.refund_requested(now - 10 * H, for_return=False),
            paid_refund.refund_completed(now - 9 * H),
            late_return.return_requested(now - 30 * timedelta(minutes=1)),
            young_return.return_requested(now - 5 * timedelta(minutes=1)),
        ]
    )
    checked = datetime.now(UTC)  # the monitor reads what was stored until now
    monitor = SlaMonitor(engine, _config(webhook, mailbox), clock=lambda: checked)

    first = await monitor.run_once()
    second = await monitor.run_once()
    # Five minutes on, the same breaches are still there; the young return is still in time.
    later = await SlaMonitor(
        engine, _config(webhook, mailbox), clock=lambda: checked + timedelta(minutes=5)
    ).run_once()
    assert len(later.findings) == 2

    assert first.raised == 2 and second.raised == 0 and later.raised == 0
    assert first.failed == []
    assert len(webhook.received) == 1
    alert = webhook.received[0]
    assert alert["sla"] == "refund_completed"
    assert alert["item"] == late_refund.refund_id
    assert alert["severity"] == "breach"
    assert alert["role"] == "finance"
    assert alert["trace_url"] == (
        f"https://hub.retailer.test/v1/admin/traces?order={late_refund.order_id}"
    )
    assert len(mailbox.messages) == 1
    mail = mailbox.messages[0]
    assert mail["to"] == ["<ops@retailer.test>"]
    message = email.message_from_string(mail["data"], policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert "SLA return_authorized breached" in str(message["Subject"])
    body = message.get_content()
    assert late_return.rma_id in body
    assert f"traces?order={late_return.order_id}" in body
    with engine.connect() as connection:
        rows = connection.execute(sa.select(alerts_sent)).mappings().all()
    assert sorted((row["sla"], row["status"]) for row in rows) == [
        ("refund_completed", "delivered"),
        ("return_authorized", "delivered"),
    ]


async def test_a_failing_sink_gets_the_alert_later_and_only_once(
    engine: sa.Engine, bus: EventBusBackend, webhook: WebhookReceiver, mailbox: SmtpReceiver
) -> None:
    now = datetime.now(UTC)
    risky = RetailJourney()
    await bus.publish([risky.refund_requested(now - 40 * H, for_return=False)])
    webhook.fail_next = 1
    checked = datetime.now(UTC)
    monitor = SlaMonitor(engine, _config(webhook, mailbox), clock=lambda: checked)

    first = await monitor.run_once()
    assert first.raised == 1
    assert len(first.failed) == 1 and "HTTP 503" in first.failed[0]
    assert webhook.received == []

    second = await monitor.run_once()
    assert second.raised == 0 and second.failed == []
    await monitor.run_once()
    assert len(webhook.received) == 1
    assert webhook.received[0]["severity"] == "at_risk"
    assert webhook.attempts == 2
