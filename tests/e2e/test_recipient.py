"""Attestation-gated key use end to end: a (simulated) workload enclave presents its attestation document in the
Recipient parameter; the key policy decides on its PCRs; the answer comes back only as CiphertextForRecipient (CMS
EnvelopedData opened by `openssl cms`, or our HPKE extension opened by `kms-host sim open-recipient`). Every way a
document can fail is AccessDeniedException."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from kmstest import KmsServer, assert_client_error, unique
from test_access import Principal, call_ok, make_principal, policy
from test_attestation import describe, host, host_ok, openssl
from test_protocol import RawClient, assert_error

HPKE = "HPKE_DHKEM_P384_HKDF_SHA384_AES_256_GCM"


@pytest.fixture(scope="module")
def gate_server(tmp_path_factory, host_bin):
    """A server of its own for this module's principals and keys."""
    srv = KmsServer(tmp_path_factory.mktemp("kms-recipient"), binary=host_bin)
    srv.start()
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def admin(gate_server):
    return gate_server.client()


@pytest.fixture(scope="module")
def account(gate_server):
    return call_ok(RawClient(gate_server), "EnclaveKms.GetCallerIdentity", {})["Account"]


@pytest.fixture(scope="module")
def workload(gate_server, account) -> Principal:
    """The principal the workload enclave's requests are signed with."""
    # Its identity policy allows GenerateRandom (key-less, so IAM-only); the keys' policies name it directly.
    identity = {"Statement": [{"Effect": "Allow", "Action": "kms:GenerateRandom", "Resource": "*"}]}
    return make_principal(RawClient(gate_server), gate_server, f"arn:aws:iam::{account}:role/{unique('workload')}",
                          identity=identity)


@pytest.fixture(scope="module")
def pcrs(gate_server) -> dict:
    return json.loads((gate_server.data_dir / "pcrs.json").read_text())


@pytest.fixture(scope="module")
def rsa_keys(tmp_path_factory, host_bin) -> Path:
    d = tmp_path_factory.mktemp("wl-rsa")
    host_ok(host_bin, "sim", "keygen", "--alg", "rsa2048", "--out-dir", d)
    return d


@pytest.fixture(scope="module")
def p384_keys(tmp_path_factory, host_bin) -> Path:
    d = tmp_path_factory.mktemp("wl-p384")
    host_ok(host_bin, "sim", "keygen", "--alg", "p384", "--out-dir", d)
    return d


@pytest.fixture()
def doc(tmp_path, host_bin, gate_server, rsa_keys):
    """Makes a workload document (RSA key by default) from the gate server's simulator root."""
    def make(*args, keys: Path | None = None, data_dir: Path | None = None) -> bytes:
        out = tmp_path / f"{unique('doc')}.cbor"
        host_ok(host_bin, "sim", "attest", "--data-dir", data_dir or gate_server.data_dir,
                "--public-key", (keys or rsa_keys) / "public.der", *args, "--out", out)
        return out.read_bytes()
    return make


def gate_statements(account: str, workload: Principal, pcrs: dict, actions=("kms:Decrypt", "kms:GenerateDataKey")):
    admin = {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:user/admin"},
             "NotAction": ["kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DeriveSharedSecret"],
             "Resource": "*"}
    admin_encrypt = {"Sid": "AdminEncrypt", "Effect": "Allow",
                     "Principal": {"AWS": f"arn:aws:iam::{account}:user/admin"},
                     "Action": ["kms:Encrypt", "kms:GenerateDataKeyWithoutPlaintext"], "Resource": "*"}
    gate = {"Sid": "Enclave", "Effect": "Allow", "Principal": {"AWS": workload.arn}, "Action": list(actions),
            "Resource": "*", "Condition": {"StringEqualsIgnoreCase": {
                "kms:RecipientAttestation:ImageSha384": pcrs["0"],
                "kms:RecipientAttestation:PCR1": pcrs["1"].upper(),
                "kms:RecipientAttestation:PCR2": pcrs["2"]}}}
    return [admin, admin_encrypt, gate]


@pytest.fixture(scope="module")
def gated_key(admin, account, workload, pcrs) -> str:
    return admin.create_key(Description="PCR-gated", Policy=policy(*gate_statements(account, workload, pcrs)))[
        "KeyMetadata"]["KeyId"]


