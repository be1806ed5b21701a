"""Key lifecycle (docs: notes/LIFECYCLE.md): key states and the state table, scheduled deletion under the dev clock
(EnclaveKms.AdvanceClock), restarts inside a deletion window, UpdateKeyDescription, UpdateAlias, tags, key policies
and DryRun -- through boto3, the AWS CLI and signed raw requests."""

from __future__ import annotations

import datetime
import json
import time
from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError

from kmstest import KmsServer, assert_client_error, unique
from test_protocol import RawClient, assert_error, utcnow

DAY = 86400
ADVANCE_TARGET = "EnclaveKms.AdvanceClock"
STATES = ("Enabled", "Disabled", "PendingDeletion")
GARBAGE_BLOB = b"\x01\x02" + bytes(range(200))


# ---- fixtures and helpers ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def account(kms):
    """The account id the server reports (from a key's metadata)."""
    meta = kms.create_key(Description="lifecycle: account probe")["KeyMetadata"]
    assert meta["Arn"].split(":")[4] == meta["AWSAccountId"], meta
    return meta["AWSAccountId"]


@pytest.fixture(scope="module")
def raw(server):
    return RawClient(server)


@pytest.fixture(scope="module")
def clock_server(tmp_path_factory, host_bin):
    """A module server whose lifecycle clock the tests move forward (kept apart so that the main module server's
    clock stays the real one, which the date checks there rely on)."""
    srv = KmsServer(tmp_path_factory.mktemp("kms-clock"), binary=host_bin)
    srv.start()
    yield srv
    srv.close()


def advance(raw_client: RawClient, seconds: int) -> int:
    """EnclaveKms.AdvanceClock; returns the total offset (seconds) the server reports."""
    status, parsed, body = raw_client.call(ADVANCE_TARGET, {"Seconds": seconds})
    assert status == 200, f"AdvanceClock({seconds}) answered HTTP {status}: {body[:500]!r}"
    assert isinstance(parsed, dict) and isinstance(parsed.get("OffsetSeconds"), int), (
        f"AdvanceClock must answer {{\"OffsetSeconds\": int}}, got {body[:500]!r}")
    return parsed["OffsetSeconds"]


def new_key(kms, **kwargs) -> dict:
    kwargs.setdefault("Description", "lifecycle test key")
    return kms.create_key(**kwargs)["KeyMetadata"]


def describe(kms, key_id) -> dict:
    return kms.describe_key(KeyId=key_id)["KeyMetadata"]


def state_of(kms, key_id) -> str:
    return describe(kms, key_id)["KeyState"]


def error_of(call, *args, **kwargs) -> dict:
    """The ClientError response of a call that must fail (any code)."""
    try:
        result = call(*args, **kwargs)
    except ClientError as exc:
        return exc.response
    result.pop("ResponseMetadata", None)
    pytest.fail(f"expected an error, but the call succeeded: {result!r}", pytrace=False)


def assert_error_message(response: dict, message: str) -> None:
    got = response["Error"].get("Message")
    assert got == message, f"expected message {message!r}, got {got!r}"


def all_key_ids(kms) -> set:
    ids = set()
    for page in kms.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 100}):
        ids.update(k["KeyId"] for k in page["Keys"])
    return ids


def all_aliases(kms) -> dict:
    """alias name -> ListAliases entry."""
    out = {}
    for page in kms.get_paginator("list_aliases").paginate(PaginationConfig={"PageSize": 100}):
        for entry in page["Aliases"]:
            out[entry["AliasName"]] = entry
    return out


def all_tags(kms, key_id) -> list:
    """Every tag of a key, following NextMarker with the default Limit."""
    tags, marker = [], None
    for _ in range(20):
        kwargs = {"KeyId": key_id}
        if marker:
            kwargs["Marker"] = marker
        page = kms.list_resource_tags(**kwargs)
        tags.extend(page["Tags"])
        if not page["Truncated"]:
            return tags
        marker = page["NextMarker"]
    pytest.fail("ListResourceTags kept answering Truncated=true")


def to_state(kms, key_id: str, state: str) -> None:
    """Moves an Enabled key to `state` (checked)."""
    if state == "Disabled":
        kms.disable_key(KeyId=key_id)
    elif state == "PendingDeletion":
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    else:
        assert state == "Enabled"
    assert state_of(kms, key_id) == state


def epoch(value) -> float:
    assert isinstance(value, datetime.datetime), f"expected a timestamp, got {value!r}"
    return value.timestamp()


def assert_dry_run(call, **kwargs) -> None:
    """DryRun=True on a call that would succeed: DryRunOperationException with HTTP 400 (what AWS sends)."""
    try:
        result = call(DryRun=True, **kwargs)
    except ClientError as exc:
        error = exc.response["Error"]
        status = exc.response["ResponseMetadata"]["HTTPStatusCode"]
        assert error.get("Code") == "DryRunOperationException", f"expected DryRunOperationException, got {error!r}"
        assert status == 400, f"expected HTTP 400 for DryRunOperationException, got {status}"
    else:
        result.pop("ResponseMetadata", None)
        pytest.fail(f"DryRun=True must not run the operation, but it answered {result!r}", pytrace=False)


# ---- the state table ----------------------------------------------------------------------------------------------


@pytest.fixture
def subject_factory(kms):
    """subject_factory(state): a fresh key with an alias, a tag, a ciphertext and a second key, moved to `state`."""

    def make(state):
        key = new_key(kms, Description="state table subject", Tags=[{"TagKey": "t1", "TagValue": "v1"}])
        other = new_key(kms, Description="state table other key")
        alias = f"alias/{unique('state')}"
        kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
        other_alias = f"alias/{unique('state-other')}"
        kms.create_alias(AliasName=other_alias, TargetKeyId=other["KeyId"])
        blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"state table")["CiphertextBlob"]
        to_state(kms, key["KeyId"], state)
        return SimpleNamespace(kms=kms, id=key["KeyId"], arn=key["Arn"], alias=alias, other=other,
                               other_alias=other_alias, blob=blob, state=state)

    return make


def _encrypt(s):
    r = s.kms.encrypt(KeyId=s.id, Plaintext=b"payload")
    assert r["KeyId"] == s.arn


def _decrypt(s):
    r = s.kms.decrypt(CiphertextBlob=s.blob)
    assert r["Plaintext"] == b"state table" and r["KeyId"] == s.arn


