"""Review of 01f2105, items 6 and 15: identity policies (IAM JSON on a principal, evaluated with key policies as AWS
does) and principal unique ids (a principal deleted and re-created under the same ARN is not the one a saved key
policy named). Through boto3, signed raw requests and `kms-host admin`."""

from __future__ import annotations

import json
import subprocess

import pytest

from kmstest import KmsServer, assert_client_error, scrub_aws_environment, unique
from test_access import FULL_IDENTITY, Principal, call_ok, make_principal, policy
from test_protocol import RawClient, assert_error


@pytest.fixture(scope="module")
def srv(tmp_path_factory, host_bin):
    s = KmsServer(tmp_path_factory.mktemp("kms-iam"), binary=host_bin)
    s.start()
    yield s
    s.close()


@pytest.fixture(scope="module")
def admin_raw(srv):
    return RawClient(srv)


@pytest.fixture(scope="module")
def admin(srv):
    return srv.client()


@pytest.fixture(scope="module")
def account(admin_raw):
    return call_ok(admin_raw, "EnclaveKms.GetCallerIdentity", {})["Account"]


def new_principal(srv, admin_raw, account, identity=None, kind="user") -> Principal:
    return make_principal(admin_raw, srv, f"arn:aws:iam::{account}:{kind}/{unique('iam')}", identity=identity)


def put_identity(admin_raw, arn: str, doc: dict) -> None:
    call_ok(admin_raw, "EnclaveKms.PutPrincipalPolicy", {"PrincipalArn": arn, "PolicyDocument": json.dumps(doc)})


def identity(*statements) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def denied(call, *args, **kwargs) -> str:
    return assert_client_error("AccessDeniedException", call, *args, **kwargs)["Error"]["Message"]


# ---- item 6: identity policies --------------------------------------------------------------------------------------


def test_default_policy_without_identity_policy_is_denied(srv, admin, admin_raw, account):
    p = new_principal(srv, admin_raw, account)
    key = admin.create_key(Description=unique("default"))["KeyMetadata"]["KeyId"]
    msg = denied(p.kms.encrypt, KeyId=key, Plaintext=b"x")
    assert "no identity-based policy allows the kms:Encrypt action" in msg
    denied(p.kms.describe_key, KeyId=key)
    # Key-less operations are IAM-only.
    for call, kw in ((p.kms.create_key, {}), (p.kms.list_keys, {}), (p.kms.list_aliases, {}),
                     (p.kms.generate_random, {"NumberOfBytes": 8})):
        assert "no identity-based policy allows" in denied(call, **kw)


def test_identity_allow_opens_what_it_names(srv, admin, admin_raw, account):
    key = admin.create_key(Description=unique("default"))["KeyMetadata"]["KeyId"]
    other = admin.create_key(Description=unique("default"))["KeyMetadata"]["KeyId"]
    key_arn = admin.describe_key(KeyId=key)["KeyMetadata"]["Arn"]
    p = new_principal(srv, admin_raw, account, identity=identity(
        {"Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": key_arn},
        {"Effect": "Allow", "Action": ["kms:ListKeys", "kms:GenerateRandom"], "Resource": "*"}))
    blob = p.kms.encrypt(KeyId=key, Plaintext=b"hello")["CiphertextBlob"]
    assert p.kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"hello"
    denied(p.kms.encrypt, KeyId=other, Plaintext=b"x")         # another resource
    denied(p.kms.describe_key, KeyId=key)                      # another action
    p.kms.list_keys(Limit=1)
    assert len(p.kms.generate_random(NumberOfBytes=8)["Plaintext"]) == 8
    denied(p.kms.create_key)
    # Conditions work in identity policies too.
    put_identity(admin_raw, p.arn, identity({"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*",
                                             "Condition": {"StringEquals": {"kms:EncryptionContext:app": "a"}}}))
    p.kms.encrypt(KeyId=key, Plaintext=b"x", EncryptionContext={"app": "a"})
    denied(p.kms.encrypt, KeyId=key, Plaintext=b"x", EncryptionContext={"app": "b"})
    # Removing the policy takes effect at once.
    call_ok(admin_raw, "EnclaveKms.DeletePrincipalPolicy", {"PrincipalArn": p.arn})
    denied(p.kms.encrypt, KeyId=key, Plaintext=b"x", EncryptionContext={"app": "a"})