def recipient(document: bytes, alg: str = "RSAES_OAEP_SHA_256") -> dict:
    return {"KeyEncryptionAlgorithm": alg, "AttestationDocument": document}


def cms_open(tmp_path: Path, keys: Path, blob: bytes) -> bytes:
    ct = tmp_path / f"{unique('cms')}.der"
    ct.write_bytes(blob)
    return openssl("cms", "-decrypt", "-inform", "DER", "-in", str(ct), "-inkey", str(keys / "private.pem"),
                   "-binary")


def hpke_open(tmp_path: Path, host_bin, keys: Path, blob: bytes, document: bytes, key_id: str | None = None,
              ciphertext_blob: bytes | None = None) -> bytes:
    """Opens an HPKE answer; `key_id` and `ciphertext_blob` are the answer's KeyId and CiphertextBlob it is bound to."""
    ct, docf, out, cb = (tmp_path / f"{unique(n)}" for n in ("hpke", "doc", "pt", "blob"))
    ct.write_bytes(blob)
    docf.write_bytes(document)
    extra = []
    if key_id is not None:
        extra += ["--key-id", key_id]
    if ciphertext_blob is not None:
        cb.write_bytes(ciphertext_blob)
        extra += ["--ciphertext-blob", cb]
    host_ok(host_bin, "sim", "open-recipient", "--private-key", keys / "private.pem", "--in", ct,
            "--document", docf, *extra, "--out", out)
    return out.read_bytes()


def denied(call, **kwargs) -> str:
    return assert_client_error("AccessDeniedException", call, **kwargs)["Error"]["Message"]


# ---- the gate opens for the right enclave ----------------------------------------------------------------------------


def test_generate_data_key_for_the_right_enclave(tmp_path, workload, gated_key, doc, rsa_keys):
    document = doc()
    out = workload.kms.generate_data_key(KeyId=gated_key, KeySpec="AES_256", Recipient=recipient(document))
    assert "Plaintext" not in out or out["Plaintext"] in (None, b""), "plaintext must not come back with Recipient"
    data_key = cms_open(tmp_path, rsa_keys, out["CiphertextForRecipient"])
    assert len(data_key) == 32
    # The wrapped copy decrypts (again only for the enclave) to the same key.
    again = workload.kms.decrypt(CiphertextBlob=out["CiphertextBlob"], Recipient=recipient(document))
    assert "Plaintext" not in again or again["Plaintext"] in (None, b"")
    assert cms_open(tmp_path, rsa_keys, again["CiphertextForRecipient"]) == data_key
    assert again["KeyId"].endswith(gated_key)


def test_decrypt_for_the_right_enclave(tmp_path, admin, workload, gated_key, doc, rsa_keys):
    blob = admin.encrypt(KeyId=gated_key, Plaintext=b"launch codes", EncryptionContext={"app": "w"})["CiphertextBlob"]
    out = workload.kms.decrypt(CiphertextBlob=blob, EncryptionContext={"app": "w"}, Recipient=recipient(doc()))
    assert cms_open(tmp_path, rsa_keys, out["CiphertextForRecipient"]) == b"launch codes"
    # The admin holds no Decrypt permission at all on this key.
    denied(admin.decrypt, CiphertextBlob=blob, EncryptionContext={"app": "w"})


def test_cms_structure(tmp_path, workload, gated_key, doc):
    out = workload.kms.generate_data_key(KeyId=gated_key, NumberOfBytes=16, Recipient=recipient(doc()))
    der = tmp_path / "ed.der"
    der.write_bytes(out["CiphertextForRecipient"])
    text = openssl("cms", "-cmsout", "-print", "-inform", "DER", "-in", str(der)).decode()
    assert "pkcs7-envelopedData" in text and "rsaesOaep" in text and "sha256" in text and "aes-256-cbc" in text, text


def test_generate_random_for_a_recipient(tmp_path, workload, doc, rsa_keys):
    out = workload.kms.generate_random(NumberOfBytes=48, Recipient=recipient(doc()))
    assert "Plaintext" not in out or out["Plaintext"] in (None, b"")
    assert len(cms_open(tmp_path, rsa_keys, out["CiphertextForRecipient"])) == 48