def _gdk(s):
    r = s.kms.generate_data_key(KeyId=s.id, KeySpec="AES_256")
    assert len(r["Plaintext"]) == 32 and r["KeyId"] == s.arn


def _gdk_wp(s):
    r = s.kms.generate_data_key_without_plaintext(KeyId=s.id, NumberOfBytes=16)
    assert "Plaintext" not in r and r["KeyId"] == s.arn


def _describe(s):
    meta = describe(s.kms, s.id)
    assert meta["KeyId"] == s.id and meta["KeyState"] == s.state


def _list_keys(s):
    assert s.id in all_key_ids(s.kms)


def _list_aliases(s):
    names = [a["AliasName"] for a in s.kms.list_aliases(KeyId=s.id)["Aliases"]]
    assert names == [s.alias]
    assert all_aliases(s.kms)[s.alias]["TargetKeyId"] == s.id


def _delete_alias(s):
    s.kms.delete_alias(AliasName=s.alias)
    assert s.alias not in all_aliases(s.kms)


def _get_key_policy(s):
    r = s.kms.get_key_policy(KeyId=s.id, PolicyName="default")
    assert r["PolicyName"] == "default" and "Statement" in json.loads(r["Policy"])


def _put_key_policy(s):
    text = json.dumps({"Version": "2012-10-17", "Statement": [{"Sid": s.state, "Effect": "Allow",
                                                               "Principal": {"AWS": "*"}, "Action": "kms:*",
                                                               "Resource": "*"}]})
    s.kms.put_key_policy(KeyId=s.id, PolicyName="default", Policy=text)
    assert s.kms.get_key_policy(KeyId=s.id, PolicyName="default")["Policy"] == text


def _list_key_policies(s):
    r = s.kms.list_key_policies(KeyId=s.id)
    assert r["PolicyNames"] == ["default"] and r["Truncated"] is False


def _list_resource_tags(s):
    assert s.kms.list_resource_tags(KeyId=s.id)["Tags"] == [{"TagKey": "t1", "TagValue": "v1"}]


def _enable(s):
    s.kms.enable_key(KeyId=s.id)


def _disable(s):
    s.kms.disable_key(KeyId=s.id)


def _schedule(s):
    r = s.kms.schedule_key_deletion(KeyId=s.id, PendingWindowInDays=7)
    assert r["KeyState"] == "PendingDeletion" and r["KeyId"] == s.arn


def _cancel(s):
    assert s.kms.cancel_key_deletion(KeyId=s.id)["KeyId"] == s.arn


def _create_alias(s):
    name = f"alias/{unique('state-new')}"
    s.kms.create_alias(AliasName=name, TargetKeyId=s.id)
    assert all_aliases(s.kms)[name]["TargetKeyId"] == s.id


def _update_alias(s):
    s.kms.update_alias(AliasName=s.other_alias, TargetKeyId=s.id)
    assert all_aliases(s.kms)[s.other_alias]["TargetKeyId"] == s.id


def _update_alias_unchanged(s):
    assert all_aliases(s.kms)[s.other_alias]["TargetKeyId"] == s.other["KeyId"]


def _tag(s):
    s.kms.tag_resource(KeyId=s.id, Tags=[{"TagKey": "t2", "TagValue": "v2"}])
    assert all_tags(s.kms, s.id) == [{"TagKey": "t1", "TagValue": "v1"}, {"TagKey": "t2", "TagValue": "v2"}]


def _tags_unchanged(s):
    assert all_tags(s.kms, s.id) == [{"TagKey": "t1", "TagValue": "v1"}]


def _untag(s):
    s.kms.untag_resource(KeyId=s.id, TagKeys=["t1"])
    assert all_tags(s.kms, s.id) == []


def _update_description(s):
    s.kms.update_key_description(KeyId=s.id, Description="updated")
    assert describe(s.kms, s.id)["Description"] == "updated"


def _description_unchanged(s):
    assert describe(s.kms, s.id)["Description"] == "state table subject"


def _nothing(s):
    pass


OK = "ok"
USE_ERRORS = {  # the cryptographic operations: ok / DisabledException / KMSInvalidStateException, with messages
    "Enabled": OK,
    "Disabled": ("DisabledException", "{arn} is disabled."),
    "PendingDeletion": ("KMSInvalidStateException", "{arn} is pending deletion."),
}
ALWAYS_OK = {state: OK for state in STATES}
NOT_PENDING = {"Enabled": OK, "Disabled": OK, "PendingDeletion": ("KMSInvalidStateException", None)}

# operation -> (call, {state: OK | (code, message template | None)}, {state: state afterwards}, check after an error)
TABLE = {
    "Encrypt": (_encrypt, USE_ERRORS, {}, _nothing),
    "Decrypt": (_decrypt, USE_ERRORS, {}, _nothing),
    "GenerateDataKey": (_gdk, USE_ERRORS, {}, _nothing),
    "GenerateDataKeyWithoutPlaintext": (_gdk_wp, USE_ERRORS, {}, _nothing),
    "DescribeKey": (_describe, ALWAYS_OK, {}, _nothing),
    "ListKeys": (_list_keys, ALWAYS_OK, {}, _nothing),
    "ListAliases": (_list_aliases, ALWAYS_OK, {}, _nothing),
    "DeleteAlias": (_delete_alias, ALWAYS_OK, {}, _nothing),
    "GetKeyPolicy": (_get_key_policy, ALWAYS_OK, {}, _nothing),
    "PutKeyPolicy": (_put_key_policy, ALWAYS_OK, {}, _nothing),
    "ListKeyPolicies": (_list_key_policies, ALWAYS_OK, {}, _nothing),
    "ListResourceTags": (_list_resource_tags, ALWAYS_OK, {}, _nothing),
    "EnableKey": (_enable, NOT_PENDING, {"Enabled": "Enabled", "Disabled": "Enabled"}, _nothing),
    "DisableKey": (_disable, NOT_PENDING, {"Enabled": "Disabled", "Disabled": "Disabled"}, _nothing),
    "ScheduleKeyDeletion": (_schedule, NOT_PENDING,
                            {"Enabled": "PendingDeletion", "Disabled": "PendingDeletion"}, _nothing),
    "CancelKeyDeletion": (
        _cancel,
        {"Enabled": ("KMSInvalidStateException", "{arn} is not pending deletion."),
         "Disabled": ("KMSInvalidStateException", "{arn} is not pending deletion."),
         "PendingDeletion": OK},
        {"PendingDeletion": "Disabled"},
        _nothing,
    ),
    "CreateAlias": (_create_alias, NOT_PENDING, {}, _nothing),
    "UpdateAlias": (_update_alias, NOT_PENDING, {}, _update_alias_unchanged),
    "TagResource": (_tag, NOT_PENDING, {}, _tags_unchanged),
    "UntagResource": (_untag, NOT_PENDING, {}, _tags_unchanged),
    "UpdateKeyDescription": (_update_description, NOT_PENDING, {}, _description_unchanged),
}


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("operation", list(TABLE))
def test_state_table(subject_factory, operation, state):
    call, outcomes, transitions, unchanged = TABLE[operation]
    s = subject_factory(state)
    expected = outcomes[state]
    if expected == OK:
        call(s)
        after = transitions.get(state, state)
    else:
        code, message = expected
        response = assert_client_error(code, call, s)
        if message is not None:
            assert_error_message(response, message.format(arn=s.arn))
        unchanged(s)
        after = state
    assert state_of(s.kms, s.id) == after, f"{operation} in {state}: key should now be {after}"


