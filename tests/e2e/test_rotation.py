"""Key rotation and ReEncrypt (docs: notes/LIFECYCLE.md, "Second slice: rotation and ReEncrypt"): EnableKeyRotation,
DisableKeyRotation, GetKeyRotationStatus, RotateKeyOnDemand, ListKeyRotations, automatic rotation under the dev clock
(EnclaveKms.AdvanceClock), restarts inside a rotation period, and ReEncrypt -- through boto3, the AWS CLI and signed
raw requests for the clock."""

from __future__ import annotations

import base64
import datetime
import json
import time
import uuid

import pytest

from kmstest import assert_client_error, unique
from test_lifecycle_states import (
    DAY,
    STATES,
    advance,
    assert_dry_run,
    describe,
    epoch,
    new_key,
    state_of,
    to_state,
)
from test_protocol import RawClient

GARBAGE_BLOB = b"\x01\x02" + bytes(range(200))
UNKNOWN_KEY = "11111111-2222-4333-8444-555555555555"
TOLERANCE = 120  # seconds of slack around "now" for dates the server computes
MAX_ON_DEMAND = 25


# ---- helpers ------------------------------------------------------------------------------------------------------


def version_of(blob: bytes) -> int:
    """The backing-key version of a ciphertext blob (bytes 17..21, big-endian u32)."""
    assert len(blob) > 21, f"ciphertext blob too short: {blob!r}"
    return int.from_bytes(blob[17:21], "big")


def assert_blob_of(blob: bytes, key_id: str, version: int) -> None:
    """The blob names the key (bytes 1..17, the UUID) and the backing-key version."""
    assert blob[1:17] == uuid.UUID(key_id).bytes, f"blob header names {blob[1:17].hex()}, expected key {key_id}"
    assert version_of(blob) == version, f"blob has key version {version_of(blob)}, expected {version}"


def rotation_status(kms, key_id) -> dict:
    r = kms.get_key_rotation_status(KeyId=key_id)
    r.pop("ResponseMetadata", None)
    return r


def all_rotations(kms, key_id, limit=None) -> list:
    """Every ListKeyRotations entry of a key, following NextMarker."""
    out, marker = [], None
    for _ in range(200):
        kwargs = {"KeyId": key_id}
        if limit is not None:
            kwargs["Limit"] = limit
        if marker:
            kwargs["Marker"] = marker
        page = kms.list_key_rotations(**kwargs)
        out.extend(page["Rotations"])
        if not page["Truncated"]:
            assert "NextMarker" not in page, f"Truncated=false page with a NextMarker: {page!r}"
            return out
        assert page.get("NextMarker"), f"Truncated=true page without NextMarker: {page!r}"
        marker = page["NextMarker"]
    pytest.fail("ListKeyRotations kept answering Truncated=true")


def rotation_types(kms, key_id) -> list:
    return [r["RotationType"] for r in all_rotations(kms, key_id)]


def assert_rotation_entries(entries: list, arn: str, types: list) -> None:
    """Entries name the key's ARN, have the given types in order, and come oldest first."""
    assert [e["RotationType"] for e in entries] == types, entries
    for entry in entries:
        assert set(entry) == {"KeyId", "KeyMaterialId", "RotationDate", "RotationType"}, entry
        assert entry["KeyId"] == arn, entry
    dates = [epoch(e["RotationDate"]) for e in entries]
    assert dates == sorted(dates), f"ListKeyRotations must list oldest first: {dates}"


def assert_near(actual: float, expected: float, what: str, tolerance: float = TOLERANCE) -> None:
    assert abs(actual - expected) <= tolerance, (
        f"{what}: {actual} ({datetime.datetime.fromtimestamp(actual, datetime.timezone.utc)}) is not within "
        f"{tolerance}s of {expected} ({datetime.datetime.fromtimestamp(expected, datetime.timezone.utc)})")


def cli_time(value) -> float:
    """A timestamp as the AWS CLI prints it (epoch number or ISO 8601 string)."""
    if isinstance(value, (int, float)):
        return float(value)
    assert isinstance(value, str), f"not a timestamp: {value!r}"
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def cli_fails_with(server, code, *args):
    rc, out, err = server.aws(*args)
    assert rc != 0, f"`aws kms {' '.join(map(str, args))}` succeeded, expected {code}: {out!r}"
    assert f"({code})" in err, f"`aws kms {' '.join(map(str, args))}`: expected {code} in stderr: {err!r}"


def alias_arn_of(key_arn: str, alias: str) -> str:
    return key_arn.split(":key/")[0] + ":" + alias


def tamper(blob: bytes, index: int) -> bytes:
    b = bytearray(blob)
    b[index] ^= 0x01
    return bytes(b)


# ---- rotation status and settings ---------------------------------------------------------------------------------


def test_new_key_has_no_rotation(kms):
    key = new_key(kms)
    assert rotation_status(kms, key["KeyId"]) == {"KeyRotationEnabled": False, "KeyId": key["Arn"]}
    r = kms.list_key_rotations(KeyId=key["KeyId"])
    r.pop("ResponseMetadata")
    assert r == {"Rotations": [], "Truncated": False}, "the original material is not a rotation"
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"v1")["CiphertextBlob"]
    assert_blob_of(blob, key["KeyId"], 1)


def test_enable_key_rotation_default_period(kms):
    key = new_key(kms)
    before = time.time()
    r = kms.enable_key_rotation(KeyId=key["KeyId"])
    after = time.time()
    assert set(r) == {"ResponseMetadata"}, r
    s = rotation_status(kms, key["KeyId"])
    assert set(s) == {"KeyRotationEnabled", "KeyId", "RotationPeriodInDays", "NextRotationDate"}, s
    assert s["KeyRotationEnabled"] is True and s["KeyId"] == key["Arn"], s
    assert s["RotationPeriodInDays"] == 365, s
    assert before + 365 * DAY - TOLERANCE <= epoch(s["NextRotationDate"]) <= after + 365 * DAY + TOLERANCE, (
        before, s)
    # enabling is not a rotation
    assert all_rotations(kms, key["KeyId"]) == []


