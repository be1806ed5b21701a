"""Hardening of state against a lying host and an ordinary principal (issue 12 items 1, 3, 18, 21), through the API.

A lying host is played by the debug build's scripted store wrapper (host/src/blobstore/hostile.rs, enabled by
KMS_HOSTILE_STORE), or by editing the SQLite file while the server is stopped."""

from __future__ import annotations

import json
import sqlite3

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from kmstest import KmsServer, assert_client_error, key_arn, unique
from test_access import admin_statement, make_principal, policy
from test_protocol import RawClient

KEY, ALIAS, CREDENTIAL = 2, 3, 4


@pytest.fixture
def hostile(tmp_path, host_bin):
    """A server whose store follows the script written with `script(rules)`; `stats()` counts its operations."""
    control = tmp_path / "hostile.json"
    control.write_text('{"rules": []}')
    srv = KmsServer(tmp_path / "data", binary=host_bin, extra_env={"KMS_HOSTILE_STORE": str(control)})
    srv.start()

    class Hostile:
        server = srv

        @staticmethod
        def script(*rules):
            control.write_text(json.dumps({"rules": list(rules)}))

        @staticmethod
        def stats() -> dict:
            path = tmp_path / "hostile.json.stats"
            return json.loads(path.read_text()) if path.exists() else {}

    yield Hostile
    srv.close()


def allow(arn: str) -> dict:
    return {"Sid": "Own", "Effect": "Allow", "Principal": {"AWS": arn}, "Action": "kms:*", "Resource": "*"}


def error_code(call, *args, **kwargs) -> str:
    with pytest.raises(ClientError) as exc:
        call(*args, **kwargs)
    return exc.value.response["Error"]["Code"]


def victim_and_mallory(srv):
    """The admin's key behind alias/payroll (no one else may use it), and a principal with a key of its own."""
    kms, raw = srv.client(), RawClient(srv)
    account = kms.create_key(Description="probe")["KeyMetadata"]["AWSAccountId"]
    victim = kms.create_key(Description="payroll", Policy=policy(admin_statement(account)))["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/payroll", TargetKeyId=victim)
    mallory = make_principal(raw, srv, f"arn:aws:iam::{account}:user/{unique('mallory')}")
    own = kms.create_key(Description="mallory's", Policy=policy(admin_statement(account), allow(mallory.arn)))
    return kms, account, victim, mallory, own["KeyMetadata"]["KeyId"]


def test_a_host_acknowledging_a_create_over_an_alias_cannot_hand_it_to_another_principal(hostile):
    """Item 1: the host hides alias/payroll and acknowledges mallory's CreateAlias without writing it. Before the fix
    the enclave believed the host that the name was free and cached alias/payroll -> mallory's key, so the victim's
    next Encrypt(alias/payroll) was readable by mallory."""
    srv = hostile.server
    kms, account, victim, mallory, own = victim_and_mallory(srv)
    hostile.script(
        {"op": "get", "kind": ALIAS, "id": "alias/payroll", "action": "hide"},
        {"op": "put", "kind": ALIAS, "id": "alias/payroll", "action": "ack_without_write"},
    )
    assert_client_error("AlreadyExistsException", mallory.kms.create_alias, AliasName="alias/payroll",
                        TargetKeyId=own)
    hostile.script()
    out = kms.encrypt(KeyId="alias/payroll", Plaintext=b"salaries")
    assert out["KeyId"] == key_arn(srv.region, account, victim)


def test_a_hidden_alias_target_fails_closed_instead_of_skipping_its_authorization(hostile):
    """Item 1: after a restart (cold caches) the host hides the victim key's record for mallory's UpdateAlias. Before
    the fix the check on the alias's current target was skipped when the key looked unknown, and mallory retargeted
    alias/payroll to its own key."""
    srv = hostile.server
    kms, account, victim, mallory, own = victim_and_mallory(srv)
    srv.restart()
    kms = srv.client()
    mallory.kms = boto3.Session(
        aws_access_key_id=mallory.akid, aws_secret_access_key=mallory.secret, region_name=srv.region
    ).client("kms", endpoint_url=srv.env_file["AWS_ENDPOINT_URL_KMS"], verify=srv.ca_path,
             config=Config(retries={"total_max_attempts": 1}))
    hostile.script({"op": "get", "kind": KEY, "id": victim, "action": "hide"})
    assert error_code(mallory.kms.update_alias, AliasName="alias/payroll", TargetKeyId=own) == "KMSInternalException"
    assert error_code(mallory.kms.delete_alias, AliasName="alias/payroll") == "KMSInternalException"
    hostile.script()
    # Without the lie, mallory is refused on the victim key, and the alias still names it.
    assert_client_error("AccessDeniedException", mallory.kms.update_alias, AliasName="alias/payroll",
                        TargetKeyId=own)
    assert kms.encrypt(KeyId="alias/payroll", Plaintext=b"x")["KeyId"] == key_arn(srv.region, account, victim)