def test_state_table_covers_the_contract():
    """The battery above names every operation of the contract's table."""
    contract = {
        "Encrypt", "Decrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "DescribeKey", "ListKeys",
        "ListAliases", "DeleteAlias", "GetKeyPolicy", "PutKeyPolicy", "ListKeyPolicies", "ListResourceTags",
        "EnableKey", "DisableKey", "ScheduleKeyDeletion", "CancelKeyDeletion", "CreateAlias", "UpdateAlias",
        "TagResource", "UntagResource", "UpdateKeyDescription",
    }
    assert set(TABLE) == contract
    for name, (_, outcomes, _, _) in TABLE.items():
        assert set(outcomes) == set(STATES), name


def test_state_changes_take_effect_on_the_next_request(kms):
    key = new_key(kms)
    key_id, arn = key["KeyId"], key["Arn"]
    alias = f"alias/{unique('next')}"
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    blob = kms.encrypt(KeyId=alias, Plaintext=b"before")["CiphertextBlob"]
    for round_ in range(3):
        # warm every path (by id, by alias, decrypt) right before each change
        kms.encrypt(KeyId=key_id, Plaintext=b"x")
        kms.encrypt(KeyId=alias, Plaintext=b"x")
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"before"

        kms.disable_key(KeyId=key_id)
        r = assert_client_error("DisabledException", kms.encrypt, KeyId=key_id, Plaintext=b"x")
        assert_error_message(r, f"{arn} is disabled.")
        assert_client_error("DisabledException", kms.encrypt, KeyId=alias, Plaintext=b"x")
        assert_client_error("DisabledException", kms.decrypt, CiphertextBlob=blob)
        assert_client_error("DisabledException", kms.generate_data_key, KeyId=alias, KeySpec="AES_128")

        kms.enable_key(KeyId=key_id)
        assert kms.encrypt(KeyId=key_id, Plaintext=b"x")["KeyId"] == arn, f"round {round_}"
        assert kms.encrypt(KeyId=alias, Plaintext=b"x")["KeyId"] == arn
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"before"

        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
        r = assert_client_error("KMSInvalidStateException", kms.encrypt, KeyId=alias, Plaintext=b"x")
        assert_error_message(r, f"{arn} is pending deletion.")
        r = assert_client_error("KMSInvalidStateException", kms.decrypt, CiphertextBlob=blob)
        assert_error_message(r, f"{arn} is pending deletion.")

        kms.cancel_key_deletion(KeyId=key_id)
        assert_client_error("DisabledException", kms.decrypt, CiphertextBlob=blob)
        assert_client_error("DisabledException", kms.encrypt, KeyId=key_id, Plaintext=b"x")
        kms.enable_key(KeyId=key_id)
        assert kms.decrypt(CiphertextBlob=blob)["KeyId"] == arn


@pytest.mark.parametrize("form", ["id", "arn", "alias", "alias-arn"])
def test_enable_disable_take_key_ids_not_aliases(kms, form):
    key = new_key(kms)
    alias = f"alias/{unique('form')}"
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    alias_arn = key["Arn"].split(":key/")[0] + ":" + alias
    ref = {"id": key["KeyId"], "arn": key["Arn"], "alias": alias, "alias-arn": alias_arn}[form]
    if form.startswith("alias"):
        # AWS documents EnableKey and DisableKey as taking a key id or key ARN only: an alias names no key there.
        assert_client_error("NotFoundException", kms.disable_key, KeyId=ref)
        assert_client_error("NotFoundException", kms.enable_key, KeyId=ref)
        assert state_of(kms, key["KeyId"]) == "Enabled"
        return
    assert set(kms.disable_key(KeyId=ref)) == {"ResponseMetadata"}
    assert state_of(kms, key["KeyId"]) == "Disabled"
    kms.disable_key(KeyId=ref)  # no-op
    assert state_of(kms, key["KeyId"]) == "Disabled"
    assert set(kms.enable_key(KeyId=ref)) == {"ResponseMetadata"}
    assert state_of(kms, key["KeyId"]) == "Enabled"
    kms.enable_key(KeyId=ref)  # no-op
    assert state_of(kms, key["KeyId"]) == "Enabled"


@pytest.mark.parametrize("operation", ["enable_key", "disable_key", "schedule_key_deletion", "cancel_key_deletion",
                                       "update_key_description", "list_resource_tags", "get_key_policy",
                                       "list_key_policies"])
def test_lifecycle_operations_on_unknown_key(kms_raw, operation):
    kwargs = {"KeyId": "11111111-2222-4333-8444-555555555555"}
    if operation == "update_key_description":
        kwargs["Description"] = "x"
    assert_client_error("NotFoundException", getattr(kms_raw, operation), **kwargs)


# ---- DescribeKey in each state, ScheduleKeyDeletion, CancelKeyDeletion ---------------------------------------------