@pytest.mark.parametrize("days", [90, 2560, 180])
def test_enable_key_rotation_period_accepted(kms, days):
    key = new_key(kms)
    before = time.time()
    kms.enable_key_rotation(KeyId=key["Arn"], RotationPeriodInDays=days)
    s = rotation_status(kms, key["Arn"])
    assert s["KeyRotationEnabled"] is True and s["RotationPeriodInDays"] == days and s["KeyId"] == key["Arn"], s
    assert_near(epoch(s["NextRotationDate"]), before + days * DAY, "NextRotationDate")


@pytest.mark.parametrize("days", [89, 2561, 0, -1])
def test_enable_key_rotation_period_out_of_range(kms_raw, days):
    key = new_key(kms_raw)
    assert_client_error("ValidationException", kms_raw.enable_key_rotation, KeyId=key["KeyId"],
                        RotationPeriodInDays=days)
    assert rotation_status(kms_raw, key["KeyId"]) == {"KeyRotationEnabled": False, "KeyId": key["Arn"]}
    # and a refused change of period leaves an enabled rotation as it was
    kms_raw.enable_key_rotation(KeyId=key["KeyId"], RotationPeriodInDays=100)
    first = rotation_status(kms_raw, key["KeyId"])
    assert_client_error("ValidationException", kms_raw.enable_key_rotation, KeyId=key["KeyId"],
                        RotationPeriodInDays=days)
    assert rotation_status(kms_raw, key["KeyId"]) == first


def test_enable_key_rotation_again_changes_the_period(kms):
    key_id = new_key(kms)["KeyId"]
    kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=365)
    first = rotation_status(kms, key_id)
    time.sleep(1.1)
    before = time.time()
    kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
    s = rotation_status(kms, key_id)
    assert s["RotationPeriodInDays"] == 90 and s["KeyRotationEnabled"] is True, s
    assert_near(epoch(s["NextRotationDate"]), before + 90 * DAY, "NextRotationDate after the new period")
    assert epoch(s["NextRotationDate"]) < epoch(first["NextRotationDate"]) - 200 * DAY, (first, s)
    # back to the default when the period is left out
    kms.enable_key_rotation(KeyId=key_id)
    assert rotation_status(kms, key_id)["RotationPeriodInDays"] == 365


def test_disable_key_rotation(kms):
    key = new_key(kms)
    # disabling a rotation that is not enabled is fine
    assert set(kms.disable_key_rotation(KeyId=key["KeyId"])) == {"ResponseMetadata"}
    assert rotation_status(kms, key["KeyId"]) == {"KeyRotationEnabled": False, "KeyId": key["Arn"]}

    kms.enable_key_rotation(KeyId=key["KeyId"], RotationPeriodInDays=120)
    assert rotation_status(kms, key["KeyId"])["KeyRotationEnabled"] is True
    assert set(kms.disable_key_rotation(KeyId=key["Arn"])) == {"ResponseMetadata"}
    assert rotation_status(kms, key["KeyId"]) == {"KeyRotationEnabled": False, "KeyId": key["Arn"]}
    # the key still works, with its original material
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")["CiphertextBlob"]
    assert_blob_of(blob, key["KeyId"], 1)

    before = time.time()
    kms.enable_key_rotation(KeyId=key["KeyId"])
    s = rotation_status(kms, key["KeyId"])
    assert s["RotationPeriodInDays"] == 365, s
    assert_near(epoch(s["NextRotationDate"]), before + 365 * DAY, "NextRotationDate after re-enabling")


ROTATION_OPS = {
    "EnableKeyRotation": lambda kms, key_id: kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90),
    "DisableKeyRotation": lambda kms, key_id: kms.disable_key_rotation(KeyId=key_id),
    "RotateKeyOnDemand": lambda kms, key_id: kms.rotate_key_on_demand(KeyId=key_id),
}
STATE_ERRORS = {"Disabled": "DisabledException", "PendingDeletion": "KMSInvalidStateException"}


@pytest.mark.parametrize("state", ["Disabled", "PendingDeletion"])
@pytest.mark.parametrize("operation", list(ROTATION_OPS))
def test_rotation_operations_state_errors(kms, operation, state):
    key = new_key(kms)
    key_id = key["KeyId"]
    kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=200)
    before = rotation_status(kms, key_id)
    to_state(kms, key_id, state)
    assert_client_error(STATE_ERRORS[state], ROTATION_OPS[operation], kms, key_id)
    assert state_of(kms, key_id) == state

    # back to Enabled: nothing changed (same period and date, no new version)
    if state == "PendingDeletion":
        kms.cancel_key_deletion(KeyId=key_id)
    kms.enable_key(KeyId=key_id)
    assert rotation_status(kms, key_id) == before
    assert all_rotations(kms, key_id) == []
    assert_blob_of(kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"], key_id, 1)
    # and the operation works again
    ROTATION_OPS[operation](kms, key_id)


@pytest.mark.parametrize("rotation", [True, False], ids=["rotation-on", "rotation-off"])
@pytest.mark.parametrize("state", STATES)
def test_get_key_rotation_status_in_every_state(kms, state, rotation):
    key = new_key(kms)
    key_id = key["KeyId"]
    if rotation:
        kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=180)
    before = rotation_status(kms, key_id)
    to_state(kms, key_id, state)
    for ref in (key_id, key["Arn"]):
        s = rotation_status(kms, ref)
        assert s["KeyId"] == key["Arn"], s
        assert "OnDemandRotationStartDate" not in s, s
        if rotation and state != "PendingDeletion":
            assert s == before, f"{state}: status changed from {before!r} to {s!r}"
            assert s["KeyRotationEnabled"] is True and s["RotationPeriodInDays"] == 180, s
        elif rotation:
            # AWS reports false while a key is pending deletion; either answer must be self-consistent
            assert isinstance(s["KeyRotationEnabled"], bool), s
            if s["KeyRotationEnabled"]:
                assert s == before, s
            else:
                assert set(s) == {"KeyRotationEnabled", "KeyId"}, s
        else:
            assert s == {"KeyRotationEnabled": False, "KeyId": key["Arn"]}, s
    if state == "PendingDeletion":
        kms.cancel_key_deletion(KeyId=key_id)
        kms.enable_key(KeyId=key_id)
        assert rotation_status(kms, key_id) == before, "cancelling the deletion must give the rotation back"


@pytest.mark.parametrize("operation", ["get_key_rotation_status", "enable_key_rotation", "disable_key_rotation",
                                       "rotate_key_on_demand", "list_key_rotations"])
