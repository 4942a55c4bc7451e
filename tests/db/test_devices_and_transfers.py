"""Device registration and the transfer flow: ownership moves only on acceptance."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from tests.conftest import MakeUser
from tests.db.conftest import Owner
from tests.db.factories import session_item
from tests.support.pgrest import PostgrestSession, user


def email_of(db: psycopg.Connection, uid: uuid.UUID) -> str:
    row = db.execute("select email from profiles where id = %s", (uid,)).fetchone()
    assert row is not None
    return str(row["email"])


def test_register_device_normalises_and_validates(api: PostgrestSession, make_user: MakeUser) -> None:
    me = user(make_user())
    d = api.rpc(me, "register_device", serial_number="  DTX-00042 ", ble_address="aa:bb:cc:dd:ee:ff",
                firmware_version="1.0.23-rc1", nickname="Bathroom")
    assert (d["serial_number"], d["ble_address"], d["model"], d["total_sessions"]) == \
        ("DTX-00042", "AA:BB:CC:DD:EE:FF", "DualTetraX", 0)
    again = api.rpc(me, "register_device", serial_number="DTX-00042", firmware_version="1.0.24")
    assert again["id"] == d["id"] and again["firmware_version"] == "1.0.24" and again["nickname"] == "Bathroom"


@pytest.mark.parametrize(("args", "message"), [
    ({"serial_number": "x"}, "serial_number: must be 3-64 letters, digits, '-' or '_'"),
    ({"serial_number": None}, "serial_number: must be 3-64 letters, digits, '-' or '_'"),
    ({"serial_number": "DTX 1"}, "serial_number: must be 3-64 letters, digits, '-' or '_'"),
    ({"serial_number": "DTX-1", "ble_address": "zz"}, "ble_address: must look like AA:BB:CC:DD:EE:FF"),
    ({"serial_number": "DTX-1", "firmware_version": "v1"}, "firmware_version: must be a semantic version such as 1.0.23 or 1.0.23-rc1"),
    ({"serial_number": "DTX-1", "nickname": " "}, "nickname: must be 1-100 characters"),
    ({"serial_number": "DTX-1", "model": ""}, "model: must be 1-64 letters, digits, spaces, '.', '-' or '_'"),
    ({"serial_number": "DTX-1", "hardware_revision": "a/b"}, "hardware_revision: must be 1-32 letters, digits, '.', '-' or '_'"),
])
def test_register_device_rejects_bad_input(api: PostgrestSession, make_user: MakeUser, args: dict[str, Any], message: str) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue) as exc:
        api.rpc(user(make_user()), "register_device", **args)
    assert exc.value.diag.message_primary == message
    assert exc.value.diag.message_detail == message.split(":")[0]


def test_transfer_accept_moves_ownership_only_then(api: PostgrestSession, owner: Owner, make_user: MakeUser,
                                                   db: psycopg.Connection) -> None:
    api.rpc(owner.caller, "upload_sessions", device_id=owner.device_id, sessions=[session_item()])
    rid = make_user()
    recipient = user(rid)
    t = api.rpc(owner.caller, "offer_device_transfer", device_id=owner.device_id, to_email=email_of(db, rid))
    assert t["status"] == "pending"
    # before acceptance the recipient has no access to the device
    assert api.query(recipient, "select id from devices where id = %s", (owner.device_id,)) == []
    assert api.query(recipient, "update devices set nickname = 'x' where id = %s returning id", (owner.device_id,)) == []
    with pytest.raises(psycopg.errors.NoDataFound):
        api.rpc(recipient, "upload_sessions", device_id=owner.device_id, sessions=[session_item()])
    # both parties see the offer, nobody else does
    assert len(api.query(recipient, "select id from device_transfers where id = %s", (t["id"],))) == 1
    assert api.query(user(make_user()), "select id from device_transfers where id = %s", (t["id"],)) == []
    done = api.rpc(recipient, "respond_device_transfer", transfer_id=t["id"], accept=True)
    assert done["status"] == "accepted" and done["responded_at"] is not None and done["to_user_id"] == str(rid)
    assert db.execute("select owner_id from devices where id = %s", (owner.device_id,)).fetchone() == {"owner_id": rid}
    # history stays with the user who recorded it
    assert db.execute("select user_id from usage_sessions where device_id = %s", (owner.device_id,)).fetchone() == {"user_id": owner.id}
    assert api.query(owner.caller, "select id from devices where id = %s", (owner.device_id,)) == []


def test_only_the_recipient_can_accept(api: PostgrestSession, owner: Owner, make_user: MakeUser, db: psycopg.Connection) -> None:
    rid = make_user()
    t = api.rpc(owner.caller, "offer_device_transfer", device_id=owner.device_id, to_email=email_of(db, rid))
    for intruder in (owner.caller, user(make_user())):
        with pytest.raises(psycopg.errors.NoDataFound):
            api.rpc(intruder, "respond_device_transfer", transfer_id=t["id"], accept=True)
    assert db.execute("select owner_id from devices where id = %s", (owner.device_id,)).fetchone() == {"owner_id": owner.id}


def test_reject_and_cancel(api: PostgrestSession, owner: Owner, make_user: MakeUser, db: psycopg.Connection) -> None:
    rid = make_user()
    t = api.rpc(owner.caller, "offer_device_transfer", device_id=owner.device_id, to_email=email_of(db, rid))
    with pytest.raises(psycopg.errors.NoDataFound):
        api.rpc(user(rid), "cancel_device_transfer", transfer_id=t["id"])  # only the sender cancels
    assert api.rpc(user(rid), "respond_device_transfer", transfer_id=t["id"], accept=False)["status"] == "rejected"
    with pytest.raises(psycopg.errors.RaiseException, match="already rejected"):
        api.rpc(user(rid), "respond_device_transfer", transfer_id=t["id"], accept=True)
    t2 = api.rpc(owner.caller, "offer_device_transfer", device_id=owner.device_id, to_email=email_of(db, rid))
    assert api.rpc(owner.caller, "cancel_device_transfer", transfer_id=t2["id"])["status"] == "cancelled"
    with pytest.raises(psycopg.errors.RaiseException, match="already cancelled"):
        api.rpc(user(rid), "respond_device_transfer", transfer_id=t2["id"], accept=True)
    assert db.execute("select owner_id from devices where id = %s", (owner.device_id,)).fetchone() == {"owner_id": owner.id}


def test_no_duplicate_pending_offer(api: PostgrestSession, owner: Owner, make_user: MakeUser, db: psycopg.Connection) -> None:
    a, b = make_user(), make_user()
    api.rpc(owner.caller, "offer_device_transfer", device_id=owner.device_id, to_email=email_of(db, a))
    with pytest.raises(psycopg.errors.UniqueViolation, match="pending transfer"):
        api.rpc(owner.caller, "offer_device_transfer", device_id=owner.device_id, to_email=email_of(db, b))


@pytest.mark.parametrize("to_email", ["not-an-email", "a b@c.d", "x@", None, "x" * 320 + "@example.test"])
def test_offer_rejects_a_malformed_address(api: PostgrestSession, owner: Owner, to_email: str | None) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue) as exc:
        api.rpc(owner.caller, "offer_device_transfer", device_id=owner.device_id, to_email=to_email)
    assert exc.value.diag.message_primary == "to_email: must be an email address"


def test_an_offer_says_nothing_about_whether_the_address_has_an_account(
        api: PostgrestSession, make_user: MakeUser, db: psycopg.Connection) -> None:
    answers = []
    for to_email in (None, f"Nobody-{uuid.uuid4().hex[:8]}@Example.test "):
        uid = make_user()
        dev = api.rpc(user(uid), "register_device", serial_number=f"DTX-{uuid.uuid4().hex[:10]}")
        address = to_email or email_of(db, make_user())
        answers.append(api.rpc(user(uid), "offer_device_transfer", device_id=dev["id"], to_email=address))
    known, unknown = answers
    assert known.keys() == unknown.keys()
    for offer in (known, unknown):
        assert offer["status"] == "pending" and offer["to_user_id"] is None and offer["responded_at"] is None
    assert unknown["to_email"] == unknown["to_email"].strip().lower()


def test_an_account_made_later_with_that_address_can_accept(api: PostgrestSession, owner: Owner, make_user: MakeUser,
                                                            db: psycopg.Connection) -> None:
    address = f"later-{uuid.uuid4().hex[:8]}@example.test"
    t = api.rpc(owner.caller, "offer_device_transfer", device_id=owner.device_id, to_email=address.upper())
    rid = make_user(address)
    assert [str(r["id"]) for r in api.query(user(rid), "select id from device_transfers")] == [t["id"]]
    done = api.rpc(user(rid), "respond_device_transfer", transfer_id=t["id"], accept=True)
    assert (done["status"], done["to_user_id"]) == ("accepted", str(rid))
    assert db.execute("select owner_id from devices where id = %s", (owner.device_id,)).fetchone() == {"owner_id": rid}


def test_an_unconfirmed_address_claims_nothing(api: PostgrestSession, owner: Owner, make_user: MakeUser,
                                               db: psycopg.Connection) -> None:
    """Where sign-ups are not confirmed, anyone could register somebody else's address."""
    address = f"squatter-{uuid.uuid4().hex[:8]}@example.test"
    t = api.rpc(owner.caller, "offer_device_transfer", device_id=owner.device_id, to_email=address)
    squatter = make_user(address)
    db.execute("update auth.users set email_confirmed_at = null where id = %s", (squatter,))
    assert api.query(user(squatter), "select id from device_transfers") == []
    with pytest.raises(psycopg.errors.NoDataFound):
        api.rpc(user(squatter), "respond_device_transfer", transfer_id=t["id"], accept=True)
    db.execute("update auth.users set email_confirmed_at = now() where id = %s", (squatter,))
    assert api.rpc(user(squatter), "respond_device_transfer", transfer_id=t["id"], accept=False)["status"] == "rejected"