def test_describe_key_fields_in_each_state(kms):
    key_id = new_key(kms)["KeyId"]
    meta = describe(kms, key_id)
    assert (meta["KeyState"], meta["Enabled"]) == ("Enabled", True)
    assert "DeletionDate" not in meta and "PendingDeletionWindowInDays" not in meta, meta

    kms.disable_key(KeyId=key_id)
    meta = describe(kms, key_id)
    assert (meta["KeyState"], meta["Enabled"]) == ("Disabled", False)
    assert "DeletionDate" not in meta and "PendingDeletionWindowInDays" not in meta, meta

    scheduled = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=9)
    meta = describe(kms, key_id)
    assert (meta["KeyState"], meta["Enabled"]) == ("PendingDeletion", False)
    assert meta["DeletionDate"] == scheduled["DeletionDate"], (meta, scheduled)
    assert meta["PendingDeletionWindowInDays"] == 9, meta

    kms.cancel_key_deletion(KeyId=key_id)
    meta = describe(kms, key_id)
    assert (meta["KeyState"], meta["Enabled"]) == ("Disabled", False)
    assert "DeletionDate" not in meta and "PendingDeletionWindowInDays" not in meta, meta

    kms.enable_key(KeyId=key_id)
    meta = describe(kms, key_id)
    assert (meta["KeyState"], meta["Enabled"]) == ("Enabled", True)


def test_schedule_key_deletion_defaults_to_30_days(kms):
    key = new_key(kms)
    before = time.time()
    r = kms.schedule_key_deletion(KeyId=key["KeyId"])
    after = time.time()
    r.pop("ResponseMetadata")
    assert set(r) == {"KeyId", "DeletionDate", "KeyState", "PendingWindowInDays"}, r
    assert r["KeyId"] == key["Arn"]
    assert r["KeyState"] == "PendingDeletion"
    assert r["PendingWindowInDays"] == 30
    deletion = epoch(r["DeletionDate"])
    assert before + 30 * DAY - 60 <= deletion <= after + 30 * DAY + 60, (before, deletion)
    assert describe(kms, key["KeyId"])["PendingDeletionWindowInDays"] == 30


@pytest.mark.parametrize("days", [7, 30])
def test_schedule_key_deletion_window_bounds_accepted(kms, days):
    key = new_key(kms)
    before = time.time()
    r = kms.schedule_key_deletion(KeyId=key["Arn"], PendingWindowInDays=days)
    assert r["PendingWindowInDays"] == days and r["KeyId"] == key["Arn"]
    assert abs(epoch(r["DeletionDate"]) - (before + days * DAY)) <= 60, r
    meta = describe(kms, key["KeyId"])
    assert meta["KeyState"] == "PendingDeletion" and meta["PendingDeletionWindowInDays"] == days


@pytest.mark.parametrize("days", [6, 31, 0, -1, 365])
def test_schedule_key_deletion_window_out_of_range(kms_raw, days):
    key = new_key(kms_raw)
    assert_client_error("ValidationException", kms_raw.schedule_key_deletion, KeyId=key["KeyId"],
                        PendingWindowInDays=days)
    meta = describe(kms_raw, key["KeyId"])
    assert meta["KeyState"] == "Enabled" and "DeletionDate" not in meta, meta


def test_schedule_twice_is_invalid_state_and_keeps_the_date(kms):
    key_id = new_key(kms)["KeyId"]
    first = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert_client_error("KMSInvalidStateException", kms.schedule_key_deletion, KeyId=key_id, PendingWindowInDays=30)
    meta = describe(kms, key_id)
    assert meta["DeletionDate"] == first["DeletionDate"] and meta["PendingDeletionWindowInDays"] == 7, meta


def test_cancel_key_deletion_leaves_the_key_disabled(kms):
    key = new_key(kms)
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"keep me")["CiphertextBlob"]
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    r = kms.cancel_key_deletion(KeyId=key["KeyId"])
    r.pop("ResponseMetadata")
    assert r == {"KeyId": key["Arn"]}
    meta = describe(kms, key["KeyId"])
    assert meta["KeyState"] == "Disabled" and meta["Enabled"] is False and "DeletionDate" not in meta, meta
    assert_client_error("DisabledException", kms.decrypt, CiphertextBlob=blob)
    kms.enable_key(KeyId=key["KeyId"])
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"keep me"
    # and it can be scheduled again
    assert kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)["KeyState"] == "PendingDeletion"


# ---- the dev clock and deletion -----------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [{"Seconds": 0}, {"Seconds": -1}, {"Seconds": -DAY}, {"Seconds": 20 * 366 * DAY},
                                  {}],
                         ids=["zero", "minus-one", "minus-a-day", "twenty-years", "missing"])
def test_advance_clock_rejects_bad_seconds(raw, body):
    assert_error(raw.call(ADVANCE_TARGET, body), "ValidationException")


def test_advance_clock_requires_authentication(raw):
    body = json.dumps({"Seconds": DAY}).encode()
    headers = raw.headers(ADVANCE_TARGET, body, sign=False)
    headers["X-Amz-Date"] = utcnow().strftime("%Y%m%dT%H%M%SZ")
    assert "Authorization" not in headers
    assert_error(raw.send(body, headers), "MissingAuthenticationTokenException")
    assert_error(raw.call(ADVANCE_TARGET, {"Seconds": DAY}, secret_key=raw.secret_key[::-1] + "x"),
                 "InvalidSignatureException")


def test_advance_clock_accumulates_and_moves_deletion_dates(clock_server):
    rc = RawClient(clock_server)
    kms = clock_server.client()
    first = advance(rc, 3600)
    second = advance(rc, DAY)
    assert second == first + DAY, (first, second)
    key_id = new_key(kms)["KeyId"]
    before = time.time()
    r = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    expected = before + second + 7 * DAY
    assert abs(epoch(r["DeletionDate"]) - expected) <= 60, (r["DeletionDate"], second)
    # SigV4 keeps the real clock: a signature from 10 minutes ago still fails, a current one works.
    assert_error(rc.call("ListKeys", {}, when=utcnow() - datetime.timedelta(minutes=10)),
                 "InvalidSignatureException")
    assert rc.call("ListKeys", {})[0] == 200