def test_rotation_operations_on_unknown_key(kms_raw, operation):
    assert_client_error("NotFoundException", getattr(kms_raw, operation), KeyId=UNKNOWN_KEY)


# ---- RotateKeyOnDemand and ListKeyRotations ----------------------------------------------------------------------


def test_rotate_on_demand_every_version_decrypts(kms):
    key = new_key(kms)
    key_id, arn = key["KeyId"], key["Arn"]
    context = {"purpose": "rotation"}
    made = []  # (blob, plaintext, version, context)

    def make(version, label):
        pt = f"{label} v{version}".encode()
        blob = kms.encrypt(KeyId=key_id, Plaintext=pt)["CiphertextBlob"]
        assert_blob_of(blob, key_id, version)
        made.append((blob, pt, version, None))
        pt2 = f"{label} v{version} with context".encode()
        r = kms.encrypt(KeyId=key_id, Plaintext=pt2, EncryptionContext=context)
        assert r["KeyId"] == arn
        assert_blob_of(r["CiphertextBlob"], key_id, version)
        made.append((r["CiphertextBlob"], pt2, version, context))

    rotations = 4
    for n in range(1, rotations + 1):
        make(n, "before rotation")
        r = kms.rotate_key_on_demand(KeyId=key_id)
        r.pop("ResponseMetadata")
        assert r == {"KeyId": arn}, r
        make(n + 1, "after rotation")

    # GenerateDataKey and GenerateDataKeyWithoutPlaintext use the newest version too
    newest = rotations + 1
    gdk = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    assert_blob_of(gdk["CiphertextBlob"], key_id, newest)
    assert kms.decrypt(CiphertextBlob=gdk["CiphertextBlob"])["Plaintext"] == gdk["Plaintext"]
    gdkwp = kms.generate_data_key_without_plaintext(KeyId=key_id, NumberOfBytes=16)
    assert_blob_of(gdkwp["CiphertextBlob"], key_id, newest)

    assert sorted({v for _, _, v, _ in made}) == list(range(1, newest + 1))
    for blob, pt, version, ctx in made:
        kwargs = {"EncryptionContext": ctx} if ctx else {}
        r = kms.decrypt(CiphertextBlob=blob, **kwargs)
        assert r["Plaintext"] == pt, f"version {version}"
        assert r["KeyId"] == arn
        # the version byte is authenticated: pointing an old ciphertext at another version fails
        other = bytearray(blob)
        other[17:21] = (version % newest + 1).to_bytes(4, "big")
        assert_client_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=bytes(other), **kwargs)
    # a version that does not exist yet
    future = bytearray(made[0][0])
    future[17:21] = (newest + 1).to_bytes(4, "big")
    assert_client_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=bytes(future))


def test_list_key_rotations_entries(kms):
    key = new_key(kms)
    key_id, arn = key["KeyId"], key["Arn"]
    before = time.time()
    for _ in range(3):
        kms.rotate_key_on_demand(KeyId=key_id)
        time.sleep(1.05)  # distinct seconds, so that the order is visible in the dates
    after = time.time()
    r = kms.list_key_rotations(KeyId=key_id)
    assert r["Truncated"] is False and "NextMarker" not in r, r
    entries = r["Rotations"]
    assert_rotation_entries(entries, arn, ["ON_DEMAND"] * 3)
    dates = [epoch(e["RotationDate"]) for e in entries]
    for d in dates:
        assert before - TOLERANCE <= d <= after + TOLERANCE, (before, dates, after)
    assert dates[0] < dates[2], f"three rotations a second apart share a date: {dates}"
    # by ARN too, and Limit=1000 is accepted
    assert kms.list_key_rotations(KeyId=arn, Limit=1000)["Rotations"] == entries


def test_list_key_rotations_paging(kms, kms_raw):
    key = new_key(kms)
    key_id = key["KeyId"]
    for _ in range(3):
        kms.rotate_key_on_demand(KeyId=key_id)
    full = kms.list_key_rotations(KeyId=key_id)["Rotations"]
    assert len(full) == 3, full

    pages, marker = [], None
    for _ in range(10):
        kwargs = {"KeyId": key_id, "Limit": 1}
        if marker:
            kwargs["Marker"] = marker
        page = kms.list_key_rotations(**kwargs)
        pages.append(page["Rotations"])
        if not page["Truncated"]:
            assert "NextMarker" not in page, page
            break
        assert page.get("NextMarker"), page
        marker = page["NextMarker"]
    assert [len(p) for p in pages] == [1, 1, 1], pages
    assert [e for p in pages for e in p] == full
    two = kms.list_key_rotations(KeyId=key_id, Limit=2)
    assert two["Rotations"] == full[:2] and two["Truncated"] is True, two
    rest = kms.list_key_rotations(KeyId=key_id, Limit=2, Marker=two["NextMarker"])
    assert rest["Rotations"] == full[2:] and rest["Truncated"] is False, rest

    assert_client_error("InvalidMarkerException", kms.list_key_rotations, KeyId=key_id, Marker="not-a-marker")
    for limit in (0, 1001):
        assert_client_error("ValidationException", kms_raw.list_key_rotations, KeyId=key_id, Limit=limit)


def test_on_demand_rotation_limit(kms):
    key = new_key(kms)
    key_id, arn = key["KeyId"], key["Arn"]
    first = kms.encrypt(KeyId=key_id, Plaintext=b"original material")["CiphertextBlob"]
    for n in range(MAX_ON_DEMAND):
        try:
            kms.rotate_key_on_demand(KeyId=key_id)
        except Exception as exc:  # noqa: BLE001 -- report which rotation failed
            pytest.fail(f"on-demand rotation #{n + 1} of {MAX_ON_DEMAND} failed: {exc}", pytrace=False)
    assert_client_error("LimitExceededException", kms.rotate_key_on_demand, KeyId=key_id)
    assert_client_error("LimitExceededException", kms.rotate_key_on_demand, KeyId=arn)
    entries = all_rotations(kms, key_id)
    assert_rotation_entries(entries, arn, ["ON_DEMAND"] * MAX_ON_DEMAND)
    assert len(kms.list_key_rotations(KeyId=key_id)["Rotations"]) == MAX_ON_DEMAND  # default Limit 100
    # the refused rotations added no version
    last = kms.encrypt(KeyId=key_id, Plaintext=b"newest")["CiphertextBlob"]
    assert_blob_of(last, key_id, MAX_ON_DEMAND + 1)
    assert kms.decrypt(CiphertextBlob=first)["Plaintext"] == b"original material"
    assert kms.decrypt(CiphertextBlob=last)["Plaintext"] == b"newest"
    # the limit is per key
    other = new_key(kms)
    assert kms.rotate_key_on_demand(KeyId=other["KeyId"])["KeyId"] == other["Arn"]


