"""Access control end to end: principals and access keys (EnclaveKms.* admin operations), key policies evaluated on
every call with IAM's logic, the lockout safety check, and the condition keys of the operations -- through boto3,
the AWS CLI and signed raw requests, with real principals' keys."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from kmstest import assert_client_error, unique
from test_protocol import RawClient, assert_error

OTHER_ACCOUNT = "999988887777"


def call_ok(raw: RawClient, target: str, body: dict, **kw) -> dict:
    status, parsed, data = raw.call(target, body, **kw)
    assert status == 200, f"{target} answered {status}: {data[:400]!r}"
    return parsed


class Principal:
    def __init__(self, server, arn: str, akid: str, secret: str):
        self.arn, self.akid, self.secret = arn, akid, secret
        session = boto3.Session(aws_access_key_id=akid, aws_secret_access_key=secret, region_name=server.region)
        self.kms = session.client(
            "kms",
            endpoint_url=server.env_file["AWS_ENDPOINT_URL_KMS"],
            verify=server.ca_path,
            config=Config(retries={"total_max_attempts": 1}),
        )
        self.raw = RawClient(server)
        self.raw.access_key, self.raw.secret_key = akid, secret


# An identity policy that allows every KMS action (what principals had implicitly before identity policies).
FULL_IDENTITY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}


def make_principal(admin_raw: RawClient, server, arn: str, admin: bool = False,
                   identity: dict | None = None) -> Principal:
    """A principal with an access key; `identity` is attached as its identity policy (none by default)."""
    out = call_ok(admin_raw, "EnclaveKms.CreatePrincipal", {"PrincipalArn": arn, "Admin": admin})
    assert out["Principal"]["PrincipalArn"] == arn and out["Principal"]["Admin"] is admin
    pid = out["Principal"]["PrincipalId"]
    assert len(pid) == 21 and pid.startswith("AROA" if ":role/" in arn else "AIDA"), pid
    if identity is not None:
        call_ok(admin_raw, "EnclaveKms.PutPrincipalPolicy", {"PrincipalArn": arn, "PolicyDocument": json.dumps(identity)})
    key = call_ok(admin_raw, "EnclaveKms.CreateAccessKey", {"PrincipalArn": arn})["AccessKey"]
    assert key["PrincipalArn"] == arn and key["AccessKeyId"].startswith("AKIA") and len(key["SecretAccessKey"]) == 40
    return Principal(server, arn, key["AccessKeyId"], key["SecretAccessKey"])


@pytest.fixture(scope="module")
def admin(server):
    return RawClient(server)


@pytest.fixture(scope="module")
def account(kms):
    return kms.create_key(Description="access: account probe")["KeyMetadata"]["AWSAccountId"]


@pytest.fixture(scope="module")
def people(server, admin, account):
    tag = unique("p")
    return {
        # Each with an identity policy allowing kms:*, so that these tests exercise the key policies.
        "alice": make_principal(admin, server, f"arn:aws:iam::{account}:user/alice-{tag}", identity=FULL_IDENTITY),
        "bob": make_principal(admin, server, f"arn:aws:iam::{account}:role/team/bob-{tag}", identity=FULL_IDENTITY),
        "eve": make_principal(admin, server, f"arn:aws:iam::{OTHER_ACCOUNT}:user/eve-{tag}", identity=FULL_IDENTITY),
    }


def policy(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def admin_statement(account: str) -> dict:
    return {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:user/admin"},
            "Action": "kms:*", "Resource": "*"}


def key_with(kms, account, *statements, **kwargs) -> str:
    text = policy(admin_statement(account), *statements)
    return kms.create_key(Description="access test", Policy=text, **kwargs)["KeyMetadata"]["KeyId"]


def denied(call, *args, **kwargs) -> str:
    err = assert_client_error("AccessDeniedException", call, *args, **kwargs)
    return err["Error"]["Message"]


# ---- principals and access keys -----------------------------------------------------------------------------------


def test_caller_identity(people, admin, account):
    me = call_ok(admin, "EnclaveKms.GetCallerIdentity", {})
    assert me.pop("UserId").startswith("AIDA")
    assert me == {"Arn": f"arn:aws:iam::{account}:user/admin", "Account": account,
                  "AccessKeyId": admin.access_key, "Admin": True}
    alice = people["alice"]
    who = call_ok(alice.raw, "EnclaveKms.GetCallerIdentity", {})
    listed = {p["PrincipalArn"]: p for p in call_ok(admin, "EnclaveKms.ListPrincipals", {})["Principals"]}
    assert who.pop("UserId") == listed[alice.arn]["PrincipalId"]
    assert who == {"Arn": alice.arn, "Account": account, "AccessKeyId": alice.akid, "Admin": False}
    assert call_ok(people["bob"].raw, "EnclaveKms.GetCallerIdentity", {})["UserId"].startswith("AROA")
    eve = call_ok(people["eve"].raw, "EnclaveKms.GetCallerIdentity", {})
    assert eve["Account"] == OTHER_ACCOUNT


@pytest.mark.parametrize("target,body", [
    ("EnclaveKms.CreatePrincipal", {"PrincipalArn": "arn:aws:iam::111122223333:user/x"}),
    ("EnclaveKms.DeletePrincipal", {"PrincipalArn": "arn:aws:iam::111122223333:user/x"}),
    ("EnclaveKms.ListPrincipals", {}),
    ("EnclaveKms.CreateAccessKey", {"PrincipalArn": "arn:aws:iam::111122223333:user/x"}),
    ("EnclaveKms.DeleteAccessKey", {"AccessKeyId": "AKIAAAAAAAAAAAAAAAAA"}),
    ("EnclaveKms.AdvanceClock", {"Seconds": 1}),
])
def test_admin_operations_need_an_admin(people, target, body):
    assert_error(people["alice"].raw.call(target, body), "AccessDeniedException")


def test_principal_errors(server, admin, people, account):
    alice = people["alice"]
    assert_error(admin.call("EnclaveKms.CreatePrincipal", {"PrincipalArn": alice.arn}), "AlreadyExistsException")
    for bad in ["alice", f"arn:aws:iam::{account}:group/x", f"arn:aws:iam::{account}:root",
                "arn:aws:iam::12345:user/x", f"arn:aws:iam::{account}:user/bad name", f"arn:aws:iam::{account}:user/"]:
        assert_error(admin.call("EnclaveKms.CreatePrincipal", {"PrincipalArn": bad}), "ValidationException")
    assert_error(admin.call("EnclaveKms.CreatePrincipal", {}), "ValidationException")
    ghost = f"arn:aws:iam::{account}:user/{unique('ghost')}"
    assert_error(admin.call("EnclaveKms.CreateAccessKey", {"PrincipalArn": ghost}), "NotFoundException")
    assert_error(admin.call("EnclaveKms.DeletePrincipal", {"PrincipalArn": ghost}), "NotFoundException")
    assert_error(admin.call("EnclaveKms.DeleteAccessKey", {"AccessKeyId": "AKIA" + "Z" * 16}), "NotFoundException")
    # The last admin cannot be deleted.
    assert_error(admin.call("EnclaveKms.DeletePrincipal", {"PrincipalArn": f"arn:aws:iam::{account}:user/admin"}),
                 "ValidationException")
    assert_error(admin.call("EnclaveKms.Nonsense", {}), "UnknownOperationException")


def test_access_key_limit_and_deletion(server, admin, account):
    p = make_principal(admin, server, f"arn:aws:iam::{account}:user/{unique('keys')}", identity=FULL_IDENTITY)
    second = call_ok(admin, "EnclaveKms.CreateAccessKey", {"PrincipalArn": p.arn})["AccessKey"]
    assert_error(admin.call("EnclaveKms.CreateAccessKey", {"PrincipalArn": p.arn}), "LimitExceededException")
    listed = {q["PrincipalArn"]: q for q in call_ok(admin, "EnclaveKms.ListPrincipals", {})["Principals"]}
    assert sorted(listed[p.arn]["AccessKeyIds"]) == sorted([p.akid, second["AccessKeyId"]])
    assert p.secret not in json.dumps(listed) and second["SecretAccessKey"] not in json.dumps(listed)
    p.kms.list_keys(Limit=1)
    call_ok(admin, "EnclaveKms.DeleteAccessKey", {"AccessKeyId": p.akid})
    assert_client_error("UnrecognizedClientException", p.kms.list_keys, Limit=1)
    assert_error(admin.call("EnclaveKms.DeleteAccessKey", {"AccessKeyId": p.akid}), "NotFoundException")


def test_deleting_a_principal_revokes_its_keys(server, admin, account):
    p = make_principal(admin, server, f"arn:aws:iam::{account}:user/{unique('gone')}", identity=FULL_IDENTITY)
    p.kms.list_keys(Limit=1)
    call_ok(admin, "EnclaveKms.DeletePrincipal", {"PrincipalArn": p.arn})
    assert_client_error("UnrecognizedClientException", p.kms.list_keys, Limit=1)
    listed = [q["PrincipalArn"] for q in call_ok(admin, "EnclaveKms.ListPrincipals", {})["Principals"]]
    assert p.arn not in listed


def test_second_admin_can_administer(server, admin, account):
    boss = make_principal(admin, server, f"arn:aws:iam::{account}:user/{unique('boss')}", admin=True)
    worker = make_principal(boss.raw, server, f"arn:aws:iam::{account}:user/{unique('worker')}")
    assert call_ok(worker.raw, "EnclaveKms.GetCallerIdentity", {})["Admin"] is False
    call_ok(boss.raw, "EnclaveKms.DeletePrincipal", {"PrincipalArn": worker.arn})


def test_principals_survive_a_restart(make_server):
    srv = make_server()
    raw = RawClient(srv)
    account = call_ok(raw, "EnclaveKms.GetCallerIdentity", {})["Account"]
    p = make_principal(raw, srv, f"arn:aws:iam::{account}:user/{unique('durable')}", identity=FULL_IDENTITY)
    p.kms.list_keys(Limit=1)
    srv.restart()
    p = Principal(srv, p.arn, p.akid, p.secret)
    assert call_ok(p.raw, "EnclaveKms.GetCallerIdentity", {})["Arn"] == p.arn
    p.kms.list_keys(Limit=1)


# ---- key policies -----------------------------------------------------------------------------------------------


def test_default_policy_admits_the_account_only(kms, people):
    key_id = kms.create_key(Description="default policy")["KeyMetadata"]["KeyId"]
    for name in ("alice", "bob"):
        blob = people[name].kms.encrypt(KeyId=key_id, Plaintext=b"hi")["CiphertextBlob"]
        assert people[name].kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"hi"
    eve = people["eve"].kms
    msg = denied(eve.encrypt, KeyId=key_id, Plaintext=b"hi")
    assert people["eve"].arn in msg and "kms:Encrypt" in msg and key_id in msg
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"secret")["CiphertextBlob"]
    denied(eve.decrypt, CiphertextBlob=blob)
    denied(eve.describe_key, KeyId=key_id)
    # Operations without a key are for the service's own account (GenerateRandom too), whatever eve's identity
    # policy says.
    denied(eve.create_key)
    denied(eve.list_keys)
    denied(eve.list_aliases)
    # Issue 12 item 10: GenerateRandom and the recipient nonces too (both answered other accounts before).
    assert "kms:GenerateRandom" in denied(eve.generate_random, NumberOfBytes=8)
    assert_error(people["eve"].raw.call("EnclaveKms.GetRecipientNonce", {}), "AccessDeniedException")
    assert len(people["alice"].kms.generate_random(NumberOfBytes=8)["Plaintext"]) == 8


def test_explicit_allow_for_another_account(kms, people, account):
    eve = people["eve"]
    key_id = key_with(kms, account, {"Effect": "Allow", "Principal": {"AWS": eve.arn},
                                     "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*"})
    blob = eve.kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    assert eve.kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"
    denied(eve.kms.generate_data_key, KeyId=key_id, KeySpec="AES_256")
    # The account-root principal of eve's account admits every principal of it.
    key2 = key_with(kms, account, {"Effect": "Allow", "Principal": {"AWS": OTHER_ACCOUNT},
                                   "Action": "kms:Encrypt", "Resource": "*"})
    eve.kms.encrypt(KeyId=key2, Plaintext=b"x")


def test_actions_with_wildcards_and_not_action(kms, people, account):
    alice = people["alice"]
    key_id = key_with(kms, account,
                      {"Effect": "Allow", "Principal": {"AWS": alice.arn}, "Action": "kms:Generate*",
                       "Resource": "*"},
                      {"Effect": "Allow", "Principal": {"AWS": alice.arn}, "NotAction": ["kms:Generate*",
                       "kms:Decrypt", "kms:Put*", "kms:Schedule*"], "Resource": "*"})
    alice.kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    alice.kms.generate_data_key_without_plaintext(KeyId=key_id, KeySpec="AES_128")
    blob = alice.kms.encrypt(KeyId=key_id, Plaintext=b"p")["CiphertextBlob"]
    alice.kms.describe_key(KeyId=key_id)
    denied(alice.kms.decrypt, CiphertextBlob=blob)
    denied(alice.kms.schedule_key_deletion, KeyId=key_id)
    denied(alice.kms.put_key_policy, KeyId=key_id, Policy=policy(admin_statement(account)))
    denied(people["bob"].kms.encrypt, KeyId=key_id, Plaintext=b"p")


def test_explicit_deny_wins(kms, people, account):
    bob = people["bob"]
    key_id = key_with(kms, account,
                      {"Effect": "Allow", "Principal": {"AWS": account}, "Action": "kms:*", "Resource": "*"},
                      {"Effect": "Deny", "Principal": {"AWS": bob.arn}, "Action": "kms:Decrypt", "Resource": "*"})
    blob = bob.kms.encrypt(KeyId=key_id, Plaintext=b"p")["CiphertextBlob"]
    msg = denied(bob.kms.decrypt, CiphertextBlob=blob)
    assert "explicit deny" in msg
    assert people["alice"].kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"p"


def test_not_principal_deny(kms, people, account):
    alice, bob = people["alice"], people["bob"]
    key_id = key_with(kms, account,
                      {"Effect": "Allow", "Principal": {"AWS": account}, "Action": "kms:*", "Resource": "*"},
                      {"Effect": "Deny", "NotPrincipal": {"AWS": [alice.arn, f"arn:aws:iam::{account}:user/admin"]},
                       "Action": "kms:Encrypt", "Resource": "*"})
    alice.kms.encrypt(KeyId=key_id, Plaintext=b"p")
    denied(bob.kms.encrypt, KeyId=key_id, Plaintext=b"p")


def test_resource_element(kms, people, account, server):
    alice = people["alice"]
    key_id = kms.create_key(Description="resource")["KeyMetadata"]["KeyId"]
    arn = f"arn:aws:kms:{server.region}:{account}:key/{key_id}"
    kms.put_key_policy(KeyId=key_id, Policy=policy(
        admin_statement(account),
        {"Effect": "Allow", "Principal": {"AWS": alice.arn}, "Action": "kms:Encrypt", "Resource": arn},
        {"Effect": "Allow", "Principal": {"AWS": alice.arn}, "Action": "kms:DescribeKey",
         "Resource": "arn:aws:kms:*:*:key/not-this-one"}))
    alice.kms.encrypt(KeyId=key_id, Plaintext=b"p")
    denied(alice.kms.describe_key, KeyId=key_id)


def test_policy_change_takes_effect_at_once(kms, people, account):
    alice = people["alice"]
    key_id = kms.create_key(Description="policy swap")["KeyMetadata"]["KeyId"]
    alice.kms.encrypt(KeyId=key_id, Plaintext=b"p")
    kms.put_key_policy(KeyId=key_id, Policy=policy(admin_statement(account)))
    denied(alice.kms.encrypt, KeyId=key_id, Plaintext=b"p")
    kms.put_key_policy(KeyId=key_id, Policy=policy(
        admin_statement(account), {"Effect": "Allow", "Principal": {"AWS": alice.arn}, "Action": "kms:Encrypt",
                                   "Resource": "*"}))
    alice.kms.encrypt(KeyId=key_id, Plaintext=b"p")


def test_access_is_checked_before_key_state_and_dry_run(kms, people, account):
    alice = people["alice"]
    key_id = key_with(kms, account)
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"p")["CiphertextBlob"]
    kms.disable_key(KeyId=key_id)
    denied(alice.kms.encrypt, KeyId=key_id, Plaintext=b"p")
    denied(alice.kms.decrypt, CiphertextBlob=blob)
    denied(alice.kms.re_encrypt, CiphertextBlob=blob, DestinationKeyId=key_id)
    assert_client_error("DisabledException", kms.decrypt, CiphertextBlob=blob)
    kms.enable_key(KeyId=key_id)
    denied(alice.kms.encrypt, KeyId=key_id, Plaintext=b"p", DryRun=True)
    with pytest.raises(ClientError) as exc:
        kms.encrypt(KeyId=key_id, Plaintext=b"p", DryRun=True)
    assert exc.value.response["Error"]["Code"] == "DryRunOperationException"


def test_management_operations_are_gated(kms, people, account):
    alice = people["alice"]
    key_id = key_with(kms, account)
    alias = unique("alias/access")
    for call, kwargs in [
        (alice.kms.describe_key, {"KeyId": key_id}),
        (alice.kms.disable_key, {"KeyId": key_id}),
        (alice.kms.enable_key_rotation, {"KeyId": key_id}),
        (alice.kms.get_key_rotation_status, {"KeyId": key_id}),
        (alice.kms.tag_resource, {"KeyId": key_id, "Tags": [{"TagKey": "a", "TagValue": "b"}]}),
        (alice.kms.list_resource_tags, {"KeyId": key_id}),
        (alice.kms.get_key_policy, {"KeyId": key_id, "PolicyName": "default"}),
        (alice.kms.update_key_description, {"KeyId": key_id, "Description": "x"}),
        (alice.kms.schedule_key_deletion, {"KeyId": key_id, "PendingWindowInDays": 7}),
        (alice.kms.create_alias, {"AliasName": alias, "TargetKeyId": key_id}),
        (alice.kms.rotate_key_on_demand, {"KeyId": key_id}),
    ]:
        denied(call, **kwargs)
    # Aliases: the key behind an alias decides who may move or delete it.
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    open_key = kms.create_key(Description="open")["KeyMetadata"]["KeyId"]
    denied(alice.kms.update_alias, AliasName=alias, TargetKeyId=open_key)
    denied(alice.kms.delete_alias, AliasName=alias)
    kms.delete_alias(AliasName=alias)


def test_re_encrypt_needs_both_sides(kms, people, account):
    alice = people["alice"]
    src = key_with(kms, account, {"Effect": "Allow", "Principal": {"AWS": alice.arn},
                                  "Action": ["kms:Encrypt", "kms:ReEncryptFrom"], "Resource": "*"})
    dst = key_with(kms, account, {"Effect": "Allow", "Principal": {"AWS": alice.arn},
                                  "Action": "kms:Decrypt", "Resource": "*"})
    blob = alice.kms.encrypt(KeyId=src, Plaintext=b"p")["CiphertextBlob"]
    denied(alice.kms.re_encrypt, CiphertextBlob=blob, DestinationKeyId=dst)
    kms.put_key_policy(KeyId=dst, Policy=policy(admin_statement(account), {
        "Effect": "Allow", "Principal": {"AWS": alice.arn}, "Action": ["kms:Decrypt", "kms:ReEncryptTo"],
        "Resource": "*"}))
    new = alice.kms.re_encrypt(CiphertextBlob=blob, DestinationKeyId=dst)["CiphertextBlob"]
    assert alice.kms.decrypt(CiphertextBlob=new)["Plaintext"] == b"p"
    kms.put_key_policy(KeyId=src, Policy=policy(admin_statement(account), {
        "Effect": "Allow", "Principal": {"AWS": alice.arn}, "Action": "kms:Encrypt", "Resource": "*"}))
    denied(alice.kms.re_encrypt, CiphertextBlob=blob, DestinationKeyId=dst)


# ---- the lockout safety check --------------------------------------------------------------------------------------


def test_lockout_safety_check(kms, people, account):
    alice = people["alice"]
    locking = policy({"Effect": "Allow", "Principal": {"AWS": alice.arn}, "Action": "kms:*", "Resource": "*"})
    err = assert_client_error("MalformedPolicyDocumentException", kms.create_key, Policy=locking)
    assert "will not allow you to update the key policy" in err["Error"]["Message"]
    locked = kms.create_key(Policy=locking, BypassPolicyLockoutSafetyCheck=True)["KeyMetadata"]["KeyId"]
    # The admin is now locked out; alice holds the key.
    denied(kms.describe_key, KeyId=locked)
    alice.kms.describe_key(KeyId=locked)
    key_id = kms.create_key(Description="lockout put")["KeyMetadata"]["KeyId"]
    assert_client_error("MalformedPolicyDocumentException", kms.put_key_policy, KeyId=key_id, Policy=locking)
    kms.describe_key(KeyId=key_id)
    kms.put_key_policy(KeyId=key_id, Policy=locking, BypassPolicyLockoutSafetyCheck=True)
    denied(kms.describe_key, KeyId=key_id)
    # A Deny on kms:BypassPolicyLockoutSafetyCheck stops the bypass.
    guarded = key_with(kms, account, {"Effect": "Deny", "Principal": "*", "Action": "kms:PutKeyPolicy",
                                      "Resource": "*", "Condition": {"Bool": {
                                          "kms:BypassPolicyLockoutSafetyCheck": "true"}}})
    denied(kms.put_key_policy, KeyId=guarded, Policy=locking, BypassPolicyLockoutSafetyCheck=True)


@pytest.mark.parametrize("text", [
    "not json", "{}", '{"Statement": []}', '{"Statement": [{"Effect": "Maybe", "Principal": "*", "Action": "kms:*", '
    '"Resource": "*"}]}', '{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*", '
    '"Condition": {"NoSuchOperator": {"a": "b"}}}]}',
    '{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*", '
    '"Condition": {"NumericLessThan": {"kms:RotationPeriodInDays": "many"}}}]}',
])
def test_malformed_policies(kms, text):
    assert_client_error("MalformedPolicyDocumentException", kms.create_key, Policy=text)


def test_cli_sees_access_denied(server, kms, account):
    key_id = kms.create_key(Description="cli", Policy=policy(admin_statement(account)))["KeyMetadata"]["KeyId"]
    code, out, err = server.aws("create-key", "--policy", policy({"Effect": "Allow", "Principal": {"AWS": "*"},
                                                                   "Action": "kms:Decrypt", "Resource": "*"}))
    assert code != 0 and "MalformedPolicyDocumentException" in err
    assert server.aws_ok("describe-key", "--key-id", key_id)["KeyMetadata"]["KeyId"] == key_id


# ---- condition keys, through the real request path -----------------------------------------------------------------

CONDITION_CASES = {
    # name: (condition block, action(s), call that matches, call that does not)
    "EncryptionContext": ({"StringEquals": {"kms:EncryptionContext:Tenant": "blue"}}, "kms:Encrypt",
                          dict(op="encrypt", EncryptionContext={"Tenant": "blue"}),
                          dict(op="encrypt", EncryptionContext={"Tenant": "red"})),
    "EncryptionContextKeyCase": ({"StringEquals": {"kms:encryptioncontext:tenant": "blue"}}, "kms:Encrypt",
                                 dict(op="encrypt", EncryptionContext={"Tenant": "blue"}),
                                 dict(op="encrypt", EncryptionContext={"Other": "blue"})),
    "EncryptionContextKeys": ({"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["a", "b"]}},
                              "kms:Encrypt", dict(op="encrypt", EncryptionContext={"a": "1", "b": "2"}),
                              dict(op="encrypt", EncryptionContext={"a": "1", "c": "2"})),
    "EncryptionContextRequired": ({"Null": {"kms:EncryptionContextKeys": "false"}}, "kms:Encrypt",
                                  dict(op="encrypt", EncryptionContext={"a": "1"}), dict(op="encrypt")),
    "CallerAccount": ({"StringEquals": {"kms:CallerAccount": "{account}"}}, "kms:Encrypt",
                      dict(op="encrypt"), dict(op="encrypt", who="eve")),
    "PrincipalArn": ({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/alice-*"}}, "kms:Encrypt",
                     dict(op="encrypt"), dict(op="encrypt", who="bob")),
    "RequestAlias": ({"StringLike": {"kms:RequestAlias": "alias/granted-*"}}, "kms:Encrypt",
                     dict(op="encrypt", via="alias/granted-{tag}"), dict(op="encrypt")),
    "EncryptionAlgorithm": ({"StringEquals": {"kms:EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}}, "kms:Encrypt",
                            dict(op="encrypt"), dict(op="generate_data_key")),
    "ResourceTag": ({"StringEquals": {"aws:ResourceTag/project": "x"}}, "kms:Encrypt",
                    dict(op="encrypt", tag={"project": "x"}), dict(op="encrypt", tag={"project": "y"})),
    "KeyOrigin": ({"StringEquals": {"kms:KeyOrigin": "AWS_KMS"}}, "kms:DescribeKey",
                  dict(op="describe_key"), dict(op="describe_key", origin="EXTERNAL")),
    "KeySpecAndUsage": ({"StringEquals": {"kms:KeySpec": "SYMMETRIC_DEFAULT", "kms:KeyUsage": "ENCRYPT_DECRYPT"}},
                        "kms:DescribeKey", dict(op="describe_key"), dict(op="encrypt")),
    "PendingWindow": ({"NumericGreaterThanEquals": {"kms:ScheduleKeyDeletionPendingWindowInDays": "20"}},
                      "kms:ScheduleKeyDeletion", dict(op="schedule", days=20), dict(op="schedule", days=7)),
    "RotationPeriod": ({"NumericLessThanEquals": {"kms:RotationPeriodInDays": "180"}}, "kms:EnableKeyRotation",
                       dict(op="rotation", days=90), dict(op="rotation", days=365)),
    "TagKeys": ({"ForAllValues:StringLike": {"aws:TagKeys": "team-*"}}, "kms:TagResource",
                dict(op="tag", keys=["team-a", "team-b"]), dict(op="tag", keys=["team-a", "cost"])),
    "RequestTag": ({"StringEquals": {"aws:RequestTag/team": "blue"}}, "kms:TagResource",
                   dict(op="tag", keys=["team"], value="blue"), dict(op="tag", keys=["team"], value="red")),
    "CurrentTime": ({"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}, "kms:Encrypt",
                    dict(op="encrypt"), None),
    "CurrentTimeFuture": ({"DateLessThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}, "kms:Encrypt",
                          None, dict(op="encrypt")),
    "SecureTransport": ({"Bool": {"aws:SecureTransport": "true"}}, "kms:Encrypt", dict(op="encrypt"), None),
    "ReEncryptOnSameKey": ({"Bool": {"kms:ReEncryptOnSameKey": "true"}}, ["kms:ReEncryptTo", "kms:ReEncryptFrom"], dict(op="reencrypt", same=True), dict(op="reencrypt", same=False)),
    "IfExists": ({"StringEqualsIfExists": {"kms:EncryptionContext:Tenant": "blue"}}, "kms:Encrypt",
                 dict(op="encrypt"), dict(op="encrypt", EncryptionContext={"Tenant": "red"})),
}


def run_case(kms, people, account, key_id, spec: dict, tag: str):
    spec = dict(spec)
    who = people[spec.pop("who", "alice")]
    op = spec.pop("op")
    target = key_id
    if "via" in spec:
        alias = spec.pop("via").format(tag=tag)
        kms.create_alias(AliasName=alias, TargetKeyId=key_id)
        target = alias
    if op == "encrypt":
        return who.kms.encrypt(KeyId=target, Plaintext=b"p", **spec)
    if op == "generate_data_key":
        return who.kms.generate_data_key(KeyId=target, KeySpec="AES_256")
    if op == "describe_key":
        return who.kms.describe_key(KeyId=target)
    if op == "schedule":
        out = who.kms.schedule_key_deletion(KeyId=target, PendingWindowInDays=spec["days"])
        kms.cancel_key_deletion(KeyId=key_id)
        return out
    if op == "rotation":
        return who.kms.enable_key_rotation(KeyId=target, RotationPeriodInDays=spec["days"])
    if op == "tag":
        value = spec.get("value", "v")
        return who.kms.tag_resource(KeyId=target, Tags=[{"TagKey": k, "TagValue": value} for k in spec["keys"]])
    if op == "reencrypt":
        blob = kms.encrypt(KeyId=target, Plaintext=b"p")["CiphertextBlob"]
        other = kms.create_key(Description="other")["KeyMetadata"]["KeyId"]
        return who.kms.re_encrypt(CiphertextBlob=blob, DestinationKeyId=target if spec["same"] else other)
    raise AssertionError(op)


@pytest.mark.parametrize("name", sorted(CONDITION_CASES))
def test_condition_keys(name, kms, people, account):
    condition, actions, good, bad = CONDITION_CASES[name]
    condition = json.loads(json.dumps(condition).replace("{account}", account))
    tag = unique("t").lower()

    def new_key(spec):
        kwargs = {}
        if spec and "tag" in spec:
            kwargs["Tags"] = [{"TagKey": k, "TagValue": v} for k, v in spec["tag"].items()]
        if spec and spec.get("origin") == "EXTERNAL":
            kwargs["Origin"] = "EXTERNAL"
        allow = {"Effect": "Allow", "Principal": {"AWS": [people[n].arn for n in people]}, "Action": actions,
                 "Resource": "*", "Condition": condition}
        return key_with(kms, account, allow, **kwargs)

    if good is not None:
        key_id = new_key(good)
        run_case(kms, people, account, key_id, {k: v for k, v in good.items() if k not in ("tag", "origin")}, tag)
    if bad is not None:
        key_id = new_key(bad)
        with pytest.raises(ClientError) as exc:
            run_case(kms, people, account, key_id, {k: v for k, v in bad.items() if k not in ("tag", "origin")},
                     tag + "x")
        assert exc.value.response["Error"]["Code"] == "AccessDeniedException", exc.value.response


def test_context_keys_differing_only_in_case_are_refused(kms):
    key_id = kms.create_key(Description="case")["KeyMetadata"]["KeyId"]
    assert_client_error("ValidationException", kms.encrypt, KeyId=key_id, Plaintext=b"p",
                        EncryptionContext={"Tenant": "a", "tenant": "b"})
    assert_client_error("ValidationException", kms.generate_data_key, KeyId=key_id, KeySpec="AES_256",
                        EncryptionContext={"K": "a", "k": "b"})
    kms.encrypt(KeyId=key_id, Plaintext=b"p", EncryptionContext={"Tenant": "a", "tenant2": "b"})