def test_deletion_after_the_window(clock_server):
    kms = clock_server.client()
    rc = RawClient(clock_server)
    doomed = new_key(kms, Description="doomed")
    other = new_key(kms, Description="bystander")
    later = new_key(kms, Description="pending, longer window")
    doomed_alias, other_alias = f"alias/{unique('doomed')}", f"alias/{unique('bystander')}"
    kms.create_alias(AliasName=doomed_alias, TargetKeyId=doomed["KeyId"])
    kms.create_alias(AliasName=other_alias, TargetKeyId=other["KeyId"])
    doomed_blob = kms.encrypt(KeyId=doomed["KeyId"], Plaintext=b"old secret")["CiphertextBlob"]
    other_blob = kms.encrypt(KeyId=other["KeyId"], Plaintext=b"other secret")["CiphertextBlob"]
    scheduled = kms.schedule_key_deletion(KeyId=doomed["KeyId"], PendingWindowInDays=7)
    kms.schedule_key_deletion(KeyId=later["KeyId"], PendingWindowInDays=30)

    advance(rc, 6 * DAY)
    meta = describe(kms, doomed["KeyId"])
    assert meta["KeyState"] == "PendingDeletion" and meta["DeletionDate"] == scheduled["DeletionDate"], meta
    assert doomed["KeyId"] in all_key_ids(kms)
    assert doomed_alias in all_aliases(kms)
    assert_client_error("KMSInvalidStateException", kms.decrypt, CiphertextBlob=doomed_blob)

    advance(rc, 2 * DAY)
    r = assert_client_error("NotFoundException", kms.describe_key, KeyId=doomed["KeyId"])
    assert_error_message(r, f"Key '{doomed['Arn']}' does not exist")
    assert doomed["KeyId"] not in all_key_ids(kms)
    aliases = all_aliases(kms)
    assert doomed_alias not in aliases, aliases.get(doomed_alias)
    assert not any(a.get("TargetKeyId") == doomed["KeyId"] for a in aliases.values())
    r = assert_client_error("NotFoundException", kms.decrypt, CiphertextBlob=doomed_blob)
    assert_error_message(r, f"Key '{doomed['Arn']}' does not exist")
    assert_client_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=GARBAGE_BLOB)
    for call, kwargs in [(kms.encrypt, {"Plaintext": b"x"}), (kms.enable_key, {}), (kms.cancel_key_deletion, {}),
                         (kms.get_key_policy, {}), (kms.list_resource_tags, {})]:
        assert_client_error("NotFoundException", call, KeyId=doomed["KeyId"], **kwargs)
    assert_client_error("NotFoundException", kms.encrypt, KeyId=doomed_alias, Plaintext=b"x")

    # the others are untouched
    assert state_of(kms, other["KeyId"]) == "Enabled"
    assert kms.decrypt(CiphertextBlob=other_blob)["Plaintext"] == b"other secret"
    assert kms.encrypt(KeyId=other_alias, Plaintext=b"x")["KeyId"] == other["Arn"]
    assert aliases[other_alias]["TargetKeyId"] == other["KeyId"]
    assert state_of(kms, later["KeyId"]) == "PendingDeletion"
    # the deleted alias's name is free again
    kms.create_alias(AliasName=doomed_alias, TargetKeyId=other["KeyId"])
    assert kms.encrypt(KeyId=doomed_alias, Plaintext=b"x")["KeyId"] == other["Arn"]


def test_restart_inside_the_deletion_window(fresh_server):
    srv = fresh_server
    kms = srv.client()
    doomed = new_key(kms, Description="doomed across restarts")
    disabled = new_key(kms, Description="disabled across restarts")
    alias = f"alias/{unique('restart-doomed')}"
    kms.create_alias(AliasName=alias, TargetKeyId=doomed["KeyId"])
    blob = kms.encrypt(KeyId=doomed["KeyId"], Plaintext=b"pre-restart")["CiphertextBlob"]
    scheduled = kms.schedule_key_deletion(KeyId=doomed["KeyId"], PendingWindowInDays=7)
    kms.disable_key(KeyId=disabled["KeyId"])
    kms.tag_resource(KeyId=disabled["KeyId"], Tags=[{"TagKey": "kept", "TagValue": "yes"}])
    kms.update_key_description(KeyId=disabled["KeyId"], Description="new description")
    assert advance(RawClient(srv), 3 * DAY) == 3 * DAY

    srv.restart()
    kms, rc = srv.client(), RawClient(srv)
    meta = describe(kms, doomed["KeyId"])
    assert meta["KeyState"] == "PendingDeletion", meta
    assert meta["DeletionDate"] == scheduled["DeletionDate"], (meta, scheduled)
    assert meta["PendingDeletionWindowInDays"] == 7
    assert_client_error("KMSInvalidStateException", kms.decrypt, CiphertextBlob=blob)
    meta = describe(kms, disabled["KeyId"])
    assert meta["KeyState"] == "Disabled" and meta["Description"] == "new description", meta
    assert kms.list_resource_tags(KeyId=disabled["KeyId"])["Tags"] == [{"TagKey": "kept", "TagValue": "yes"}]

    # The offset is gone: 6 days from the real now is still inside the 7-day window (3 + 6 would not be).
    assert advance(rc, 6 * DAY) == 6 * DAY
    assert state_of(kms, doomed["KeyId"]) == "PendingDeletion"
    advance(rc, 2 * DAY)
    assert_client_error("NotFoundException", kms.describe_key, KeyId=doomed["KeyId"])
    assert alias not in all_aliases(kms)

    # Destroyed for good: a restart (clock back to real time, before the old DeletionDate) does not bring it back.
    srv.restart()
    kms = srv.client()
    assert_client_error("NotFoundException", kms.describe_key, KeyId=doomed["KeyId"])
    assert doomed["KeyId"] not in all_key_ids(kms)
    assert alias not in all_aliases(kms)
    r = assert_client_error("NotFoundException", kms.decrypt, CiphertextBlob=blob)
    assert_error_message(r, f"Key '{doomed['Arn']}' does not exist")
    assert state_of(kms, disabled["KeyId"]) == "Disabled"


# ---- UpdateKeyDescription -------------------------------------------------------------------------------------------


def test_update_key_description(kms, kms_raw):
    key = new_key(kms, Description="first")
    assert set(kms.update_key_description(KeyId=key["KeyId"], Description="second")) == {"ResponseMetadata"}
    assert describe(kms, key["KeyId"])["Description"] == "second"
    kms.update_key_description(KeyId=key["Arn"], Description="")
    assert describe(kms, key["KeyId"])["Description"] == ""
    longest = "d" * 8192
    kms.update_key_description(KeyId=key["KeyId"], Description=longest)
    assert describe(kms, key["KeyId"])["Description"] == longest
    assert_client_error("ValidationException", kms_raw.update_key_description, KeyId=key["KeyId"],
                        Description="d" * 8193)
    assert_client_error("ValidationException", kms_raw.update_key_description, KeyId=key["KeyId"])
    assert describe(kms, key["KeyId"])["Description"] == longest


# ---- UpdateAlias ----------------------------------------------------------------------------------------------------


