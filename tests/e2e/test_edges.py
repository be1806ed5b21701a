"""Edges of the request path the other modules leave out: body framing, DryRun, features refused until they exist,
KeyId forms where only a key may be named, and the modes of the operator files."""

from __future__ import annotations

import base64
import http.client
import json
import stat

import pytest

from kmstest import assert_client_error, unique
from test_protocol import assert_error, raw  # noqa: F401  (raw is a fixture)

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def key_id(kms):
    return kms.create_key(Description="edge tests")["KeyMetadata"]["KeyId"]


def test_invalid_base64_is_a_serialization_error(raw, key_id):
    assert_error(raw.call("Encrypt", {"KeyId": key_id, "Plaintext": "not base64!!"}), "SerializationException")
    assert_error(raw.call("Decrypt", {"CiphertextBlob": "%%%"}), "SerializationException")


def test_huge_declared_length_is_refused_at_once(raw):
    """A client that declares far more than it sends is answered immediately, not waited on."""
    status, parsed = declare_huge_body(raw)
    assert status == 400 and parsed["__type"] == "ValidationException", parsed


def test_refusal_survives_the_close_every_time(raw):
    """The enclave answers and closes without reading the body; the relay must linger (read and discard) instead of
    closing with unread input, which would reset the connection and destroy the answer (3 to 9 in 100 before)."""
    for _ in range(300):
        status, parsed = declare_huge_body(raw)
        assert status == 400 and parsed["__type"] == "ValidationException", parsed


def declare_huge_body(raw):
    body = b"{}"
    headers = raw.headers("TrentService.ListKeys", body)
    headers["Content-Length"] = str(100 * MIB)
    conn = http.client.HTTPSConnection(raw.host, raw.port, context=raw.context, timeout=10)
    try:
        conn.putrequest("POST", "/", skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders()
        conn.send(body)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def send_chunked(raw, target: str, chunks: list[bytes]):
    """POSTs a signed body with chunked transfer encoding (no Content-Length); returns (status, parsed JSON)."""
    headers = raw.headers(target, b"".join(chunks))
    headers.pop("Content-Length", None)
    conn = http.client.HTTPSConnection(raw.host, raw.port, context=raw.context, timeout=30)
    try:
        conn.request("POST", "/", body=iter(chunks), headers=headers, encode_chunked=True)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_oversize_chunked_body_is_refused(raw):
    """Without a Content-Length the limit is enforced while reading."""
    chunks = [b"{}"] + [b" " * (256 * 1024)] * 5  # valid JSON (trailing whitespace), 1.25 MiB
    status, parsed = send_chunked(raw, "TrentService.ListKeys", chunks)
    assert status == 400 and parsed["__type"] == "ValidationException", parsed


def test_chunked_body_within_limit_is_served(raw):
    status, parsed = send_chunked(raw, "TrentService.ListKeys", [b'{"Lim', b'it": 1}'])
    assert status == 200 and len(parsed["Keys"]) <= 1, parsed


def test_dry_run_answers_400_when_the_call_would_succeed(raw, key_id):
    status, parsed, raw_body = raw.call("Encrypt", {"KeyId": key_id, "Plaintext": base64.b64encode(b"x").decode(),
                                                    "DryRun": True})
    assert status == 400 and parsed["__type"] == "DryRunOperationException", raw_body
    # ... and the real error when it would not.
    assert_error(raw.call("Encrypt", {"KeyId": "alias/does-not-exist", "Plaintext": "eA==", "DryRun": True}),
                 "NotFoundException")


def test_recipient_with_a_garbage_document_is_access_denied(kms_raw, key_id):
    blob = kms_raw.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    recipient = {"KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256", "AttestationDocument": b"\x84"}
    assert_client_error("AccessDeniedException", kms_raw.decrypt, CiphertextBlob=blob, Recipient=recipient)
    assert_client_error("AccessDeniedException", kms_raw.generate_random, NumberOfBytes=8, Recipient=recipient)


def test_alias_where_only_a_key_may_be_named(kms, key_id):
    name = f"alias/{unique('edge')}"
    kms.create_alias(AliasName=name, TargetKeyId=key_id)
    assert_client_error("ValidationException", kms.create_alias, AliasName=f"alias/{unique('edge2')}",
                        TargetKeyId=name)
    assert_client_error("ValidationException", kms.list_aliases, KeyId=name)
    # ... while the key-using operations take it.
    assert kms.describe_key(KeyId=name)["KeyMetadata"]["KeyId"] == key_id


def test_key_id_length_limit(kms_raw):
    assert_client_error("ValidationException", kms_raw.describe_key, KeyId="a" * 2049)


def test_decrypt_with_unknown_key_id_is_not_found(kms, key_id):
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    assert_client_error("NotFoundException", kms.decrypt, CiphertextBlob=blob,
                        KeyId="11111111-2222-4333-8444-555555555555")


def test_credentials_file_is_private(server):
    assert stat.S_IMODE((server.data_dir / "credentials").stat().st_mode) == 0o600