def test_on_demand_rotation_keeps_next_rotation_date(kms):
    key_id = new_key(kms)["KeyId"]
    kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
    before = rotation_status(kms, key_id)
    time.sleep(1.1)
    kms.rotate_key_on_demand(KeyId=key_id)
    kms.rotate_key_on_demand(KeyId=key_id)
    assert rotation_status(kms, key_id) == before
    assert rotation_types(kms, key_id) == ["ON_DEMAND", "ON_DEMAND"]


# ---- the AWS CLI --------------------------------------------------------------------------------------------------


def test_cli_rotation(server, kms):
    key = new_key(kms)
    key_id, arn = key["KeyId"], key["Arn"]
    assert server.aws_ok("get-key-rotation-status", "--key-id", key_id) == {"KeyRotationEnabled": False,
                                                                             "KeyId": arn}
    before = time.time()
    assert server.aws("enable-key-rotation", "--key-id", key_id, "--rotation-period-in-days", "120")[0] == 0
    out = server.aws_ok("get-key-rotation-status", "--key-id", key_id)
    assert out["KeyRotationEnabled"] is True and out["KeyId"] == arn and out["RotationPeriodInDays"] == 120, out
    assert_near(cli_time(out["NextRotationDate"]), before + 120 * DAY, "NextRotationDate (CLI)")

    blob_v1 = kms.encrypt(KeyId=key_id, Plaintext=b"cli v1")["CiphertextBlob"]
    assert server.aws_ok("rotate-key-on-demand", "--key-id", key_id) == {"KeyId": arn}
    assert server.aws_ok("rotate-key-on-demand", "--key-id", arn) == {"KeyId": arn}
    # the next rotation date did not move
    again = server.aws_ok("get-key-rotation-status", "--key-id", arn)
    assert cli_time(again["NextRotationDate"]) == cli_time(out["NextRotationDate"]), (out, again)
    # --no-paginate: the CLI's own paging would strip Truncated from the output
    listed = server.aws_ok("list-key-rotations", "--key-id", key_id, "--no-paginate")
    assert listed["Truncated"] is False and "NextMarker" not in listed, listed
    assert [(e["KeyId"], e["RotationType"]) for e in listed["Rotations"]] == [(arn, "ON_DEMAND")] * 2, listed
    dates = [cli_time(e["RotationDate"]) for e in listed["Rotations"]]
    assert dates == sorted(dates) and all(before - TOLERANCE <= d <= time.time() + TOLERANCE for d in dates), dates
    page = server.aws_ok("list-key-rotations", "--key-id", key_id, "--limit", "1", "--no-paginate")
    assert len(page["Rotations"]) == 1 and page["Truncated"] is True and page["NextMarker"], page

    blob_v3 = kms.encrypt(KeyId=key_id, Plaintext=b"cli v3")["CiphertextBlob"]
    assert_blob_of(blob_v3, key_id, 3)
    assert kms.decrypt(CiphertextBlob=blob_v1)["Plaintext"] == b"cli v1"

    assert server.aws("disable-key-rotation", "--key-id", key_id)[0] == 0
    assert server.aws_ok("get-key-rotation-status", "--key-id", key_id) == {"KeyRotationEnabled": False,
                                                                             "KeyId": arn}

    kms.disable_key(KeyId=key_id)
    cli_fails_with(server, "DisabledException", "enable-key-rotation", "--key-id", key_id)
    cli_fails_with(server, "DisabledException", "rotate-key-on-demand", "--key-id", key_id)
    cli_fails_with(server, "NotFoundException", "get-key-rotation-status", "--key-id", UNKNOWN_KEY)


def test_cli_re_encrypt(server, kms, tmp_path):
    src, dst = new_key(kms), new_key(kms)
    blob = kms.encrypt(KeyId=src["KeyId"], Plaintext=b"via the cli", EncryptionContext={"from": "src"})[
        "CiphertextBlob"]
    path = tmp_path / "ct.bin"
    path.write_bytes(blob)
    out = server.aws_ok("re-encrypt", "--ciphertext-blob", f"fileb://{path}",
                        "--source-encryption-context", json.dumps({"from": "src"}),
                        "--destination-key-id", dst["KeyId"],
                        "--destination-encryption-context", json.dumps({"to": "dst"}))
    assert set(out) == {"CiphertextBlob", "SourceKeyId", "KeyId", "SourceEncryptionAlgorithm",
                        "DestinationEncryptionAlgorithm", "SourceKeyMaterialId", "DestinationKeyMaterialId"}, out
    assert out["KeyId"] == dst["Arn"] and out["SourceKeyId"] == src["Arn"], out
    assert out["SourceEncryptionAlgorithm"] == out["DestinationEncryptionAlgorithm"] == "SYMMETRIC_DEFAULT", out
    new_blob = base64.b64decode(out["CiphertextBlob"], validate=True)
    assert_blob_of(new_blob, dst["KeyId"], 1)
    r = kms.decrypt(CiphertextBlob=new_blob, EncryptionContext={"to": "dst"})
    assert r["Plaintext"] == b"via the cli" and r["KeyId"] == dst["Arn"]

    cli_fails_with(server, "InvalidCiphertextException", "re-encrypt", "--ciphertext-blob", f"fileb://{path}",
                   "--destination-key-id", dst["KeyId"])
    kms.disable_key(KeyId=dst["KeyId"])
    cli_fails_with(server, "DisabledException", "re-encrypt", "--ciphertext-blob", f"fileb://{path}",
                   "--source-encryption-context", json.dumps({"from": "src"}), "--destination-key-id", dst["KeyId"])


# ---- ReEncrypt ----------------------------------------------------------------------------------------------------