def test_update_alias_retargets(kms):
    first, second = new_key(kms), new_key(kms)
    alias = f"alias/{unique('update')}"
    kms.create_alias(AliasName=alias, TargetKeyId=first["KeyId"])
    old_blob = kms.encrypt(KeyId=alias, Plaintext=b"via first")
    assert old_blob["KeyId"] == first["Arn"]
    before = all_aliases(kms)[alias]
    time.sleep(1.1)

    assert set(kms.update_alias(AliasName=alias, TargetKeyId=second["KeyId"])) == {"ResponseMetadata"}
    after = all_aliases(kms)[alias]
    assert after["TargetKeyId"] == second["KeyId"]
    assert after["CreationDate"] == before["CreationDate"], (before, after)
    assert after["LastUpdatedDate"] > before["LastUpdatedDate"], (before, after)
    assert [a["AliasName"] for a in kms.list_aliases(KeyId=second["KeyId"])["Aliases"]] == [alias]
    assert kms.list_aliases(KeyId=first["KeyId"])["Aliases"] == []

    r = kms.encrypt(KeyId=alias, Plaintext=b"via second")
    assert r["KeyId"] == second["Arn"]
    assert kms.decrypt(CiphertextBlob=r["CiphertextBlob"])["KeyId"] == second["Arn"]
    assert kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"] == second["KeyId"]
    # ciphertexts made through the alias before stay bound to the first key
    assert kms.decrypt(CiphertextBlob=old_blob["CiphertextBlob"])["KeyId"] == first["Arn"]
    # the key ARN form is accepted as a target too
    kms.update_alias(AliasName=alias, TargetKeyId=first["Arn"])
    assert kms.encrypt(KeyId=alias, Plaintext=b"x")["KeyId"] == first["Arn"]


def test_update_alias_errors(kms):
    key, other = new_key(kms), new_key(kms)
    alias, other_alias = f"alias/{unique('upd-err')}", f"alias/{unique('upd-err2')}"
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    kms.create_alias(AliasName=other_alias, TargetKeyId=other["KeyId"])
    alias_arn = key["Arn"].split(":key/")[0] + ":" + other_alias

    assert_client_error("NotFoundException", kms.update_alias, AliasName=f"alias/{unique('nope')}",
                        TargetKeyId=key["KeyId"])
    assert_client_error("NotFoundException", kms.update_alias, AliasName=alias,
                        TargetKeyId="11111111-2222-4333-8444-555555555555")
    assert_client_error("ValidationException", kms.update_alias, AliasName=alias, TargetKeyId=other_alias)
    assert_client_error("ValidationException", kms.update_alias, AliasName=alias, TargetKeyId=alias_arn)
    assert all_aliases(kms)[alias]["TargetKeyId"] == key["KeyId"]
    assert kms.encrypt(KeyId=alias, Plaintext=b"x")["KeyId"] == key["Arn"]


def test_update_alias_to_a_disabled_key(kms):
    key, disabled = new_key(kms), new_key(kms)
    kms.disable_key(KeyId=disabled["KeyId"])
    alias = f"alias/{unique('upd-dis')}"
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    kms.update_alias(AliasName=alias, TargetKeyId=disabled["KeyId"])
    r = assert_client_error("DisabledException", kms.encrypt, KeyId=alias, Plaintext=b"x")
    assert_error_message(r, f"{disabled['Arn']} is disabled.")


# ---- tags -------------------------------------------------------------------------------------------------------


def tag_list(pairs):
    return [{"TagKey": k, "TagValue": v} for k, v in pairs]


def test_tag_overwrite_sort_and_untag(kms):
    key_id = new_key(kms, Tags=tag_list([("m", "1")]))["KeyId"]
    assert set(kms.tag_resource(KeyId=key_id, Tags=tag_list([("z", "last"), ("a", "first"), ("m", "2")]))) == {
        "ResponseMetadata"}
    r = kms.list_resource_tags(KeyId=key_id)
    assert r["Tags"] == tag_list([("a", "first"), ("m", "2"), ("z", "last")])
    assert r["Truncated"] is False and "NextMarker" not in r, r
    kms.tag_resource(KeyId=key_id, Tags=tag_list([("B", ""), ("a", "again")]))
    assert all_tags(kms, key_id) == tag_list([("B", ""), ("a", "again"), ("m", "2"), ("z", "last")])

    assert set(kms.untag_resource(KeyId=key_id, TagKeys=["m", "absent"])) == {"ResponseMetadata"}
    assert all_tags(kms, key_id) == tag_list([("B", ""), ("a", "again"), ("z", "last")])
    kms.untag_resource(KeyId=key_id, TagKeys=["B", "a", "z"])
    r = kms.list_resource_tags(KeyId=key_id)
    assert r["Tags"] == [] and r["Truncated"] is False, r


def test_list_resource_tags_paging(kms, kms_raw):
    key_id = new_key(kms)["KeyId"]
    pairs = [(f"k{i}", f"v{i}") for i in (4, 0, 3, 1, 2)]
    kms.tag_resource(KeyId=key_id, Tags=tag_list(pairs))
    pages, marker = [], None
    for _ in range(10):
        kwargs = {"KeyId": key_id, "Limit": 2}
        if marker:
            kwargs["Marker"] = marker
        page = kms.list_resource_tags(**kwargs)
        pages.append(page["Tags"])
        if not page["Truncated"]:
            assert "NextMarker" not in page, page
            break
        assert page["NextMarker"], page
        marker = page["NextMarker"]
    assert [len(p) for p in pages] == [2, 2, 1], pages
    assert [t for p in pages for t in p] == tag_list(sorted(pairs))

    assert_client_error("InvalidMarkerException", kms.list_resource_tags, KeyId=key_id, Marker="not-a-marker")
    for limit in (0, 51):
        assert_client_error("ValidationException", kms_raw.list_resource_tags, KeyId=key_id, Limit=limit)
    assert len(kms.list_resource_tags(KeyId=key_id, Limit=50)["Tags"]) == 5