def test_key_policy_naming_the_principal_suffices(srv, admin, admin_raw, account):
    p = new_principal(srv, admin_raw, account)
    text = policy({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:user/admin"}, "Action": "kms:*",
                   "Resource": "*"},
                  {"Effect": "Allow", "Principal": {"AWS": p.arn}, "Action": ["kms:Encrypt", "kms:Decrypt"],
                   "Resource": "*"})
    key = admin.create_key(Policy=text)["KeyMetadata"]["KeyId"]
    blob = p.kms.encrypt(KeyId=key, Plaintext=b"direct")["CiphertextBlob"]
    assert p.kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"direct"


def test_identity_deny_wins_over_a_key_policy_allow(srv, admin, admin_raw, account):
    p = new_principal(srv, admin_raw, account)
    text = policy({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:user/admin"}, "Action": "kms:*",
                   "Resource": "*"},
                  {"Effect": "Allow", "Principal": {"AWS": p.arn}, "Action": "kms:*", "Resource": "*"})
    key = admin.create_key(Policy=text)["KeyMetadata"]["KeyId"]
    blob = p.kms.encrypt(KeyId=key, Plaintext=b"x")["CiphertextBlob"]
    put_identity(admin_raw, p.arn, identity({"Effect": "Allow", "Action": "kms:*", "Resource": "*"},
                                            {"Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*"}))
    assert "explicit deny" in denied(p.kms.decrypt, CiphertextBlob=blob)
    p.kms.encrypt(KeyId=key, Plaintext=b"still allowed")


def test_admins_keep_full_rights(srv, admin, admin_raw, account):
    boss = make_principal(admin_raw, srv, f"arn:aws:iam::{account}:user/{unique('boss')}", admin=True)
    key = boss.kms.create_key(Description="admin, no identity policy")["KeyMetadata"]["KeyId"]
    blob = boss.kms.encrypt(KeyId=key, Plaintext=b"x")["CiphertextBlob"]
    assert boss.kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"
    boss.kms.list_keys(Limit=1)
    boss.kms.generate_random(NumberOfBytes=4)
    # An explicit Deny in an admin's own identity policy still counts.
    put_identity(admin_raw, boss.arn, identity({"Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*"}))
    denied(boss.kms.decrypt, CiphertextBlob=blob)
    boss.kms.encrypt(KeyId=key, Plaintext=b"y")