def test_hpke_extension(tmp_path, host_bin, workload, gated_key, doc, p384_keys):
    document = doc(keys=p384_keys)
    out = workload.kms.generate_data_key(KeyId=gated_key, KeySpec="AES_128", Recipient=recipient(document, HPKE))
    key = hpke_open(tmp_path, host_bin, p384_keys, out["CiphertextForRecipient"], document, out["KeyId"],
                    out["CiphertextBlob"])
    assert len(key) == 16
    # Bound to the document: opening with another document's hash fails.
    other = doc(keys=p384_keys)
    ct, docf, pt = tmp_path / "c", tmp_path / "d", tmp_path / "p"
    ct.write_bytes(out["CiphertextForRecipient"])
    docf.write_bytes(other)
    proc = host(host_bin, "sim", "open-recipient", "--private-key", p384_keys / "private.pem", "--in", ct,
                "--document", docf, "--out", pt)
    assert proc.returncode == 1 and not pt.exists(), describe(proc)


def test_aws_cli_v1_cannot_carry_a_binary_document(gate_server, tmp_path, doc):
    """AWS CLI v1 base64-encodes a blob nested in a structure once more, so the document arrives as text and does
    not verify (the README points v1 users to boto3 or CLI v2). This pins that the failure is a clean
    AccessDeniedException naming the envelope, not a crash."""
    docf = tmp_path / "doc.cbor"
    docf.write_bytes(doc())
    code, _, err = gate_server.aws("generate-random", "--number-of-bytes", "8", "--recipient",
                                   f"KeyEncryptionAlgorithm=RSAES_OAEP_SHA_256,AttestationDocument=fileb://{docf}")
    assert code != 0 and "AccessDeniedException" in err and "(envelope)" in err, err


# ---- and stays shut for everything else ------------------------------------------------------------------------------


def test_wrong_pcr(workload, gated_key, doc):
    msg = denied(workload.kms.generate_data_key, KeyId=gated_key, KeySpec="AES_256",
                 Recipient=recipient(doc("--pcr", "2=" + "ab" * 48)))
    assert "kms:GenerateDataKey" in msg


def test_missing_recipient(workload, gated_key):
    denied(workload.kms.generate_data_key, KeyId=gated_key, KeySpec="AES_256")


def test_debug_document(workload, gated_key, doc):
    denied(workload.kms.generate_data_key, KeyId=gated_key, KeySpec="AES_256", Recipient=recipient(doc("--debug")))


def test_document_of_another_simulator_root(make_server, workload, gated_key, doc):
    other = make_server()
    msg = denied(workload.kms.generate_data_key, KeyId=gated_key, KeySpec="AES_256",
                 Recipient=recipient(doc(data_dir=other.data_dir)))
    assert "not valid" in msg


@pytest.mark.parametrize("where", [10, 200, -120, -5])
def test_tampered_document(workload, gated_key, doc, where):
    document = bytearray(doc())
    document[where] ^= 0x01
    denied(workload.kms.generate_data_key, KeyId=gated_key, KeySpec="AES_256", Recipient=recipient(bytes(document)))


def test_truncated_and_garbage_documents(workload, gated_key, doc):
    document = doc()
    for bad in (document[:100], b"\x84" + b"\x00" * 50, b"not cbor at all"):
        denied(workload.kms.decrypt, CiphertextBlob=b"\x01" * 100, KeyId=gated_key, Recipient=recipient(bad))


def test_stale_document(make_server, tmp_path, host_bin, rsa_keys):
    """On a server of its own, whose lifecycle clock moves: a document older than five minutes is refused."""
    srv = make_server()
    raw = RawClient(srv)
    account = call_ok(raw, "EnclaveKms.GetCallerIdentity", {})["Account"]
    wl = make_principal(raw, srv, f"arn:aws:iam::{account}:role/{unique('stale')}")
    pcrs = json.loads((srv.data_dir / "pcrs.json").read_text())
    key = srv.client().create_key(Policy=policy(*gate_statements(account, wl, pcrs)))["KeyMetadata"]["KeyId"]
    out = tmp_path / "doc.cbor"
    host_ok(host_bin, "sim", "attest", "--data-dir", srv.data_dir, "--public-key", rsa_keys / "public.der",
            "--out", out)
    document = out.read_bytes()
    wl.kms.generate_data_key(KeyId=key, KeySpec="AES_256", Recipient=recipient(document))
    call_ok(raw, "EnclaveKms.AdvanceClock", {"Seconds": 301})
    msg = denied(wl.kms.generate_data_key, KeyId=key, KeySpec="AES_256", Recipient=recipient(document))
    assert "not valid (freshness)" in msg