def test_tag_limits(kms):
    key_id = new_key(kms)["KeyId"]
    kms.tag_resource(KeyId=key_id, Tags=tag_list([(f"a{i:02}", "x") for i in range(30)]))
    kms.tag_resource(KeyId=key_id, Tags=tag_list([(f"b{i:02}", "y") for i in range(20)]))
    r = kms.list_resource_tags(KeyId=key_id)
    assert len(r["Tags"]) == 50 and r["Truncated"] is False, (len(r["Tags"]), r["Truncated"])
    assert_client_error("LimitExceededException", kms.tag_resource, KeyId=key_id,
                        Tags=tag_list([("c00", "z")]))
    assert_client_error("LimitExceededException", kms.tag_resource, KeyId=key_id,
                        Tags=tag_list([("a00", "new"), ("c00", "z")]))
    tags = all_tags(kms, key_id)
    assert len(tags) == 50 and tags[0] == {"TagKey": "a00", "TagValue": "x"}, tags[:2]
    # overwriting at the limit is fine
    kms.tag_resource(KeyId=key_id, Tags=tag_list([("a00", "new")]))
    assert all_tags(kms, key_id)[0] == {"TagKey": "a00", "TagValue": "new"}


@pytest.mark.parametrize(
    "tags,code",
    [
        (tag_list([("aws:reserved", "x")]), "TagException"),
        (tag_list([("ok", "1"), ("aws:x", "y")]), "TagException"),
        (tag_list([("dup", "1"), ("dup", "2")]), "TagException"),
        (tag_list([("k" * 129, "x")]), "ValidationException"),
        (tag_list([("", "x")]), "ValidationException"),
        (tag_list([("k", "v" * 257)]), "ValidationException"),
    ],
    ids=["aws-prefix", "aws-prefix-second", "duplicate", "key-129", "key-empty", "value-257"],
)
def test_tag_resource_errors(kms, kms_raw, tags, code):
    key_id = new_key(kms, Tags=tag_list([("orig", "1")]))["KeyId"]
    assert_client_error(code, kms_raw.tag_resource, KeyId=key_id, Tags=tags)
    assert all_tags(kms, key_id) == tag_list([("orig", "1")]), "a refused TagResource must change nothing"


def test_tag_lengths_at_the_limits(kms):
    key_id = new_key(kms)["KeyId"]
    tags = tag_list([("k" * 128, "v" * 256), ("e", "")])
    kms.tag_resource(KeyId=key_id, Tags=tags)
    assert all_tags(kms, key_id) == sorted(tags, key=lambda t: t["TagKey"])


def test_untag_resource_empty_list(kms_raw):
    key_id = new_key(kms_raw, Tags=tag_list([("orig", "1")]))["KeyId"]
    assert_client_error("ValidationException", kms_raw.untag_resource, KeyId=key_id, TagKeys=[])
    assert all_tags(kms_raw, key_id) == tag_list([("orig", "1")])


# ---- key policies ------------------------------------------------------------------------------------------------


def test_default_key_policy(kms, account):
    key_id = new_key(kms)["KeyId"]
    r = kms.get_key_policy(KeyId=key_id, PolicyName="default")
    assert r["PolicyName"] == "default"
    assert json.loads(r["Policy"]) == {
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [{
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }],
    }
    # PolicyName may be left out
    assert kms.get_key_policy(KeyId=key_id)["Policy"] == r["Policy"]


def policy_text(account, sid="RoundTrip", policy_id="custom-\u00e9") -> str:
    # deliberately odd layout (and a Latin-1 letter): the server must hand back exactly these characters
    return ('{\n  "Version" : "2012-10-17",\n\t"Statement": [ {"Sid": "%s", "Effect":"Allow",'
            '"Principal":{"AWS":"arn:aws:iam::%s:root"},"Action":"kms:*","Resource":"*"} ],'
            '\n  "Id": "%s"  }\n' % (sid, account, policy_id))


def test_put_key_policy_round_trip(kms, account):
    key_id = new_key(kms)["KeyId"]
    text = policy_text(account)
    assert set(kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=text)) == {"ResponseMetadata"}
    assert kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"] == text
    second = policy_text(account, sid="Second")
    kms.put_key_policy(KeyId=key_id, Policy=second, BypassPolicyLockoutSafetyCheck=True)  # PolicyName omitted
    assert kms.get_key_policy(KeyId=key_id)["Policy"] == second


def test_create_key_with_policy_keeps_the_text(kms, account):
    text = policy_text(account, sid="AtCreation")
    key_id = new_key(kms, Policy=text)["KeyId"]
    assert kms.get_key_policy(KeyId=key_id)["Policy"] == text


def test_policy_at_the_length_limit(kms, kms_raw, account):
    key_id = new_key(kms)["KeyId"]
    base = policy_text(account, policy_id="ascii-only")  # so that characters and bytes agree
    longest = base + " " * (32768 - len(base))
    assert len(longest) == 32768
    kms.put_key_policy(KeyId=key_id, Policy=longest)
    assert kms.get_key_policy(KeyId=key_id)["Policy"] == longest
    assert_client_error("ValidationException", kms_raw.put_key_policy, KeyId=key_id, Policy=longest + " ")
    assert_client_error("ValidationException", kms_raw.put_key_policy, KeyId=key_id, Policy="")
    assert kms.get_key_policy(KeyId=key_id)["Policy"] == longest


@pytest.mark.parametrize("policy", ["not json", '{"Version": "2012-10-17"', '{"Version": "2012-10-17"}', "[]",
                                    '"Statement"', '{"statement": []}'],
                         ids=["not-json", "truncated", "no-statement", "array", "string", "lowercase-statement"])
def test_malformed_policies(kms, policy):
    key_id = new_key(kms)["KeyId"]
    original = kms.get_key_policy(KeyId=key_id)["Policy"]
    assert_client_error("MalformedPolicyDocumentException", kms.put_key_policy, KeyId=key_id, Policy=policy)
    assert kms.get_key_policy(KeyId=key_id)["Policy"] == original


def test_policy_name_other_than_default(kms, account):
    key_id = new_key(kms)["KeyId"]
    original = kms.get_key_policy(KeyId=key_id)["Policy"]
    assert_client_error("NotFoundException", kms.get_key_policy, KeyId=key_id, PolicyName="other")
    response = error_of(kms.put_key_policy, KeyId=key_id, PolicyName="other", Policy=policy_text(account))
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400, response
    assert response["Error"]["Code"] in ("NotFoundException", "ValidationException"), response["Error"]
    assert kms.get_key_policy(KeyId=key_id)["Policy"] == original


def test_list_key_policies(kms):
    key_id = new_key(kms)["KeyId"]
    r = kms.list_key_policies(KeyId=key_id)
    r.pop("ResponseMetadata")
    assert r == {"PolicyNames": ["default"], "Truncated": False}
    r = kms.list_key_policies(KeyId=key_id, Limit=1)
    assert r["PolicyNames"] == ["default"] and r["Truncated"] is False