def test_principal_policy_api_errors(srv, admin_raw, account):
    p = new_principal(srv, admin_raw, account, identity=FULL_IDENTITY)
    got = call_ok(admin_raw, "EnclaveKms.GetPrincipalPolicy", {"PrincipalArn": p.arn})
    assert json.loads(got["PolicyDocument"]) == FULL_IDENTITY and got["PrincipalArn"] == p.arn
    listed = {q["PrincipalArn"]: q for q in call_ok(admin_raw, "EnclaveKms.ListPrincipals", {})["Principals"]}
    assert listed[p.arn]["HasPolicy"] is True and listed[p.arn]["PrincipalId"] == got["PrincipalId"]
    ghost = f"arn:aws:iam::{account}:user/{unique('ghost')}"
    for body, error in [
        ({"PrincipalArn": ghost, "PolicyDocument": json.dumps(FULL_IDENTITY)}, "NotFoundException"),
        ({"PrincipalArn": p.arn}, "ValidationException"),
        ({"PolicyDocument": json.dumps(FULL_IDENTITY)}, "ValidationException"),
        ({"PrincipalArn": "nope", "PolicyDocument": json.dumps(FULL_IDENTITY)}, "ValidationException"),
        ({"PrincipalArn": p.arn, "PolicyDocument": "{"}, "MalformedPolicyDocumentException"),
        ({"PrincipalArn": p.arn, "PolicyDocument": ""}, "MalformedPolicyDocumentException"),
        ({"PrincipalArn": p.arn, "PolicyDocument": json.dumps(identity(
            {"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}))},
         "MalformedPolicyDocumentException"),
        ({"PrincipalArn": p.arn, "PolicyDocument": json.dumps(identity(
            {"Effect": "Allow", "Action": "kms:*", "Resource": "*",
             "Condition": {"StringEquals": {"aws:PrincipalTag/team": "x"}}}))},
         "MalformedPolicyDocumentException"),
        ({"PrincipalArn": p.arn, "PolicyDocument": json.dumps(identity(
            {"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*", "Sid": "x" * 11000}))},
         "MalformedPolicyDocumentException"),
    ]:
        assert_error(admin_raw.call("EnclaveKms.PutPrincipalPolicy", body), error)
    # The refusals left the policy as it was.
    assert call_ok(admin_raw, "EnclaveKms.GetPrincipalPolicy", {"PrincipalArn": p.arn})["PolicyDocument"] == \
        got["PolicyDocument"]
    call_ok(admin_raw, "EnclaveKms.DeletePrincipalPolicy", {"PrincipalArn": p.arn})
    assert_error(admin_raw.call("EnclaveKms.GetPrincipalPolicy", {"PrincipalArn": p.arn}), "NotFoundException")
    assert_error(admin_raw.call("EnclaveKms.DeletePrincipalPolicy", {"PrincipalArn": p.arn}), "NotFoundException")
    assert_error(admin_raw.call("EnclaveKms.GetPrincipalPolicy", {"PrincipalArn": ghost}), "NotFoundException")
    # Only admins manage identity policies (a principal cannot grant itself more).
    for target in ("PutPrincipalPolicy", "GetPrincipalPolicy", "DeletePrincipalPolicy"):
        assert_error(p.raw.call(f"EnclaveKms.{target}", {"PrincipalArn": p.arn,
                                                         "PolicyDocument": json.dumps(FULL_IDENTITY)}),
                     "AccessDeniedException")


def test_identity_policy_survives_a_restart(make_server):
    s = make_server()
    raw = RawClient(s)
    account = call_ok(raw, "EnclaveKms.GetCallerIdentity", {})["Account"]
    p = make_principal(raw, s, f"arn:aws:iam::{account}:user/{unique('durable')}",
                       identity=identity({"Effect": "Allow", "Action": "kms:ListKeys", "Resource": "*"}))
    pid = call_ok(p.raw, "EnclaveKms.GetCallerIdentity", {})["UserId"]
    p.kms.list_keys(Limit=1)
    s.restart()
    p = Principal(s, p.arn, p.akid, p.secret)
    p.kms.list_keys(Limit=1)
    assert call_ok(p.raw, "EnclaveKms.GetCallerIdentity", {})["UserId"] == pid
    denied(p.kms.create_key)


def test_cli_put_get_delete_principal_policy(srv, admin, admin_raw, account, host_bin, tmp_path):
    p = new_principal(srv, admin_raw, account)

    def cli(*args):
        env = scrub_aws_environment(dict(__import__("os").environ))
        return subprocess.run([str(host_bin), "admin", "--data-dir", str(srv.data_dir), *map(str, args)],
                              capture_output=True, text=True, timeout=60, env=env)

    doc = tmp_path / "identity.json"
    doc.write_text(json.dumps(identity({"Effect": "Allow", "Action": "kms:CreateKey", "Resource": "*"})))
    r = cli("put-principal-policy", p.arn, "--policy-file", doc)
    assert r.returncode == 0, r.stderr
    p.kms.create_key(Description="allowed by the CLI's policy")
    r = cli("get-principal-policy", p.arn)
    assert r.returncode == 0 and json.loads(json.loads(r.stdout)["PolicyDocument"])["Statement"][0]["Action"] == \
        "kms:CreateKey"
    r = cli("delete-principal-policy", p.arn)
    assert r.returncode == 0, r.stderr
    denied(p.kms.create_key)
    r = cli("get-principal-policy", p.arn)
    assert r.returncode == 1 and r.stderr.startswith("error: NotFoundException: "), r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}]}')
    r = cli("put-principal-policy", p.arn, "--policy-file", bad)
    assert r.returncode == 1 and r.stderr.startswith("error: MalformedPolicyDocumentException: "), r.stderr
    r = cli("put-principal-policy", p.arn, "--policy-file", tmp_path / "missing.json")
    assert r.returncode == 1 and "missing.json" in r.stderr


# ---- item 15: unique ids ----------------------------------------------------------------------------------------


def test_a_recreated_principal_does_not_inherit_key_policies(srv, admin, admin_raw, account):
    arn = f"arn:aws:iam::{account}:role/{unique('reborn')}"
    first = make_principal(admin_raw, srv, arn)
    first_id = call_ok(first.raw, "EnclaveKms.GetCallerIdentity", {})["UserId"]
    assert first_id.startswith("AROA") and len(first_id) == 21
    text = policy({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:user/admin"}, "Action": "kms:*",
                   "Resource": "*"},
                  {"Effect": "Allow", "Principal": {"AWS": arn}, "Action": ["kms:Encrypt", "kms:Decrypt"],
                   "Resource": "*"})
    key = admin.create_key(Policy=text)["KeyMetadata"]["KeyId"]
    blob = first.kms.encrypt(KeyId=key, Plaintext=b"for the first one")["CiphertextBlob"]

    call_ok(admin_raw, "EnclaveKms.DeletePrincipal", {"PrincipalArn": arn})
    second = make_principal(admin_raw, srv, arn)
    second_id = call_ok(second.raw, "EnclaveKms.GetCallerIdentity", {})["UserId"]
    assert second_id != first_id
    # The policy saved while the first principal existed does not grant the second one.
    denied(second.kms.decrypt, CiphertextBlob=blob)
    denied(second.kms.encrypt, KeyId=key, Plaintext=b"x")
    # The policy text is unchanged; saving it again binds the ARN to the principal that has it now.
    assert json.loads(admin.get_key_policy(KeyId=key, PolicyName="default")["Policy"]) == json.loads(text)
    admin.put_key_policy(KeyId=key, PolicyName="default", Policy=text)
    assert second.kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"for the first one"


def test_a_key_policy_naming_no_existing_principal_is_refused(admin, account):
    ghost = f"arn:aws:iam::{account}:user/{unique('ghost')}"
    text = policy({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:user/admin"}, "Action": "kms:*",
                   "Resource": "*"},
                  {"Effect": "Allow", "Principal": {"AWS": ghost}, "Action": "kms:Decrypt", "Resource": "*"})
    msg = assert_client_error("MalformedPolicyDocumentException", admin.create_key, Policy=text)["Error"]["Message"]
    assert "invalid principals" in msg and ghost in msg
    key = admin.create_key(Description="put")["KeyMetadata"]["KeyId"]
    assert_client_error("MalformedPolicyDocumentException", admin.put_key_policy, KeyId=key, PolicyName="default",
                        Policy=text)


def test_policies_can_name_the_unique_id_with_aws_userid(srv, admin, admin_raw, account):
    p = new_principal(srv, admin_raw, account)
    pid = call_ok(p.raw, "EnclaveKms.GetCallerIdentity", {})["UserId"]
    text = policy({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:user/admin"}, "Action": "kms:*",
                   "Resource": "*"},
                  {"Effect": "Allow", "Principal": "*", "Action": "kms:Encrypt", "Resource": "*",
                   "Condition": {"StringEquals": {"aws:userid": pid}}})
    key = admin.create_key(Policy=text)["KeyMetadata"]["KeyId"]
    p.kms.encrypt(KeyId=key, Plaintext=b"x")
    call_ok(admin_raw, "EnclaveKms.DeletePrincipal", {"PrincipalArn": p.arn})
    again = make_principal(admin_raw, srv, p.arn)
    denied(again.kms.encrypt, KeyId=key, Plaintext=b"x")