def test_recipient_validation(workload, gated_key, doc, p384_keys):
    raw = workload.raw
    document = base64.b64encode(doc()).decode()
    body = {"KeyId": gated_key, "KeySpec": "AES_256"}
    for bad in ({"KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_1", "AttestationDocument": document},
                {"KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256"},
                {"KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256", "AttestationDocument": ""}):
        assert_error(raw.call("GenerateDataKey", {**body, "Recipient": bad}), "ValidationException")
    # The algorithm must fit the document's key.
    assert_client_error("ValidationException", workload.kms.generate_data_key, KeyId=gated_key, KeySpec="AES_256",
                        Recipient=recipient(doc(keys=p384_keys)))
    assert_client_error("ValidationException", workload.kms.generate_data_key, KeyId=gated_key, KeySpec="AES_256",
                        Recipient=recipient(doc(), HPKE))


def test_operations_without_recipient_refuse_it(workload, gated_key, doc):
    document = base64.b64encode(doc()).decode()
    r = {"KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256", "AttestationDocument": document}
    # GenerateDataKeyWithoutPlaintext has no Recipient member in AWS's model: it is ignored there as unknown; here too.
    status, parsed, raw = workload.raw.call("GenerateDataKeyWithoutPlaintext",
                                            {"KeyId": gated_key, "KeySpec": "AES_256", "Recipient": r})
    assert status == 400 and parsed["__type"] == "AccessDeniedException", raw


# ---- the classic mistake, and the robust pattern -----------------------------------------------------------------


def test_second_unconditional_allow_defeats_the_gate(admin, account, workload, pcrs, doc):
    statements = gate_statements(account, workload, pcrs)
    # The Sid prefix is the author's explicit "this Allow stays open" (else CreateKey refuses the policy).
    loose = {"Sid": "EnclaveKmsUngatedOops", "Effect": "Allow", "Principal": {"AWS": workload.arn}, "Action": "kms:GenerateDataKey",
             "Resource": "*"}
    key = admin.create_key(Policy=policy(*statements, loose))["KeyMetadata"]["KeyId"]
    # IAM logic: any Allow suffices. Without a Recipient the plaintext comes back: the gate is gone.
    out = workload.kms.generate_data_key(KeyId=key, KeySpec="AES_256")
    assert len(out["Plaintext"]) == 32
    # The robust pattern: an explicit Deny unless the document's image matches. It closes both holes.
    guard = {"Sid": "Guard", "Effect": "Deny", "Principal": "*", "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
             "Resource": "*", "Condition": {"StringNotEqualsIgnoreCase": {
                 "kms:RecipientAttestation:ImageSha384": pcrs["0"]}}}
    key = admin.create_key(Policy=policy(*statements, loose, guard))["KeyMetadata"]["KeyId"]
    msg = denied(workload.kms.generate_data_key, KeyId=key, KeySpec="AES_256")
    assert "explicit deny" in msg
    denied(workload.kms.generate_data_key, KeyId=key, KeySpec="AES_256",
           Recipient=recipient(doc("--pcr", "0=" + "cd" * 48)))
    workload.kms.generate_data_key(KeyId=key, KeySpec="AES_256", Recipient=recipient(doc()))


def test_debug_pcrs_never_match_production(admin, account, workload, pcrs, doc):
    # Even a policy that names all-zero PCR1/PCR2 along with the production image refuses a debug document.
    statements = gate_statements(account, workload, pcrs)
    key = admin.create_key(Policy=policy(*statements))["KeyMetadata"]["KeyId"]
    denied(workload.kms.generate_data_key, KeyId=key, KeySpec="AES_256",
           Recipient=recipient(doc("--debug", "--pcr", f"0={pcrs['0']}")))