def re_encrypt(kms, **kwargs) -> dict:
    r = kms.re_encrypt(**kwargs)
    r.pop("ResponseMetadata", None)
    assert set(r) == {"CiphertextBlob", "SourceKeyId", "KeyId", "SourceEncryptionAlgorithm",
                      "DestinationEncryptionAlgorithm", "SourceKeyMaterialId", "DestinationKeyMaterialId"}, r
    assert r["SourceEncryptionAlgorithm"] == "SYMMETRIC_DEFAULT", r
    assert r["DestinationEncryptionAlgorithm"] == "SYMMETRIC_DEFAULT", r
    return r


def test_re_encrypt_to_another_key(kms):
    src, dst = new_key(kms), new_key(kms)
    ctx_src, ctx_dst = {"stage": "source", "n": "1"}, {"stage": "destination"}
    blob = kms.encrypt(KeyId=src["KeyId"], Plaintext=b"moving secret", EncryptionContext=ctx_src)["CiphertextBlob"]
    r = re_encrypt(kms, CiphertextBlob=blob, SourceEncryptionContext=ctx_src, DestinationKeyId=dst["KeyId"],
                   DestinationEncryptionContext=ctx_dst)
    assert r["KeyId"] == dst["Arn"] and r["SourceKeyId"] == src["Arn"], r
    new_blob = r["CiphertextBlob"]
    assert b"moving secret" not in new_blob
    assert_blob_of(new_blob, dst["KeyId"], 1)

    d = kms.decrypt(CiphertextBlob=new_blob, EncryptionContext=ctx_dst)
    assert d["Plaintext"] == b"moving secret" and d["KeyId"] == dst["Arn"], d
    assert kms.decrypt(CiphertextBlob=new_blob, EncryptionContext=ctx_dst, KeyId=dst["Arn"])["KeyId"] == dst["Arn"]
    assert_client_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=new_blob)
    assert_client_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=new_blob,
                        EncryptionContext=ctx_src)
    assert_client_error("IncorrectKeyException", kms.decrypt, CiphertextBlob=new_blob, EncryptionContext=ctx_dst,
                        KeyId=src["KeyId"])
    # the source ciphertext is untouched
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx_src)["Plaintext"] == b"moving secret"

    # without any context, and with the algorithms named explicitly
    plain = kms.encrypt(KeyId=src["KeyId"], Plaintext=b"no context")["CiphertextBlob"]
    r = re_encrypt(kms, CiphertextBlob=plain, DestinationKeyId=dst["Arn"],
                   SourceEncryptionAlgorithm="SYMMETRIC_DEFAULT", DestinationEncryptionAlgorithm="SYMMETRIC_DEFAULT",
                   GrantTokens=["grant-token-ignored"])
    assert r["KeyId"] == dst["Arn"] and r["SourceKeyId"] == src["Arn"], r
    assert kms.decrypt(CiphertextBlob=r["CiphertextBlob"])["Plaintext"] == b"no context"


def test_re_encrypt_same_key_new_context(kms):
    key = new_key(kms)
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"same key", EncryptionContext={"v": "old"})["CiphertextBlob"]
    r = re_encrypt(kms, CiphertextBlob=blob, SourceEncryptionContext={"v": "old"}, DestinationKeyId=key["KeyId"],
                   DestinationEncryptionContext={"v": "new"})
    assert r["KeyId"] == key["Arn"] and r["SourceKeyId"] == key["Arn"], r
    assert r["CiphertextBlob"] != blob
    assert_blob_of(r["CiphertextBlob"], key["KeyId"], 1)
    assert kms.decrypt(CiphertextBlob=r["CiphertextBlob"], EncryptionContext={"v": "new"})["Plaintext"] == b"same key"
    assert_client_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=r["CiphertextBlob"],
                        EncryptionContext={"v": "old"})
    # and back to no context at all
    r2 = re_encrypt(kms, CiphertextBlob=r["CiphertextBlob"], SourceEncryptionContext={"v": "new"},
                    DestinationKeyId=key["Arn"])
    assert kms.decrypt(CiphertextBlob=r2["CiphertextBlob"])["Plaintext"] == b"same key"


@pytest.mark.parametrize("form", ["id", "arn", "alias", "alias-arn"])
def test_re_encrypt_key_id_forms(kms, form):
    src, dst = new_key(kms), new_key(kms)
    src_alias, dst_alias = f"alias/{unique('re-src')}", f"alias/{unique('re-dst')}"
    kms.create_alias(AliasName=src_alias, TargetKeyId=src["KeyId"])
    kms.create_alias(AliasName=dst_alias, TargetKeyId=dst["KeyId"])
    refs = {
        "id": (src["KeyId"], dst["KeyId"]),
        "arn": (src["Arn"], dst["Arn"]),
        "alias": (src_alias, dst_alias),
        "alias-arn": (alias_arn_of(src["Arn"], src_alias), alias_arn_of(dst["Arn"], dst_alias)),
    }[form]
    blob = kms.encrypt(KeyId=src["KeyId"], Plaintext=f"form {form}".encode())["CiphertextBlob"]
    r = re_encrypt(kms, CiphertextBlob=blob, SourceKeyId=refs[0], DestinationKeyId=refs[1])
    assert r["KeyId"] == dst["Arn"] and r["SourceKeyId"] == src["Arn"], r
    assert_blob_of(r["CiphertextBlob"], dst["KeyId"], 1)
    assert kms.decrypt(CiphertextBlob=r["CiphertextBlob"])["Plaintext"] == f"form {form}".encode()
    # a SourceKeyId naming the destination (the wrong key) in the same form
    assert_client_error("IncorrectKeyException", kms.re_encrypt, CiphertextBlob=blob, SourceKeyId=refs[1],
                        DestinationKeyId=refs[1])


def test_re_encrypt_data_key(kms):
    src, dst = new_key(kms), new_key(kms)
    dk = kms.generate_data_key(KeyId=src["KeyId"], KeySpec="AES_256", EncryptionContext={"dk": "1"})
    r = re_encrypt(kms, CiphertextBlob=dk["CiphertextBlob"], SourceEncryptionContext={"dk": "1"},
                   DestinationKeyId=dst["KeyId"], DestinationEncryptionContext={"dk": "2"})
    assert kms.decrypt(CiphertextBlob=r["CiphertextBlob"], EncryptionContext={"dk": "2"})["Plaintext"] == \
        dk["Plaintext"]


