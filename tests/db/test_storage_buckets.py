"""The profile-images and device-logs buckets: who may list, upload, replace and delete which objects.

Objects are rows of storage.objects, queried as the caller the way the Storage server does it (it runs object
queries with the caller's JWT, so these policies are what decides)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from tests.conftest import MakeUser
from tests.support.pgrest import ANON, SERVICE, Caller, PostgrestSession, user

Conn = psycopg.Connection[dict[str, Any]]


@dataclass
class Party:
    id: uuid.UUID
    caller: Caller
    device: uuid.UUID
    image: str
    log: str


@pytest.fixture
def parties(api: PostgrestSession, db: Conn, make_user: MakeUser) -> tuple[Party, Party]:
    """Two users, each with a device, a profile image and a device log already stored."""
    out = []
    for _ in range(2):
        uid = make_user()
        dev = uuid.UUID(api.rpc(user(uid), "register_device", serial_number=f"DTX-{uuid.uuid4().hex[:10].upper()}")["id"])
        image, log = f"{uid}/avatar.jpg", f"{uid}/{dev}/boot-0001.log"
        db.execute("insert into storage.objects (bucket_id, name, metadata) values"
                   " ('profile-images', %s, '{}'), ('device-logs', %s, '{}')", (image, log))
        out.append(Party(uid, user(uid), dev, image, log))
    return out[0], out[1]


def names(api: PostgrestSession, caller: Caller, bucket: str, prefix: str = "") -> list[str]:
    rows = api.query(caller, "select name from storage.objects where bucket_id = %s and name like %s order by name",
                     (bucket, prefix + "%"))
    return [r["name"] for r in rows]


def insert(api: PostgrestSession, caller: Caller, bucket: str, name: str) -> None:
    api.query(caller, "insert into storage.objects (bucket_id, name, metadata) values (%s, %s, '{}')", (bucket, name))


def delete(api: PostgrestSession, caller: Caller, bucket: str, name: str) -> int:
    """As the Storage server deletes: it marks the transaction, then deletes as the caller."""
    with api.request(caller) as cur:
        cur.execute("select set_config('storage.allow_delete_query', 'true', true)")
        cur.execute("delete from storage.objects where bucket_id = %s and name = %s returning 1", (bucket, name))
        return len(cur.fetchall())


def test_buckets_are_private_with_limits(db: Conn) -> None:
    rows = db.execute("select id, public, file_size_limit, allowed_mime_types from storage.buckets"
                      " where id in ('profile-images', 'device-logs') order by id").fetchall()
    assert rows == [
        {"id": "device-logs", "public": False, "file_size_limit": 10485760,
         "allowed_mime_types": ["text/plain", "application/gzip", "application/octet-stream"]},
        {"id": "profile-images", "public": False, "file_size_limit": 2097152,
         "allowed_mime_types": ["image/jpeg", "image/png", "image/webp"]},
    ]


@pytest.mark.parametrize("bucket", ["profile-images", "device-logs"])
def test_each_user_lists_only_their_own_folder(api: PostgrestSession, parties: tuple[Party, Party],
                                               make_user: MakeUser, bucket: str) -> None:
    a, b = parties
    own = {"profile-images": a.image, "device-logs": a.log}[bucket]
    assert names(api, a.caller, bucket, f"{a.id}/") == [own]
    assert names(api, a.caller, bucket, f"{b.id}/") == []
    assert names(api, ANON, bucket) == []
    assert names(api, user(make_user()), bucket, f"{a.id}/") == []
    admin = user(make_user(admin=True))
    assert len(names(api, admin, bucket, f"{a.id}/")) == 1 and len(names(api, admin, bucket, f"{b.id}/")) == 1
    assert len(names(api, SERVICE, bucket, f"{b.id}/")) == 1


def test_profile_image_uploads(api: PostgrestSession, db: Conn, parties: tuple[Party, Party],
                               make_user: MakeUser) -> None:
    a, b = parties
    insert(api, a.caller, "profile-images", f"{a.id}/photo-2.png")
    insert(api, a.caller, "profile-images", f"{a.id}/photo.webp")
    refused = [f"{b.id}/mine-now.jpg",          # another user's folder
               f"{a.id}/nested/photo.jpg",      # only directly in the own folder
               f"{a.id}/photo.gif", f"{a.id}/photo", f"{a.id}/.jpg", f"{a.id}/../{b.id}/x.jpg",
               "photo.jpg", f"{str(a.id).upper()}/photo.jpg"]
    for name in refused:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            insert(api, a.caller, "profile-images", name)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        insert(api, ANON, "profile-images", f"{a.id}/anon.jpg")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        insert(api, user(make_user(admin=True)), "profile-images", f"{a.id}/by-admin.jpg")
    db.execute("update profiles set is_active = false where id = %s", (a.id,))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        insert(api, a.caller, "profile-images", f"{a.id}/while-deactivated.jpg")
    db.execute("update profiles set is_active = true where id = %s", (a.id,))
    assert names(api, a.caller, "profile-images", f"{a.id}/") == [a.image, f"{a.id}/photo-2.png", f"{a.id}/photo.webp"]


def test_profile_image_replace_and_move_stay_in_the_own_folder(api: PostgrestSession,
                                                                parties: tuple[Party, Party]) -> None:
    a, b = parties
    rows = api.query(a.caller, "update storage.objects set name = %s, metadata = '{\"v\": 2}'"
                               " where bucket_id = 'profile-images' and name = %s returning name",
                     (f"{a.id}/avatar.png", a.image))
    assert rows == [{"name": f"{a.id}/avatar.png"}]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        api.query(a.caller, "update storage.objects set name = %s where bucket_id = 'profile-images' and name = %s",
                  (f"{b.id}/avatar.png", f"{a.id}/avatar.png"))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):  # nor into another bucket
        api.query(a.caller, "update storage.objects set bucket_id = 'reports' where name = %s", (f"{a.id}/avatar.png",))
    assert api.query(a.caller, "update storage.objects set metadata = '{}' where name = %s returning 1", (b.image,)) == []


def test_device_log_uploads_need_an_own_active_device(api: PostgrestSession, db: Conn,
                                                      parties: tuple[Party, Party]) -> None:
    a, b = parties
    insert(api, a.caller, "device-logs", f"{a.id}/{a.device}/crash-17.txt")
    insert(api, a.caller, "device-logs", f"{a.id}/{a.device}/trace.bin")
    refused = [f"{a.id}/{b.device}/x.log",       # b's device in a's folder
               f"{b.id}/{b.device}/x.log",       # b's folder
               f"{a.id}/{uuid.uuid4()}/x.log",   # no such device
               f"{a.id}/x.log", f"{a.id}/{a.device}/deeper/x.log", f"{a.id}/{a.device}/x.exe",
               f"{a.id}/not-a-uuid/x.log", f"{a.id}/{str(a.device).upper()}/x.log"]
    for name in refused:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            insert(api, a.caller, "device-logs", name)
    api.query(a.caller, "update devices set is_active = false where id = %s", (a.device,))  # PATCH /devices
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        insert(api, a.caller, "device-logs", f"{a.id}/{a.device}/after-deactivation.log")
    assert names(api, a.caller, "device-logs") == [a.log, f"{a.id}/{a.device}/crash-17.txt",
                                                  f"{a.id}/{a.device}/trace.bin"]


def test_device_logs_are_never_rewritten(api: PostgrestSession, parties: tuple[Party, Party],
                                         make_user: MakeUser) -> None:
    a, _ = parties
    admin = user(make_user(admin=True))
    for caller in (a.caller, admin):
        assert api.query(caller, "update storage.objects set metadata = '{\"x\": 1}'"
                                 " where bucket_id = 'device-logs' and name = %s returning 1", (a.log,)) == []


@pytest.mark.parametrize("bucket", ["profile-images", "device-logs"])
def test_deletes(api: PostgrestSession, parties: tuple[Party, Party], make_user: MakeUser, bucket: str) -> None:
    a, b = parties
    obj = {"profile-images": lambda p: p.image, "device-logs": lambda p: p.log}[bucket]
    assert delete(api, a.caller, bucket, obj(b)) == 0
    assert delete(api, ANON, bucket, obj(b)) == 0
    assert delete(api, a.caller, bucket, obj(a)) == 1
    assert delete(api, user(make_user(admin=True)), bucket, obj(b)) == 1
    assert names(api, SERVICE, bucket, f"{a.id}/") == [] and names(api, SERVICE, bucket, f"{b.id}/") == []