# ---- the server-issued nonce (our extension) ---------------------------------------------------------------------


def test_server_nonce(admin, account, workload, pcrs, doc):
    statements = gate_statements(account, workload, pcrs)
    statements[2]["Condition"]["Bool"] = {"enclavekms:RecipientServerNonce": "true"}
    key = admin.create_key(Policy=policy(*statements))["KeyMetadata"]["KeyId"]
    # A document with a nonce of the caller's own choosing does not satisfy the policy.
    denied(workload.kms.generate_data_key, KeyId=key, KeySpec="AES_256", Recipient=recipient(doc("--nonce", "00" * 16)))
    issued = call_ok(workload.raw, "EnclaveKms.GetRecipientNonce", {})
    nonce = base64.b64decode(issued["Nonce"])
    assert issued["ExpiresAt"] > 0 and nonce[:4] == b"EKN1"
    document = doc("--nonce", nonce.hex())
    workload.kms.generate_data_key(KeyId=key, KeySpec="AES_256", Recipient=recipient(document))
    # Single use: the same document again is a replay.
    msg = denied(workload.kms.generate_data_key, KeyId=key, KeySpec="AES_256", Recipient=recipient(document))
    assert "already been used" in msg
    # A forged nonce of the right shape is refused outright.
    forged = bytearray(nonce)
    forged[-1] ^= 1
    denied(workload.kms.generate_data_key, KeyId=key, KeySpec="AES_256",
           Recipient=recipient(doc("--nonce", bytes(forged).hex())))


def test_a_refused_caller_cannot_spend_a_nonce(gate_server, admin, account, workload, pcrs, doc):
    """Issue 12 item 10: the nonce is redeemed only after the key policy admitted the request. Before, anyone holding
    the workload's document (it is not secret) could burn its nonce with a request the policy refuses."""
    statements = gate_statements(account, workload, pcrs)
    statements[2]["Condition"]["Bool"] = {"enclavekms:RecipientServerNonce": "true"}
    key = admin.create_key(Policy=policy(*statements))["KeyMetadata"]["KeyId"]
    intruder = make_principal(RawClient(gate_server), gate_server, f"arn:aws:iam::{account}:user/{unique('intruder')}")
    nonce = base64.b64decode(call_ok(workload.raw, "EnclaveKms.GetRecipientNonce", {})["Nonce"])
    document = doc("--nonce", nonce.hex())
    for _ in range(3):
        denied(intruder.kms.generate_data_key, KeyId=key, KeySpec="AES_256", Recipient=recipient(document))
    # The nonce is still good for the workload, once.
    workload.kms.generate_data_key(KeyId=key, KeySpec="AES_256", Recipient=recipient(document))
    assert "already been used" in denied(workload.kms.generate_data_key, KeyId=key, KeySpec="AES_256",
                                         Recipient=recipient(document))


def test_hpke_answer_is_bound_to_its_key_and_ciphertext(tmp_path, host_bin, workload, gated_key, doc, p384_keys):
    """Issue 12 item 12: an HPKE answer opens only with the KeyId and CiphertextBlob it came with, so a relay or a
    store cannot pair a recipient ciphertext with another data key's CiphertextBlob."""
    document = doc(keys=p384_keys)
    a = workload.kms.generate_data_key(KeyId=gated_key, KeySpec="AES_256", Recipient=recipient(document, HPKE))
    b = workload.kms.generate_data_key(KeyId=gated_key, KeySpec="AES_256", Recipient=recipient(document, HPKE))
    assert len(hpke_open(tmp_path, host_bin, p384_keys, a["CiphertextForRecipient"], document, a["KeyId"],
                         a["CiphertextBlob"])) == 32
    ct, docf, blob, pt = (tmp_path / unique(n) for n in ("c", "d", "b", "p"))
    ct.write_bytes(a["CiphertextForRecipient"])
    docf.write_bytes(document)
    base = ["sim", "open-recipient", "--private-key", p384_keys / "private.pem", "--in", ct, "--document", docf]
    for key_id, other in [(a["KeyId"], b["CiphertextBlob"]), (a["KeyId"].replace(gated_key, "0" * 8), a["CiphertextBlob"]),
                          (None, None)]:
        args = list(base)
        if key_id is not None:
            args += ["--key-id", key_id]
        if other is not None:
            blob.write_bytes(other)
            args += ["--ciphertext-blob", blob]
        proc = host(host_bin, *args, "--out", pt)
        assert proc.returncode == 1 and not pt.exists(), describe(proc)
    # GenerateRandom has neither: it opens without them.
    r = workload.kms.generate_random(NumberOfBytes=24, Recipient=recipient(document, HPKE))
    assert len(hpke_open(tmp_path, host_bin, p384_keys, r["CiphertextForRecipient"], document)) == 24