def test_case_variant_tag_keys_cannot_shadow_a_resource_tag_condition(server, kms):
    """Item 3: tags `classification` and `Classification` landed on one condition key (the later won), so a principal
    allowed to tag defeated a Deny on aws:ResourceTag/classification."""
    raw = RawClient(server)
    account = kms.create_key(Description="probe")["KeyMetadata"]["AWSAccountId"]
    mallory = make_principal(raw, server, f"arn:aws:iam::{account}:user/{unique('tagger')}")
    deny = {"Sid": "NoSecretDecrypt", "Effect": "Deny", "Principal": {"AWS": mallory.arn}, "Action": "kms:Decrypt",
            "Resource": "*", "Condition": {"StringEquals": {"aws:ResourceTag/classification": "secret"}}}
    key = kms.create_key(Description="tagged", Policy=policy(admin_statement(account), allow(mallory.arn), deny),
                         Tags=[{"TagKey": "classification", "TagValue": "secret"}])["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key, Plaintext=b"secret")["CiphertextBlob"]
    assert_client_error("AccessDeniedException", mallory.kms.decrypt, CiphertextBlob=blob)
    assert_client_error("TagException", mallory.kms.tag_resource, KeyId=key,
                        Tags=[{"TagKey": "Classification", "TagValue": "public"}])
    assert_client_error("AccessDeniedException", mallory.kms.decrypt, CiphertextBlob=blob)
    tags = kms.list_resource_tags(KeyId=key)["Tags"]
    assert tags == [{"TagKey": "classification", "TagValue": "secret"}]
    # Re-tagging with the same key still replaces the value; two case variants in one request, and `aws:` in any
    # case, are refused as AWS refuses them.
    kms.tag_resource(KeyId=key, Tags=[{"TagKey": "classification", "TagValue": "secret"}])
    assert_client_error("TagException", kms.create_key, Tags=[{"TagKey": "team", "TagValue": "a"},
                                                              {"TagKey": "TEAM", "TagValue": "b"}])
    assert_client_error("TagException", kms.tag_resource, KeyId=key, Tags=[{"TagKey": "AWS:key1", "TagValue": "v"}])


def corrupt(db, kind: int, ident: str) -> None:
    with sqlite3.connect(db) as conn:
        (blob,) = conn.execute("SELECT blob FROM records WHERE kind = ? AND id = ?", (kind, ident)).fetchone()
        bad = bytearray(blob)
        bad[len(bad) // 2] ^= 0x01
        conn.execute("UPDATE records SET blob = ? WHERE kind = ? AND id = ?", (bytes(bad), kind, ident))
    conn.close()


def test_one_bad_record_does_not_take_listings_or_the_sweep_down(fresh_server):
    """Item 18: one key record failing its integrity check made ListKeys answer 500 for everyone (one alias did the
    same to ListAliases) and aborted the deletion sweep."""
    srv = fresh_server
    kms, raw = srv.client(), RawClient(srv)
    ids = [kms.create_key(Description=f"k{i}")["KeyMetadata"]["KeyId"] for i in range(4)]
    bad, doomed = sorted(ids)[1], sorted(ids)[2]
    for i, key in enumerate(ids):
        kms.create_alias(AliasName=f"alias/iso-{i}", TargetKeyId=key)
    kms.schedule_key_deletion(KeyId=doomed, PendingWindowInDays=7)
    srv.stop()
    db = srv.data_dir / "kms.sqlite3"
    corrupt(db, KEY, bad)
    corrupt(db, ALIAS, "alias/iso-3")
    srv.start()
    kms, raw = srv.client(), RawClient(srv)

    listed = []
    for page in kms.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 1}):
        listed += [k["KeyId"] for k in page["Keys"]]
    assert bad not in listed and set(ids) - {bad} <= set(listed)
    names = [a["AliasName"] for a in kms.list_aliases()["Aliases"]]
    assert "alias/iso-3" not in names and {"alias/iso-0", "alias/iso-1", "alias/iso-2"} <= set(names)

    status, parsed, _ = raw.call("TrentService.DescribeKey", {"KeyId": bad})
    assert (status, parsed["__type"]) == (500, "KMSInternalException")
    status, parsed, _ = raw.call("TrentService.Encrypt", {"KeyId": sorted(ids)[0], "Plaintext": "aGk="})
    assert status == 200

    # The sweep (run by AdvanceClock) passes the bad key and destroys the one past its deletion date.
    status, parsed, _ = raw.call("EnclaveKms.AdvanceClock", {"Seconds": 8 * 86400})
    assert status == 200, parsed
    assert_client_error("NotFoundException", kms.describe_key, KeyId=doomed)
    assert "record skipped" in srv.stderr_text


def test_unknown_access_key_ids_cost_one_storage_read(hostile):
    """Item 21: every request naming an unknown access key id cost a storage read (500 requests, 500 reads)."""
    srv = hostile.server
    stranger = boto3.Session(aws_access_key_id="AKIAUNKNOWNUNKNOWN42", aws_secret_access_key="x" * 40,
                             region_name=srv.region).client(
        "kms", endpoint_url=srv.env_file["AWS_ENDPOINT_URL_KMS"], verify=srv.ca_path,
        config=Config(retries={"total_max_attempts": 1}))
    before = hostile.stats().get("get", {}).get(str(CREDENTIAL), 0)
    for _ in range(500):
        assert_client_error("UnrecognizedClientException", stranger.list_keys)
    after = hostile.stats().get("get", {}).get(str(CREDENTIAL), 0)
    assert after - before == 1, f"{after - before} storage reads for 500 requests with one unknown key id"
    # A key created afterwards is found (the negative cache is forgotten on create).
    kms, raw = srv.client(), RawClient(srv)
    account = kms.create_key()["KeyMetadata"]["AWSAccountId"]
    newcomer = make_principal(raw, srv, f"arn:aws:iam::{account}:user/{unique('newcomer')}",
                              identity={"Statement": [{"Effect": "Allow", "Action": "kms:ListKeys", "Resource": "*"}]})
    newcomer.kms.list_keys()
