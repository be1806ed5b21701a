#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/seed-*), a few small inputs each.

The attestation seeds are real Nitro documents (copied from ../shared/vectors/nitro) and simulator documents issued
by `kms-host sim attest` from the fixed PKI in fuzz/data/sim-pki.pem; they are committed as files, not made here.
Run from anywhere: `python3 fuzz/seeds.py`.
"""

import base64
import json
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def cbor(v):
    """A minimal CBOR encoder (definite lengths) for the storage-channel seeds."""

    def head(major, n):
        if n < 24:
            return bytes([major << 5 | n])
        for ai, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
            if n < 1 << (8 * struct.calcsize(fmt)):
                return bytes([major << 5 | ai]) + struct.pack(fmt, n)
        raise ValueError(n)

    if v is None:
        return b"\xf6"
    if v is True:
        return b"\xf5"
    if v is False:
        return b"\xf4"
    if isinstance(v, int):
        return head(0, v) if v >= 0 else head(1, -1 - v)
    if isinstance(v, bytes):
        return head(2, len(v)) + v
    if isinstance(v, str):
        b = v.encode()
        return head(3, len(b)) + b
    if isinstance(v, list):
        return head(4, len(v)) + b"".join(cbor(x) for x in v)
    if isinstance(v, dict):
        return head(5, len(v)) + b"".join(cbor(k) + cbor(x) for k, x in v.items())
    raise TypeError(v)


def frame(msg):
    body = b"\x01" + cbor(msg)
    return struct.pack(">I", len(body)) + body


SEALED = b"\x01" + bytes(range(32)) + bytes(12) + b"body" + bytes(16)
RECORD = {"id": "alias/app", "version": 1, "sealed": SEALED}


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def preface():
    write("preface", "ipv4", b"EKP1\x0b127.0.0.1:5")
    write("preface", "empty", b"EKP1\x00")
    write("preface", "tls", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc")
    write("preface", "utf8", b"EKP1\x06\xc3\xa9:443x")


def storage():
    host = [
        {"id": 1, "result": {"Ok": {"Record": None}}},
        {"id": 1, "result": {"Ok": {"Record": RECORD}}},
        {"id": 2, "result": {"Ok": {"Listed": {"records": [RECORD, RECORD], "more": True}}}},
        {"id": 3, "result": {"Ok": "Done"}},
        {"id": 3, "result": {"Err": 1}},
    ]
    for i, m in enumerate(host):
        write("storage_frame", f"host-{i}", cbor(m))
        write("storage_frame", f"host-frame-{i}", frame(m))
    enclave = [
        {"id": 1, "op": {"Get": {"kind": 2, "id": "1234abcd-12ab-34cd-56ef-1234567890ab"}}},
        {"id": 2, "op": {"Put": {"kind": 3, "id": "alias/a", "version": 2, "expected": 1, "sealed": SEALED}}},
        {"id": 3, "op": {"List": {"kind": 4, "after": None, "limit": 100}}},
        {"id": 4, "op": {"Delete": {"kind": 8, "id": "p", "expected": 7}}},
        {"id": 5, "op": {"Announce": {"ca_pem": "-----BEGIN CERTIFICATE-----", "bootstrap": None}}},
    ]
    for i, m in enumerate(enclave):
        write("storage_frame", f"enclave-{i}", cbor(m))
    honest = [
        frame({"id": 1, "result": {"Ok": {"Record": None}}}),
        frame({"id": 2, "result": {"Ok": {"Listed": {"records": [RECORD], "more": False}}}}),
        frame({"id": 3, "result": {"Ok": "Done"}}),
    ]
    write("storage_channel", "honest", b"FRAG".join(honest))
    write("storage_channel", "record", frame({"id": 1, "result": {"Ok": {"Record": RECORD}}}))
    write("storage_channel", "conflict", b"FRAG".join([honest[0], honest[1], frame({"id": 3, "result": {"Err": 1}})]))
    write("storage_channel", "out-of-order", honest[2] + honest[1] + honest[0])
    write("storage_channel", "oversize", struct.pack(">I", 9 * 1024 * 1024) + b"\x01")


def crypto():
    write("sealed_record", "key", b"\x00\x02\x05\x24" + b"1234abcd-12ab-34cd-56ef-1234567890ab" + SEALED)
    write("sealed_record", "alias", b"\x00\x03\x01\x09alias/app" + SEALED)
    write("sealed_record", "short", b"\x00\x04\x01\x01k\x01")
    blob = b"\x01" + bytes(range(16)) + b"\x00\x00\x00\x01" + bytes(32) + bytes(12) + b"secret" + bytes(16)
    write("ciphertext_blob", "no-context", b"\x00" + blob)
    write("ciphertext_blob", "context", b"\x02Tenant\x00blue\x00purpose\x00test\x00" + blob)
    write("ciphertext_blob", "short", b"\x00\x01\x02")


SIGNATURE = "f" * 64
AUTH = (
    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261202/us-east-1/kms/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" + SIGNATURE
)


def request(target, body, auth=AUTH, extra="", path="/"):
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: localhost:8443",
        "Content-Type: application/x-amz-json-1.1",
        f"X-Amz-Target: {target}",
        "X-Amz-Date: 20261202T144700Z",
    ]
    if auth:
        lines.append(f"Authorization: {auth}")
    if extra:
        lines.append(extra)
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def sigv4():
    write("sigv4", "encrypt", request("TrentService.Encrypt", '{"KeyId":"alias/sym","Plaintext":"aGk="}'))
    write("sigv4", "query", request("TrentService.ListKeys", "{}", path="/?b=2&a=1&a=%20x"))
    sha = "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-target"
    write(
        "sigv4",
        "content-sha256",
        request(
            "TrentService.ListKeys",
            "{}",
            auth=AUTH.replace("SignedHeaders=content-type;host;x-amz-date;x-amz-target", sha),
            extra="X-Amz-Content-Sha256: 44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        ),
    )
    write("sigv4", "multi-space", request("TrentService.ListKeys", "{}", extra="X-Custom:   a   b  ",
                                          auth=AUTH.replace("x-amz-target", "x-amz-target;x-custom")))


OPS = [
    "CreateKey", "DescribeKey", "ListKeys", "Encrypt", "Decrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
    "GenerateRandom", "CreateAlias", "DeleteAlias", "ListAliases", "EnableKey", "DisableKey", "ScheduleKeyDeletion",
    "CancelKeyDeletion", "UpdateKeyDescription", "UpdateAlias", "TagResource", "UntagResource", "ListResourceTags",
    "GetKeyPolicy", "PutKeyPolicy", "ListKeyPolicies", "EnableKeyRotation", "DisableKeyRotation",
    "GetKeyRotationStatus", "RotateKeyOnDemand", "ListKeyRotations", "ReEncrypt", "GetParametersForImport",
    "ImportKeyMaterial", "DeleteImportedKeyMaterial", "Sign", "Verify", "GetPublicKey", "GenerateMac", "VerifyMac",
    "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext", "DeriveSharedSecret", "CreatePrincipal",
    "DeletePrincipal", "ListPrincipals", "CreateAccessKey", "DeleteAccessKey", "GetCallerIdentity",
    "GetRecipientNonce", "GetAttestationDocument", "AdvanceClock", "NoSuchOperation",
]

B64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
POLICY = json.dumps({
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "root", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "tenant", "Effect": "Deny", "Principal": "*", "Action": ["kms:Decrypt", "kms:Encrypt"],
         "Resource": "*", "Condition": {"StringNotEqualsIgnoreCase": {"kms:EncryptionContext:Tenant": "blue"},
                                        "Bool": {"aws:SecureTransport": "true"}}},
    ],
})
BODIES = {
    "CreateKey": {"Description": "d", "KeySpec": "ECC_NIST_P384", "KeyUsage": "SIGN_VERIFY",
                  "Tags": [{"TagKey": "a", "TagValue": "b"}]},
    "DescribeKey": {"KeyId": "alias/sym"},
    "ListKeys": {"Limit": 2},
    "Encrypt": {"KeyId": "alias/sym", "Plaintext": B64(b"hello"), "EncryptionContext": {"Tenant": "blue"}},
    "Decrypt": {"CiphertextBlob": B64(b"\x01" + bytes(80)), "EncryptionContext": {"Tenant": "blue"}},
    "GenerateDataKey": {"KeyId": "alias/sym", "KeySpec": "AES_256"},
    "GenerateDataKeyWithoutPlaintext": {"KeyId": "alias/sym", "NumberOfBytes": 16},
    "GenerateRandom": {"NumberOfBytes": 32},
    "CreateAlias": {"AliasName": "alias/new", "TargetKeyId": "alias/sym"},
    "DeleteAlias": {"AliasName": "alias/hmac"},
    "ListAliases": {"KeyId": "alias/sym", "Limit": 1},
    "EnableKey": {"KeyId": "alias/disabled"},
    "DisableKey": {"KeyId": "alias/sym"},
    "ScheduleKeyDeletion": {"KeyId": "alias/sym", "PendingWindowInDays": 7},
    "CancelKeyDeletion": {"KeyId": "alias/sym"},
    "UpdateKeyDescription": {"KeyId": "alias/sym", "Description": "new"},
    "UpdateAlias": {"AliasName": "alias/sym", "TargetKeyId": "alias/external"},
    "TagResource": {"KeyId": "alias/sym", "Tags": [{"TagKey": "k", "TagValue": "v"}]},
    "UntagResource": {"KeyId": "alias/sym", "TagKeys": ["k"]},
    "ListResourceTags": {"KeyId": "alias/sym"},
    "GetKeyPolicy": {"KeyId": "alias/sym", "PolicyName": "default"},
    "PutKeyPolicy": {"KeyId": "alias/sym", "PolicyName": "default", "Policy": POLICY},
    "ListKeyPolicies": {"KeyId": "alias/sym"},
    "EnableKeyRotation": {"KeyId": "alias/sym", "RotationPeriodInDays": 90},
    "DisableKeyRotation": {"KeyId": "alias/sym"},
    "GetKeyRotationStatus": {"KeyId": "alias/sym"},
    "RotateKeyOnDemand": {"KeyId": "alias/sym"},
    "ListKeyRotations": {"KeyId": "alias/sym"},
    "ReEncrypt": {"CiphertextBlob": B64(b"\x01" + bytes(80)), "DestinationKeyId": "alias/sym"},
    "GetParametersForImport": {"KeyId": "alias/external", "WrappingAlgorithm": "RSAES_OAEP_SHA_256",
                               "WrappingKeySpec": "RSA_2048"},
    "ImportKeyMaterial": {"KeyId": "alias/external", "ImportToken": B64(bytes(64)),
                          "EncryptedKeyMaterial": B64(bytes(256)), "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"},
    "DeleteImportedKeyMaterial": {"KeyId": "alias/external"},
    "Sign": {"KeyId": "alias/sign", "Message": B64(b"msg"), "SigningAlgorithm": "ECDSA_SHA_256"},
    "Verify": {"KeyId": "alias/sign", "Message": B64(b"msg"), "SigningAlgorithm": "ECDSA_SHA_256",
               "Signature": B64(bytes(70))},
    "GetPublicKey": {"KeyId": "alias/sign"},
    "GenerateMac": {"KeyId": "alias/hmac", "Message": B64(b"msg"), "MacAlgorithm": "HMAC_SHA_256"},
    "VerifyMac": {"KeyId": "alias/hmac", "Message": B64(b"msg"), "MacAlgorithm": "HMAC_SHA_256",
                  "Mac": B64(bytes(32))},
    "GenerateDataKeyPair": {"KeyId": "alias/sym", "KeyPairSpec": "ECC_NIST_P256"},
    "GenerateDataKeyPairWithoutPlaintext": {"KeyId": "alias/sym", "KeyPairSpec": "ECC_SECG_P256K1"},
    "DeriveSharedSecret": {"KeyId": "alias/agree", "KeyAgreementAlgorithm": "ECDH",
                           "PublicKey": B64(bytes(91))},
    "CreatePrincipal": {"PrincipalArn": "arn:aws:iam::111122223333:user/bob", "Admin": False},
    "DeletePrincipal": {"PrincipalArn": "arn:aws:iam::111122223333:user/admin"},
    "ListPrincipals": {},
    "CreateAccessKey": {"PrincipalArn": "arn:aws:iam::111122223333:user/admin"},
    "DeleteAccessKey": {"AccessKeyId": "AKIAIOSFODNN7EXAMPLE"},
    "GetCallerIdentity": {},
    "GetRecipientNonce": {},
    "GetAttestationDocument": {"Nonce": B64(b"nonce")},
    "AdvanceClock": {"Seconds": 86400},
    "NoSuchOperation": {},
}


def json_request():
    for i, op in enumerate(OPS):
        write("json_request", op, bytes([i]) + json.dumps(BODIES[op]).encode())
    write("json_request", "empty", bytes([3]) + b"  ")
    write("json_request", "encrypt-rsa", bytes([3]) + json.dumps(
        {"KeyId": "alias/rsa", "Plaintext": B64(b"x"), "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}).encode())
    write("json_request", "gdk-ctx", bytes([5]) + json.dumps(
        {"KeyId": "alias/sym", "NumberOfBytes": 64, "EncryptionContext": {"a": "b", "A": "c"}}).encode())


def key_policy():
    write("key_policy", "default", json.dumps({
        "Version": "2012-10-17", "Id": "key-default-1",
        "Statement": [{"Sid": "Enable IAM User Permissions", "Effect": "Allow",
                       "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"}]}))
    write("key_policy", "conditions", POLICY)
    write("key_policy", "not", json.dumps({"Statement": [{
        "Effect": "Allow", "NotPrincipal": {"AWS": ["arn:aws:iam::444455556666:role/Other"]},
        "NotAction": "kms:PutKeyPolicy", "NotResource": "arn:aws:kms:*:*:alias/*",
        "Condition": {"ForAnyValue:StringLike": {"kms:RequestAlias": ["alias/a*", "alias/?pp"]},
                      "DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"},
                      "NumericGreaterThanEquals": {"kms:RecipientAttestation:PCR0": "1"},
                      "Null": {"kms:EncryptionContextKeys": "false"}}}]}))


def recipient():
    with open("/tmp/h8-sim/ec/public.der", "rb") as f:
        ec = f.read()
    with open("/tmp/h8-sim/rsa/public.der", "rb") as f:
        rsa = f.read()
    write("recipient", "cms", b"\x00\x30\x80\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x03\xa0\x80\x30\x80\x00\x00")
    write("recipient", "hpke", b"\x01\x04" + bytes(96) + bytes(32))
    write("recipient", "roundtrip", b"\x02a data key of 32 bytes, or so..")
    write("recipient", "spki-ec", b"\x03" + ec)
    write("recipient", "spki-rsa", b"\x07" + rsa)


def import_():
    write("import", "material", b"\x00" + bytes(range(256)))
    write("import", "token", b"\x01" + SEALED)
    write("import", "expires", b"\x02" + json.dumps(
        {"ExpirationModel": "KEY_MATERIAL_EXPIRES", "ValidTo": 1900000000}).encode())
    write("import", "plain", b"\x05{}")


def http():
    att = request("EnclaveKms.GetAttestationDocument", json.dumps({"Nonce": B64(b"n")}), auth=None)
    write("http", "attestation", att)
    write("http", "signed", request("TrentService.ListKeys", "{}"))
    write("http", "pipelined", att + request("TrentService.Encrypt", '{"KeyId":"alias/sym"}') + att)
    write("http", "get", b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    write("http", "chunked", b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: EnclaveKms.GetAttestationDocument\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
    write("http", "too-large", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n{}")
    write("http", "no-auth", request("TrentService.ListKeys", "{}", auth=None))


if __name__ == "__main__":
    preface()
    storage()
    crypto()
    sigv4()
    json_request()
    key_policy()
    recipient()
    import_()
    http()