def test_offer_to_self_and_of_foreign_device(api: PostgrestSession, owner: Owner, make_user: MakeUser, db: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="your own account"):
        api.rpc(owner.caller, "offer_device_transfer", device_id=owner.device_id, to_email=email_of(db, owner.id))
    thief = make_user()
    with pytest.raises(psycopg.errors.NoDataFound):
        api.rpc(user(thief), "offer_device_transfer", device_id=owner.device_id, to_email=email_of(db, thief))


def test_stale_offer_is_void_after_ownership_changed(api: PostgrestSession, owner: Owner, make_user: MakeUser,
                                                     db: psycopg.Connection) -> None:
    rid = make_user()
    t = api.rpc(owner.caller, "offer_device_transfer", device_id=owner.device_id, to_email=email_of(db, rid))
    other = make_user()
    db.execute("update devices set owner_id = %s where id = %s", (other, owner.device_id))  # e.g. by support
    with pytest.raises(psycopg.errors.RaiseException, match="changed owner"):
        api.rpc(user(rid), "respond_device_transfer", transfer_id=t["id"], accept=True)
    assert db.execute("select owner_id from devices where id = %s", (owner.device_id,)).fetchone() == {"owner_id": other}


def test_user_may_rename_and_deactivate_own_device(api: PostgrestSession, owner: Owner) -> None:
    rows = api.query(owner.caller, "update devices set nickname = 'Mirror', is_active = false where id = %s"
                                   " returning nickname, is_active", (owner.device_id,))
    assert rows == [{"nickname": "Mirror", "is_active": False}]
    with pytest.raises(psycopg.errors.CheckViolation):
        api.query(owner.caller, "update devices set ble_address = 'nonsense' where id = %s", (owner.device_id,))