def test_attestation_allow_never_matches_without_a_document(admin, account, workload, pcrs, doc):
    # Plain IAM logic would let IfExists (or a negated operator) pass when the key is absent; an Allow that names
    # kms:RecipientAttestation:* never matches a request without a verified document.
    for operator, value in (("StringEqualsIgnoreCaseIfExists", pcrs["0"]), ("StringNotEquals", "00" * 48)):
        statements = gate_statements(account, workload, pcrs)
        statements[2]["Condition"] = {operator: {"kms:RecipientAttestation:ImageSha384": value}}
        key = admin.create_key(Policy=policy(*statements))["KeyMetadata"]["KeyId"]
        denied(workload.kms.generate_data_key, KeyId=key, KeySpec="AES_256")
        workload.kms.generate_data_key(KeyId=key, KeySpec="AES_256", Recipient=recipient(doc()))


# ---- asymmetric operations for a recipient ---------------------------------------------------------------------------


def test_asymmetric_operations_for_the_right_enclave(tmp_path, admin, account, workload, pcrs, doc, rsa_keys):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    def spki(public) -> bytes:
        return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    def gated(actions, **create) -> str:
        text = policy(*gate_statements(account, workload, pcrs, actions=actions))
        return admin.create_key(Description="PCR-gated asymmetric", Policy=text, **create)["KeyMetadata"]["KeyId"]

    # GenerateDataKeyPair: the private key comes back only for the enclave.
    wrap = gated(("kms:GenerateDataKeyPair",))
    out = workload.kms.generate_data_key_pair(KeyId=wrap, KeyPairSpec="ECC_NIST_P256", Recipient=recipient(doc()))
    assert not out.get("PrivateKeyPlaintext")
    private = serialization.load_der_private_key(cms_open(tmp_path, rsa_keys, out["CiphertextForRecipient"]), None)
    assert spki(private.public_key()) == out["PublicKey"]
    denied(workload.kms.generate_data_key_pair, KeyId=wrap, KeyPairSpec="ECC_NIST_P256")
    # DeriveSharedSecret: the secret comes back only for the enclave.
    agree = gated(("kms:DeriveSharedSecret",), KeySpec="ECC_NIST_P256", KeyUsage="KEY_AGREEMENT")
    peer = ec.generate_private_key(ec.SECP256R1())
    out = workload.kms.derive_shared_secret(KeyId=agree, KeyAgreementAlgorithm="ECDH",
                                            PublicKey=spki(peer.public_key()), Recipient=recipient(doc()))
    assert not out.get("SharedSecret")
    ours = serialization.load_der_public_key(admin.get_public_key(KeyId=agree)["PublicKey"])
    assert cms_open(tmp_path, rsa_keys, out["CiphertextForRecipient"]) == peer.exchange(ec.ECDH(), ours)
    denied(workload.kms.derive_shared_secret, KeyId=agree, KeyAgreementAlgorithm="ECDH",
           PublicKey=spki(peer.public_key()))
    # Decrypt with an RSA key.
    rsa_key = gated(("kms:Decrypt",), KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")
    ct = admin.encrypt(KeyId=rsa_key, Plaintext=b"for the enclave", EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    out = workload.kms.decrypt(KeyId=rsa_key, CiphertextBlob=ct["CiphertextBlob"],
                               EncryptionAlgorithm="RSAES_OAEP_SHA_256", Recipient=recipient(doc()))
    assert not out.get("Plaintext")
    assert cms_open(tmp_path, rsa_keys, out["CiphertextForRecipient"]) == b"for the enclave"
