from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import MakeUser
from tests.support.pgrest import Caller, PostgrestSession, user


@dataclass
class Owner:
    id: uuid.UUID
    caller: Caller
    device_id: uuid.UUID


@pytest.fixture
def owner(api: PostgrestSession, make_user: MakeUser) -> Owner:
    """A fresh user with one registered device."""
    uid = make_user()
    me = user(uid)
    serial = f"DTX-{uuid.uuid4().hex[:10].upper()}"
    dev: dict[str, Any] = api.rpc(me, "register_device", serial_number=serial)
    return Owner(uid, me, uuid.UUID(dev["id"]))