# ---- DryRun -------------------------------------------------------------------------------------------------------


def _dry_calls(kms, key_id, blob):
    return [
        (kms.encrypt, {"KeyId": key_id, "Plaintext": b"x"}),
        (kms.decrypt, {"CiphertextBlob": blob}),
        (kms.generate_data_key, {"KeyId": key_id, "KeySpec": "AES_256"}),
        (kms.generate_data_key_without_plaintext, {"KeyId": key_id, "NumberOfBytes": 32}),
    ]


@pytest.mark.parametrize("index", range(4), ids=["Encrypt", "Decrypt", "GenerateDataKey",
                                                 "GenerateDataKeyWithoutPlaintext"])
def test_dry_run_by_state(kms, index):
    key = new_key(kms)
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"dry")["CiphertextBlob"]
    call, kwargs = _dry_calls(kms, key["KeyId"], blob)[index]
    assert_dry_run(call, **kwargs)

    kms.disable_key(KeyId=key["KeyId"])
    r = assert_client_error("DisabledException", call, DryRun=True, **kwargs)
    assert_error_message(r, f"{key['Arn']} is disabled.")

    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    assert_client_error("KMSInvalidStateException", call, DryRun=True, **kwargs)

    kms.cancel_key_deletion(KeyId=key["KeyId"])
    kms.enable_key(KeyId=key["KeyId"])
    assert_dry_run(call, **kwargs)
    call(DryRun=False, **kwargs)  # the real call works


# ---- the AWS CLI --------------------------------------------------------------------------------------------------


def cli_fails_with(server, code, *args):
    rc, out, err = server.aws(*args)
    assert rc != 0, f"`aws kms {' '.join(args)}` succeeded, expected {code}: {out!r}"
    assert f"({code})" in err, f"`aws kms {' '.join(args)}`: expected {code} in stderr: {err!r}"


def test_cli_disable_schedule_cancel(server, kms):
    key = new_key(kms)
    key_id = key["KeyId"]
    assert server.aws("disable-key", "--key-id", key_id)[0] == 0
    assert state_of(kms, key_id) == "Disabled"
    cli_fails_with(server, "DisabledException", "generate-data-key", "--key-id", key_id, "--key-spec", "AES_256")

    out = server.aws_ok("schedule-key-deletion", "--key-id", key_id, "--pending-window-in-days", "7")
    assert out["KeyId"] == key["Arn"] and out["KeyState"] == "PendingDeletion" and out["PendingWindowInDays"] == 7
    meta = server.aws_ok("describe-key", "--key-id", key_id)["KeyMetadata"]
    assert meta["KeyState"] == "PendingDeletion" and meta["Enabled"] is False
    assert meta["DeletionDate"] == out["DeletionDate"], (meta, out)
    cli_fails_with(server, "KMSInvalidStateException", "enable-key", "--key-id", key_id)

    assert server.aws_ok("cancel-key-deletion", "--key-id", key_id) == {"KeyId": key["Arn"]}
    assert state_of(kms, key_id) == "Disabled"
    cli_fails_with(server, "KMSInvalidStateException", "cancel-key-deletion", "--key-id", key_id)
    assert server.aws("enable-key", "--key-id", key_id)[0] == 0
    assert state_of(kms, key_id) == "Enabled"


def test_cli_tags_description_alias(server, kms):
    key, other = new_key(kms), new_key(kms)
    assert server.aws("tag-resource", "--key-id", key["KeyId"], "--tags",
                      "TagKey=team,TagValue=blue", "TagKey=env,TagValue=dev")[0] == 0
    # --no-paginate: the CLI's own paging would strip Truncated from the output
    out = server.aws_ok("list-resource-tags", "--key-id", key["KeyId"], "--no-paginate")
    assert out["Tags"] == tag_list([("env", "dev"), ("team", "blue")]) and out["Truncated"] is False, out
    out = server.aws_ok("list-resource-tags", "--key-id", key["KeyId"], "--limit", "1", "--no-paginate")
    assert out["Tags"] == tag_list([("env", "dev")]) and out["Truncated"] is True and out["NextMarker"], out
    assert server.aws("untag-resource", "--key-id", key["KeyId"], "--tag-keys", "env")[0] == 0
    assert server.aws_ok("list-resource-tags", "--key-id", key["KeyId"])["Tags"] == tag_list([("team", "blue")])
    cli_fails_with(server, "TagException", "tag-resource", "--key-id", key["KeyId"], "--tags",
                   "TagKey=aws:nope,TagValue=x")

    assert server.aws("update-key-description", "--key-id", key["KeyId"], "--description", "via cli")[0] == 0
    assert describe(kms, key["KeyId"])["Description"] == "via cli"

    alias = f"alias/{unique('cli-upd')}"
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    assert server.aws("update-alias", "--alias-name", alias, "--target-key-id", other["KeyId"])[0] == 0
    assert all_aliases(kms)[alias]["TargetKeyId"] == other["KeyId"]


def test_cli_key_policy(server, kms, account, tmp_path):
    key_id = new_key(kms)["KeyId"]
    out = server.aws_ok("get-key-policy", "--key-id", key_id, "--policy-name", "default")
    assert out["PolicyName"] == "default"
    assert json.loads(out["Policy"])["Statement"][0]["Principal"] == {"AWS": f"arn:aws:iam::{account}:root"}

    text = policy_text(account, sid="FromCli", policy_id="cli").rstrip("\n")
    path = tmp_path / "policy.json"
    path.write_text(text, encoding="utf-8")
    assert server.aws("put-key-policy", "--key-id", key_id, "--policy-name", "default",
                      "--policy", f"file://{path}")[0] == 0
    assert server.aws_ok("get-key-policy", "--key-id", key_id, "--policy-name", "default")["Policy"] == text
    assert kms.get_key_policy(KeyId=key_id)["Policy"] == text

    bad = tmp_path / "bad.json"
    bad.write_text('{"Version": "2012-10-17"}')
    cli_fails_with(server, "MalformedPolicyDocumentException", "put-key-policy", "--key-id", key_id,
                   "--policy-name", "default", "--policy", f"file://{bad}")
    assert server.aws_ok("list-key-policies", "--key-id", key_id)["PolicyNames"] == ["default"]
