"""Review of 01f2105, item 2: the README's attestation gate was bypassed with ReEncrypt. The admin, allowed everything
but Decrypt/GenerateDataKey, re-wrapped the workload's data key under a key of its own and decrypted it there. Now:
the README policy (used here verbatim) denies every releasing or re-wrapping operation, CreateKey/PutKeyPolicy refuse
a policy that gates one releasing operation but leaves another open, and ReEncryptFrom on a key that gates Decrypt
needs an attestation-conditioned Allow of its own (so in practice it is refused)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kmstest import KmsServer, assert_client_error, unique
from test_access import Principal, call_ok, make_principal, policy
from test_attestation import host_ok
from test_protocol import RawClient
from test_recipient import cms_open, recipient

README = Path(__file__).resolve().parents[2] / "README.md"

# The walkthrough policy as the README had it at 01f2105 (the one the review broke).
OLD_README_POLICY = """{"Version": "2012-10-17", "Statement": [
 {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::000000000000:user/admin"},
  "NotAction": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*"},
 {"Sid": "Enclave", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::000000000000:role/workload"},
  "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*",
  "Condition": {"StringEqualsIgnoreCase": {"kms:RecipientAttestation:ImageSha384": "$PCR0"}}},
 {"Sid": "OnlyThatImage", "Effect": "Deny", "Principal": "*", "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
  "Resource": "*", "Condition": {"StringNotEqualsIgnoreCase": {"kms:RecipientAttestation:ImageSha384": "$PCR0"}}}]}"""


def readme_policy() -> str:
    """The policy of the README's "Attestation-gated keys" walkthrough, exactly as written there."""
    text = README.read_text()
    section = text[text.index("## Attestation-gated keys (Recipient)"):]
    m = re.search(r"cat > policy\.json <<EOF\n(.*?)\nEOF\n", section, re.S)
    assert m, "the README walkthrough has no policy.json"
    assert "--bypass-policy-lockout-safety-check" in section[m.end():m.end() + 300]
    return m.group(1)


def fill(text: str, account: str, pcr0: str) -> str:
    return text.replace("000000000000", account).replace("$PCR0", pcr0)


@pytest.fixture(scope="module")
def srv(tmp_path_factory, host_bin):
    s = KmsServer(tmp_path_factory.mktemp("kms-gate"), binary=host_bin)
    s.start()
    yield s
    s.close()


@pytest.fixture(scope="module")
def account(srv):
    return call_ok(RawClient(srv), "EnclaveKms.GetCallerIdentity", {})["Account"]


@pytest.fixture(scope="module")
def workload(srv, account) -> Principal:
    # The README's principal name, so that its policy applies unchanged.
    return make_principal(RawClient(srv), srv, f"arn:aws:iam::{account}:role/workload")


@pytest.fixture(scope="module")
def pcr0(srv) -> str:
    return json.loads((srv.data_dir / "pcrs.json").read_text())["0"]


@pytest.fixture(scope="module")
def rsa_keys(tmp_path_factory, host_bin) -> Path:
    d = tmp_path_factory.mktemp("gate-rsa")
    host_ok(host_bin, "sim", "keygen", "--alg", "rsa2048", "--out-dir", d)
    return d


@pytest.fixture()
def document(tmp_path, host_bin, srv, rsa_keys) -> bytes:
    out = tmp_path / f"{unique('doc')}.cbor"
    host_ok(host_bin, "sim", "attest", "--data-dir", srv.data_dir, "--public-key", rsa_keys / "public.der",
            "--out", out)
    return out.read_bytes()


def wrapped_data_key(tmp_path, workload, key, document, rsa_keys) -> tuple[bytes, bytes]:
    """What the workload enclave does: a data key for itself only. Returns (CiphertextBlob, the data key)."""
    out = workload.kms.generate_data_key(KeyId=key, KeySpec="AES_256", Recipient=recipient(document))
    assert not out.get("Plaintext")
    return out["CiphertextBlob"], cms_open(tmp_path, rsa_keys, out["CiphertextForRecipient"])


def attack(admin, blob: bytes) -> bytes:
    """The admin re-wraps the workload's data key under a key it controls and decrypts it there."""
    own = admin.create_key(Description=unique("admin-own"))["KeyMetadata"]["KeyId"]
    rewrapped = admin.re_encrypt(CiphertextBlob=blob, DestinationKeyId=own)["CiphertextBlob"]
    return admin.decrypt(CiphertextBlob=rewrapped)["Plaintext"]


def test_old_readme_policy_is_refused(srv, account, workload, pcr0):
    admin = srv.client()
    err = assert_client_error("MalformedPolicyDocumentException", admin.create_key,
                              Policy=fill(OLD_README_POLICY, account, pcr0))
    msg = err["Error"]["Message"]
    assert "kms:ReEncryptFrom" in msg and "EnclaveKmsUngated" in msg, msg
    # PutKeyPolicy applies the same check, whatever BypassPolicyLockoutSafetyCheck says.
    key = admin.create_key(Description="to be gated")["KeyMetadata"]["KeyId"]
    assert_client_error("MalformedPolicyDocumentException", admin.put_key_policy, KeyId=key, PolicyName="default",
                        Policy=fill(OLD_README_POLICY, account, pcr0), BypassPolicyLockoutSafetyCheck=True)


def test_reencrypt_from_a_gated_key_is_refused_even_when_the_author_insists(
        tmp_path, srv, account, workload, pcr0, document, rsa_keys):
    """The old policy with the admin statement explicitly marked as meant to stay open: accepted, and the ReEncrypt
    attack still fails (the safe default), while the workload keeps working."""
    admin = srv.client()
    text = fill(OLD_README_POLICY, account, pcr0).replace('"Sid": "Admin"', '"Sid": "EnclaveKmsUngatedAdmin"')
    key = admin.create_key(Policy=text)["KeyMetadata"]["KeyId"]
    blob, data_key = wrapped_data_key(tmp_path, workload, key, document, rsa_keys)
    assert len(data_key) == 32
    err = assert_client_error("AccessDeniedException", attack, admin, blob)
    assert "kms:ReEncryptFrom" in err["Error"]["Message"] and "attestation" in err["Error"]["Message"]
    assert_client_error("AccessDeniedException", admin.decrypt, CiphertextBlob=blob)


def test_readme_walkthrough_policy_holds_against_its_admin(tmp_path, srv, account, workload, pcr0, document,
                                                           rsa_keys):
    admin = srv.client()
    text = fill(readme_policy(), account, pcr0)
    # Without kms:PutKeyPolicy for anyone, the lockout check needs the (documented) bypass.
    assert_client_error("MalformedPolicyDocumentException", admin.create_key, Policy=text)
    key = admin.create_key(Policy=text, BypassPolicyLockoutSafetyCheck=True)["KeyMetadata"]["KeyId"]
    blob, data_key = wrapped_data_key(tmp_path, workload, key, document, rsa_keys)
    again = workload.kms.decrypt(CiphertextBlob=blob, Recipient=recipient(document))
    assert cms_open(tmp_path, rsa_keys, again["CiphertextForRecipient"]) == data_key
    # Every way the admin could reach the data key is closed.
    assert_client_error("AccessDeniedException", attack, admin, blob)
    assert_client_error("AccessDeniedException", admin.decrypt, CiphertextBlob=blob)
    assert_client_error("AccessDeniedException", admin.generate_data_key, KeyId=key, KeySpec="AES_256")
    assert_client_error("AccessDeniedException", admin.put_key_policy, KeyId=key, PolicyName="default",
                        Policy=policy({"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}),
                        BypassPolicyLockoutSafetyCheck=True)
    # The workload itself cannot re-wrap the key out of the gate either (ReEncrypt carries no Recipient).
    other = admin.create_key(Description=unique("other"))["KeyMetadata"]["KeyId"]
    assert_client_error("AccessDeniedException", workload.kms.re_encrypt, CiphertextBlob=blob,
                        DestinationKeyId=other)
    # What the admin keeps: managing the key, and encrypting to it.
    admin.describe_key(KeyId=key)
    admin.encrypt(KeyId=key, Plaintext=b"for the enclave only")
    admin.tag_resource(KeyId=key, Tags=[{"TagKey": "team", "TagValue": "payments"}])
