"""SupabaseCloudBackend.wait_for_change against a local Phoenix-v1 Realtime stand-in (tests/cloud/fake_realtime.py):
the join carries the user's token and the filter, an event ends the wait with True, silence with False, and an
unreachable Realtime only costs the timeout."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from dualtetrax.cloud.backend import Filter, eq
from dualtetrax.cloud.supabase_backend import SupabaseCloudBackend, realtime_filter
from tests.cloud.supabase_fakes import ANON, EMAIL, Recorder, session_body
from tests.support.fake_realtime import FakeRealtime

REQUEST_ID = "3d5e7f90-1a2b-4c3d-8e9f-0a1b2c3d4e5f"


@pytest.fixture
async def fake() -> AsyncIterator[FakeRealtime]:
    server = await FakeRealtime().start()
    yield server
    await server.stop()


async def signed_in(url: str, *, realtime: bool = True) -> tuple[SupabaseCloudBackend, str]:
    body = session_body()
    rec = Recorder({("POST", "/auth/v1/token"): httpx.Response(200, json=body)})
    b = await SupabaseCloudBackend.connect(url, ANON, httpx_client=rec.http(), realtime=realtime)
    await b.sign_in(EMAIL, "correct horse")
    return b, str(body["access_token"])


async def test_a_change_ends_the_wait(fake: FakeRealtime) -> None:
    b, token = await signed_in(fake.url)
    started = time.monotonic()
    waiting = asyncio.create_task(b.wait_for_change("report_requests", [eq("id", REQUEST_ID)], 10))
    join = await fake.wait_for_join()
    assert not waiting.done()
    assert await fake.emit("report_requests", "UPDATE", {"id": REQUEST_ID, "status": "ready"},
                           old_record={"id": REQUEST_ID}) == 1
    assert await asyncio.wait_for(waiting, 5) is True
    assert time.monotonic() - started < 5

    [handshake] = fake.handshakes
    assert handshake == {"apikey": [ANON], "vsn": ["1.0.0"]}
    assert join["topic"].startswith("realtime:") and join["ref"] == join["join_ref"]
    payload = join["payload"]
    assert payload["access_token"] == token
    assert payload["config"]["postgres_changes"] == [
        {"event": "*", "schema": "public", "table": "report_requests", "filter": f"id=eq.{REQUEST_ID}"}]
    assert payload["config"]["private"] is False
    # the subscription lasts one wait: the channel is left afterwards
    async with asyncio.timeout(5):
        await fake.until(lambda: bool(fake.events("phx_leave")))
    assert fake.events("phx_leave")[0]["topic"] == join["topic"]
    await b.close()


async def test_silence_is_false_after_the_timeout(fake: FakeRealtime) -> None:
    b, _ = await signed_in(fake.url)
    started = time.monotonic()
    waiting = asyncio.create_task(b.wait_for_change("report_requests", [eq("id", REQUEST_ID)], 0.8))
    await fake.wait_for_join()
    # a change to another row does not reach this subscription (the server applies the filter)
    assert await fake.emit("report_requests", "UPDATE", {"id": "another", "status": "ready"}) == 0
    assert await waiting is False
    assert 0.75 <= time.monotonic() - started < 3
    await b.close()


async def test_each_wait_subscribes_again_with_the_current_token(fake: FakeRealtime) -> None:
    b, token = await signed_in(fake.url)
    assert await b.wait_for_change("devices", [eq("id", "d1")], 0.2) is False
    assert await b.wait_for_change("devices", [eq("id", "d1")], 0.2) is False
    first, second = fake.joins()
    assert first["topic"] != second["topic"]
    assert first["payload"]["access_token"] == second["payload"]["access_token"] == token
    await b.close()


async def test_unreachable_realtime_only_costs_the_timeout() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    b, _ = await signed_in(f"http://127.0.0.1:{port}")
    connects = 0
    connect = b.client.realtime.connect

    async def counting_connect() -> None:
        nonlocal connects
        connects += 1
        await connect()

    b.client.realtime.connect = counting_connect  # type: ignore[method-assign]
    started = time.monotonic()
    assert await b.wait_for_change("report_requests", [eq("id", REQUEST_ID)], 0.6) is False
    assert 0.55 <= time.monotonic() - started < 3
    # the next waits (a polling loop) don't knock again for a while: they just time out
    started = time.monotonic()
    assert await b.wait_for_change("report_requests", [eq("id", REQUEST_ID)], 0.3) is False
    assert 0.28 <= time.monotonic() - started < 2
    assert connects == 1
    await b.close()


async def test_without_realtime_no_socket_is_opened(fake: FakeRealtime) -> None:
    b, _ = await signed_in(fake.url, realtime=False)
    started = time.monotonic()
    assert await b.wait_for_change("report_requests", [eq("id", REQUEST_ID)], 0.3) is False
    assert time.monotonic() - started >= 0.28
    assert fake.handshakes == []
    await b.close()


def test_realtime_filter_syntax() -> None:
    assert realtime_filter([eq("id", REQUEST_ID)]) == f"id=eq.{REQUEST_ID}"
    assert realtime_filter([eq("user_id", "u1"), Filter("status", "in", ["queued", "rendering"]),
                            Filter("finished_at", "is", None), Filter("attempts", "gte", 2)]) == (
        "user_id=eq.u1,status=in.(queued,rendering),finished_at=is.null,attempts=gte.2")
    assert realtime_filter([]) == ""