def test_re_encrypt_errors(kms, kms_raw):
    src, dst, third = new_key(kms), new_key(kms), new_key(kms)
    ctx = {"bound": "yes"}
    blob = kms.encrypt(KeyId=src["KeyId"], Plaintext=b"error cases", EncryptionContext=ctx)["CiphertextBlob"]
    ok = {"CiphertextBlob": blob, "SourceEncryptionContext": ctx, "DestinationKeyId": dst["KeyId"]}

    # the ciphertext or its context is wrong
    assert_client_error("InvalidCiphertextException", kms.re_encrypt, CiphertextBlob=blob,
                        SourceEncryptionContext={"bound": "no"}, DestinationKeyId=dst["KeyId"])
    assert_client_error("InvalidCiphertextException", kms.re_encrypt, CiphertextBlob=blob,
                        DestinationKeyId=dst["KeyId"])
    assert_client_error("InvalidCiphertextException", kms.re_encrypt, CiphertextBlob=blob,
                        SourceEncryptionContext={"bound": "yes", "extra": "1"}, DestinationKeyId=dst["KeyId"])
    for index in (25, 40, len(blob) // 2, len(blob) - 1):  # salt/iv, body, tag
        assert_client_error("InvalidCiphertextException", kms.re_encrypt, CiphertextBlob=tamper(blob, index),
                            SourceEncryptionContext=ctx, DestinationKeyId=dst["KeyId"])
    assert_client_error("InvalidCiphertextException", kms.re_encrypt, CiphertextBlob=blob[:-1],
                        SourceEncryptionContext=ctx, DestinationKeyId=dst["KeyId"])
    assert_client_error("InvalidCiphertextException", kms.re_encrypt, CiphertextBlob=GARBAGE_BLOB,
                        DestinationKeyId=dst["KeyId"])

    # SourceKeyId naming another key
    assert_client_error("IncorrectKeyException", kms.re_encrypt, SourceKeyId=third["KeyId"], **ok)
    assert_client_error("IncorrectKeyException", kms.re_encrypt, SourceKeyId=dst["Arn"], **ok)

    # the destination is unknown / missing
    assert_client_error("NotFoundException", kms.re_encrypt, CiphertextBlob=blob, SourceEncryptionContext=ctx,
                        DestinationKeyId=UNKNOWN_KEY)
    assert_client_error("NotFoundException", kms.re_encrypt, CiphertextBlob=blob, SourceEncryptionContext=ctx,
                        DestinationKeyId=f"alias/{unique('no-such-alias')}")
    assert_client_error("ValidationException", kms_raw.re_encrypt, CiphertextBlob=blob, SourceEncryptionContext=ctx)

    # everything still works afterwards
    r = re_encrypt(kms, **ok)
    assert kms.decrypt(CiphertextBlob=r["CiphertextBlob"])["Plaintext"] == b"error cases"


@pytest.mark.parametrize("side", ["source", "destination"])
@pytest.mark.parametrize("state", ["Disabled", "PendingDeletion"])
def test_re_encrypt_key_states(kms, side, state):
    src, dst = new_key(kms), new_key(kms)
    blob = kms.encrypt(KeyId=src["KeyId"], Plaintext=b"state")["CiphertextBlob"]
    to_state(kms, (src if side == "source" else dst)["KeyId"], state)
    assert_client_error(STATE_ERRORS[state], kms.re_encrypt, CiphertextBlob=blob, DestinationKeyId=dst["KeyId"])
    assert_client_error(STATE_ERRORS[state], kms.re_encrypt, CiphertextBlob=blob, DestinationKeyId=dst["KeyId"],
                        DryRun=True)
    subject = (src if side == "source" else dst)["KeyId"]
    if state == "PendingDeletion":
        kms.cancel_key_deletion(KeyId=subject)
    kms.enable_key(KeyId=subject)
    r = re_encrypt(kms, CiphertextBlob=blob, DestinationKeyId=dst["KeyId"])
    assert kms.decrypt(CiphertextBlob=r["CiphertextBlob"])["Plaintext"] == b"state"


def test_re_encrypt_dry_run(kms):
    src, dst = new_key(kms), new_key(kms)
    blob = kms.encrypt(KeyId=src["KeyId"], Plaintext=b"dry", EncryptionContext={"a": "b"})["CiphertextBlob"]
    assert_dry_run(kms.re_encrypt, CiphertextBlob=blob, SourceEncryptionContext={"a": "b"},
                   DestinationKeyId=dst["KeyId"])
    assert_dry_run(kms.re_encrypt, CiphertextBlob=blob, SourceEncryptionContext={"a": "b"},
                   DestinationKeyId=src["Arn"], DestinationEncryptionContext={"c": "d"})
    r = re_encrypt(kms, CiphertextBlob=blob, SourceEncryptionContext={"a": "b"}, DestinationKeyId=dst["KeyId"],
                   DryRun=False)
    assert kms.decrypt(CiphertextBlob=r["CiphertextBlob"])["Plaintext"] == b"dry"


def test_re_encrypt_across_rotations(kms):
    src, dst = new_key(kms), new_key(kms)
    old = kms.encrypt(KeyId=src["KeyId"], Plaintext=b"made under v1", EncryptionContext={"k": "v"})["CiphertextBlob"]
    assert_blob_of(old, src["KeyId"], 1)
    kms.rotate_key_on_demand(KeyId=src["KeyId"])
    mid = kms.encrypt(KeyId=src["KeyId"], Plaintext=b"made under v2")["CiphertextBlob"]
    assert_blob_of(mid, src["KeyId"], 2)
    kms.rotate_key_on_demand(KeyId=src["KeyId"])

    # an old-version ciphertext re-encrypted under its own key lands on the newest version
    r = re_encrypt(kms, CiphertextBlob=old, SourceEncryptionContext={"k": "v"}, DestinationKeyId=src["KeyId"],
                   DestinationEncryptionContext={"k": "v"})
    assert r["KeyId"] == src["Arn"] and r["SourceKeyId"] == src["Arn"], r
    assert_blob_of(r["CiphertextBlob"], src["KeyId"], 3)
    assert kms.decrypt(CiphertextBlob=r["CiphertextBlob"], EncryptionContext={"k": "v"})["Plaintext"] == \
        b"made under v1"

    # ... and under a rotated destination it uses the destination's newest version
    kms.rotate_key_on_demand(KeyId=dst["KeyId"])
    for blob, pt, ctx in ((old, b"made under v1", {"k": "v"}), (mid, b"made under v2", None)):
        kwargs = {"SourceEncryptionContext": ctx} if ctx else {}
        r = re_encrypt(kms, CiphertextBlob=blob, DestinationKeyId=dst["KeyId"], SourceKeyId=src["KeyId"], **kwargs)
        assert r["SourceKeyId"] == src["Arn"] and r["KeyId"] == dst["Arn"], r
        assert_blob_of(r["CiphertextBlob"], dst["KeyId"], 2)
        assert kms.decrypt(CiphertextBlob=r["CiphertextBlob"])["Plaintext"] == pt


# ---- automatic rotation under the dev clock (own servers) --------------------------------------------------------


def test_automatic_rotation(fresh_server):
    srv = fresh_server
    kms, rc = srv.client(), RawClient(srv)
    auto = new_key(kms, Description="rotates every 90 days")
    off = new_key(kms, Description="rotation not enabled")
    sleeper = new_key(kms, Description="disabled, rotation enabled")
    auto_id, arn = auto["KeyId"], auto["Arn"]
    t0 = time.time()
    kms.enable_key_rotation(KeyId=auto_id, RotationPeriodInDays=90)
    kms.enable_key_rotation(KeyId=sleeper["KeyId"], RotationPeriodInDays=90)
    kms.disable_key(KeyId=sleeper["KeyId"])
    first_status = rotation_status(kms, auto_id)
    n0 = epoch(first_status["NextRotationDate"])
    assert_near(n0, t0 + 90 * DAY, "NextRotationDate")
    sleeper_status = rotation_status(kms, sleeper["KeyId"])
    v1 = kms.encrypt(KeyId=auto_id, Plaintext=b"v1", EncryptionContext={"gen": "1"})["CiphertextBlob"]
    assert_blob_of(v1, auto_id, 1)

    # one day before the due date: nothing yet, even on use
    assert advance(rc, 89 * DAY) == 89 * DAY
    assert all_rotations(kms, auto_id) == []
    still_v1 = kms.encrypt(KeyId=auto_id, Plaintext=b"still v1")["CiphertextBlob"]
    assert_blob_of(still_v1, auto_id, 1)
    assert rotation_status(kms, auto_id) == first_status

    # past it: the sweep of AdvanceClock rotates
    offset = advance(rc, 2 * DAY)
    assert offset == 91 * DAY
    entries = all_rotations(kms, auto_id)
    assert_rotation_entries(entries, arn, ["AUTOMATIC"])
    rotated_at = epoch(entries[0]["RotationDate"])
    assert n0 - TOLERANCE <= rotated_at <= time.time() + offset + TOLERANCE, (n0, rotated_at, offset)
    s = rotation_status(kms, auto_id)
    assert s["KeyRotationEnabled"] is True and s["RotationPeriodInDays"] == 90, s
    assert_near(epoch(s["NextRotationDate"]), rotated_at + 90 * DAY, "NextRotationDate after the rotation")
    assert epoch(s["NextRotationDate"]) >= n0 + 90 * DAY - TOLERANCE, (n0, s)
    v2 = kms.encrypt(KeyId=auto_id, Plaintext=b"v2")["CiphertextBlob"]
    assert_blob_of(v2, auto_id, 2)
    assert kms.decrypt(CiphertextBlob=v1, EncryptionContext={"gen": "1"})["Plaintext"] == b"v1"
    assert kms.decrypt(CiphertextBlob=still_v1)["Plaintext"] == b"still v1"
    assert kms.decrypt(CiphertextBlob=v2)["Plaintext"] == b"v2"

    # a key without rotation, and a disabled one, did not rotate
    assert all_rotations(kms, off["KeyId"]) == []
    assert_blob_of(kms.encrypt(KeyId=off["KeyId"], Plaintext=b"x")["CiphertextBlob"], off["KeyId"], 1)
    assert rotation_status(kms, sleeper["KeyId"]) == sleeper_status, "a disabled key must not rotate"
    assert state_of(kms, sleeper["KeyId"]) == "Disabled"

    # an on-demand rotation in between leaves the schedule alone; entries stay oldest first
    kms.rotate_key_on_demand(KeyId=auto_id)
    assert rotation_status(kms, auto_id) == s
    assert_blob_of(kms.encrypt(KeyId=auto_id, Plaintext=b"v3")["CiphertextBlob"], auto_id, 3)

    # EnableKeyRotation now counts from the moved clock
    late = new_key(kms, Description="enabled on the moved clock")
    kms.enable_key_rotation(KeyId=late["KeyId"], RotationPeriodInDays=100)
    assert_near(epoch(rotation_status(kms, late["KeyId"])["NextRotationDate"]), time.time() + offset + 100 * DAY,
                "NextRotationDate on the moved clock")

    # the next period
    offset = advance(rc, 90 * DAY)
    entries = all_rotations(kms, auto_id)
    assert_rotation_entries(entries, arn, ["AUTOMATIC", "ON_DEMAND", "AUTOMATIC"])
    v4 = kms.encrypt(KeyId=auto_id, Plaintext=b"v4")["CiphertextBlob"]
    assert_blob_of(v4, auto_id, 4)
    for blob, pt, kwargs in ((v1, b"v1", {"EncryptionContext": {"gen": "1"}}), (v2, b"v2", {}), (v4, b"v4", {})):
        assert kms.decrypt(CiphertextBlob=blob, **kwargs)["Plaintext"] == pt

    # the disabled key, enabled again long past its due date, rotates on its next use
    kms.enable_key(KeyId=sleeper["KeyId"])
    blob = kms.encrypt(KeyId=sleeper["KeyId"], Plaintext=b"woken")["CiphertextBlob"]
    assert_blob_of(blob, sleeper["KeyId"], 2)
    assert rotation_types(kms, sleeper["KeyId"]) == ["AUTOMATIC"]


def test_disabling_rotation_stops_automatic_rotation(fresh_server):
    srv = fresh_server
    kms, rc = srv.client(), RawClient(srv)
    key_id = new_key(kms)["KeyId"]
    kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
    kms.disable_key_rotation(KeyId=key_id)
    control = new_key(kms)["KeyId"]
    kms.enable_key_rotation(KeyId=control, RotationPeriodInDays=90)
    advance(rc, 100 * DAY)
    assert rotation_types(kms, control) == ["AUTOMATIC"]  # the clock did move far enough
    assert all_rotations(kms, key_id) == []
    assert_blob_of(kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"], key_id, 1)


def test_restart_in_the_middle_of_a_rotation_period(fresh_server):
    srv = fresh_server
    kms, rc = srv.client(), RawClient(srv)
    slow = new_key(kms, Description="period 180")   # mid-period at the restart
    fast = new_key(kms, Description="period 90")    # rotated automatically before the restart
    slow_id, fast_id = slow["KeyId"], fast["KeyId"]
    kms.enable_key_rotation(KeyId=slow_id, RotationPeriodInDays=180)
    kms.enable_key_rotation(KeyId=fast_id, RotationPeriodInDays=90)
    blobs = []  # (key id, version, blob, plaintext, decrypt kwargs)

    def make(key_id, version, ctx=None):
        pt = f"{key_id} v{version}".encode()
        kwargs = {"EncryptionContext": ctx} if ctx else {}
        blob = kms.encrypt(KeyId=key_id, Plaintext=pt, **kwargs)["CiphertextBlob"]
        assert_blob_of(blob, key_id, version)
        blobs.append((key_id, version, blob, pt, kwargs))

    make(slow_id, 1, {"c": "1"})
    make(fast_id, 1)
    kms.rotate_key_on_demand(KeyId=slow_id)
    make(slow_id, 2)
    assert advance(rc, 91 * DAY) == 91 * DAY
    make(fast_id, 2)
    assert rotation_types(kms, slow_id) == ["ON_DEMAND"]
    assert rotation_types(kms, fast_id) == ["AUTOMATIC"]
    slow_status, fast_status = rotation_status(kms, slow_id), rotation_status(kms, fast_id)
    slow_entries, fast_entries = all_rotations(kms, slow_id), all_rotations(kms, fast_id)

    srv.restart()
    kms, rc = srv.client(), RawClient(srv)
    assert rotation_status(kms, slow_id) == slow_status
    assert rotation_status(kms, fast_id) == fast_status
    assert all_rotations(kms, slow_id) == slow_entries
    assert all_rotations(kms, fast_id) == fast_entries
    for key_id, version, blob, pt, kwargs in blobs:
        r = kms.decrypt(CiphertextBlob=blob, **kwargs)
        assert r["Plaintext"] == pt, f"{key_id} v{version} after the restart"
    make(slow_id, 2)
    make(fast_id, 2)

    # The offset is gone: 179 days from the real now is still before the 180-day key's due date (91 + 179 would not
    # be), and before the 90-day key's next one (~181 days from the start).
    assert advance(rc, 179 * DAY) == 179 * DAY
    assert rotation_types(kms, slow_id) == ["ON_DEMAND"]
    assert rotation_types(kms, fast_id) == ["AUTOMATIC"]
    make(slow_id, 2)
    advance(rc, 2 * DAY)
    assert rotation_types(kms, slow_id) == ["ON_DEMAND", "AUTOMATIC"]
    make(slow_id, 3, {"c": "3"})
    s = rotation_status(kms, slow_id)
    assert s["RotationPeriodInDays"] == 180 and epoch(s["NextRotationDate"]) > epoch(slow_status["NextRotationDate"])

    # and once more across a restart: the automatic rotation made after the first restart survives
    slow_status, slow_entries = s, all_rotations(kms, slow_id)
    srv.restart()
    kms = srv.client()
    assert rotation_status(kms, slow_id) == slow_status
    assert all_rotations(kms, slow_id) == slow_entries
    for key_id, version, blob, pt, kwargs in blobs:
        assert kms.decrypt(CiphertextBlob=blob, **kwargs)["Plaintext"] == pt, f"{key_id} v{version}"
    make(slow_id, 3)
    assert describe(kms, slow_id)["KeyState"] == "Enabled"


def test_list_key_rotations_default_limit_and_many_versions(fresh_server):
    """More than 100 rotations (25 on demand, then one automatic rotation per sweep): the default Limit is 100,
    a sweep adds exactly one version however far the clock jumps past the due date, and every version decrypts."""
    srv = fresh_server
    kms, rc = srv.client(), RawClient(srv)
    key = new_key(kms)
    key_id, arn = key["KeyId"], key["Arn"]
    kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
    blobs = [kms.encrypt(KeyId=key_id, Plaintext=b"v1")["CiphertextBlob"]]
    for _ in range(MAX_ON_DEMAND):
        kms.rotate_key_on_demand(KeyId=key_id)
    blobs.append(kms.encrypt(KeyId=key_id, Plaintext=b"after on demand")["CiphertextBlob"])
    sweeps = 80
    for n in range(sweeps):
        advance(rc, 100 * DAY)
        if n % 20 == 0:
            blobs.append(kms.encrypt(KeyId=key_id, Plaintext=b"mid")["CiphertextBlob"])
    total = MAX_ON_DEMAND + sweeps

    page = kms.list_key_rotations(KeyId=key_id)
    assert len(page["Rotations"]) == 100 and page["Truncated"] is True and page.get("NextMarker"), (
        len(page["Rotations"]), page["Truncated"])
    rest = kms.list_key_rotations(KeyId=key_id, Marker=page["NextMarker"])
    assert len(rest["Rotations"]) == total - 100 and rest["Truncated"] is False, rest
    everything = kms.list_key_rotations(KeyId=key_id, Limit=1000)
    assert everything["Truncated"] is False
    assert everything["Rotations"] == page["Rotations"] + rest["Rotations"]
    assert_rotation_entries(everything["Rotations"], arn, ["ON_DEMAND"] * MAX_ON_DEMAND + ["AUTOMATIC"] * sweeps)

    newest = kms.encrypt(KeyId=key_id, Plaintext=b"newest")["CiphertextBlob"]
    assert_blob_of(newest, key_id, total + 1)
    # after sweep n (from 0), n + 1 automatic versions follow the 1 + 25 of before
    expected = [1, MAX_ON_DEMAND + 1] + [MAX_ON_DEMAND + 2 + n for n in range(0, sweeps, 20)]
    assert [version_of(b) for b in blobs] == expected
    for blob in blobs + [newest]:
        kms.decrypt(CiphertextBlob=blob)
