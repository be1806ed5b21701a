"""Raw HTTPS requests: the JSON 1.1 protocol, SigV4 authentication and TLS."""

from __future__ import annotations

import base64
import datetime
import http.client
import json
import socket
import ssl
import warnings
from unittest import mock

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

CONTENT_TYPE = "application/x-amz-json-1.1"
HTTP_TIMEOUT = 30


class RawClient:
    """Hand-built, SigV4-signed requests to the server, sent with http.client."""

    def __init__(self, server):
        self.host, self.port = server.host_port()
        self.access_key, self.secret_key = server.credentials()
        self.region = server.region
        self.ca_path = server.ca_path
        self.context = ssl.create_default_context(cafile=self.ca_path)

    def headers(self, target: str, body: bytes, *, access_key=None, secret_key=None, when=None,
                sign=True) -> dict:
        request = AWSRequest(
            method="POST",
            url=f"https://{self.host}:{self.port}/",
            data=body,
            headers={"Content-Type": CONTENT_TYPE, "X-Amz-Target": target},
        )
        if sign:
            creds = Credentials(access_key or self.access_key, secret_key or self.secret_key)
            signer = SigV4Auth(creds, "kms", self.region)
            if when is None:
                signer.add_auth(request)
            else:  # sign with a skewed clock
                with mock.patch("botocore.auth.get_current_datetime", return_value=when):
                    signer.add_auth(request)
        return dict(request.headers.items())

    def send(self, body: bytes, headers: dict, timeout: float = HTTP_TIMEOUT):
        """POST / ; returns (status, parsed JSON body or None, raw body)."""
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=timeout)
        try:
            conn.request("POST", "/", body=body, headers=headers)
            response = conn.getresponse()
            raw = response.read()
            status = response.status
        finally:
            conn.close()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return status, parsed, raw

    def call(self, operation: str, body, **sign_kwargs):
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        target = operation if "." in operation else f"TrentService.{operation}"
        return self.send(body, self.headers(target, body, **sign_kwargs))


def assert_error(result, code: str) -> None:
    status, parsed, raw = result
    assert status == 400, f"expected HTTP 400 {code}, got {status}: {raw[:500]!r}"
    assert isinstance(parsed, dict), f"error body is not a JSON object: {raw[:500]!r}"
    assert parsed.get("__type") == code, f"expected __type {code}, got {parsed!r}"
    if code in MESSAGELESS:
        assert "message" not in parsed, f"AWS sends {code} without a message: {parsed!r}"
    else:
        assert isinstance(parsed.get("message"), str), f"error body has no string message: {parsed!r}"


# The errors AWS sends with no message at all (`{"__type":"InvalidCiphertextException"}`).
MESSAGELESS = frozenset({"InvalidCiphertextException", "KMSInvalidSignatureException", "KMSInvalidMacException"})


@pytest.fixture(scope="module")
def raw(server):
    return RawClient(server)


@pytest.fixture(scope="module")
def key_id(kms):
    return kms.create_key(Description="protocol tests")["KeyMetadata"]["KeyId"]


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


# ---- positive controls ---------------------------------------------------------------------


def test_signed_raw_request_succeeds(raw, key_id):
    status, parsed, body = raw.call("ListKeys", {})
    assert status == 200, body
    assert key_id in {k["KeyId"] for k in parsed["Keys"]}
    status, parsed, body = raw.call("Encrypt", {"KeyId": key_id, "Plaintext": base64.b64encode(b"hi").decode()})
    assert status == 200, body
    status, parsed, body = raw.call("Decrypt", {"CiphertextBlob": parsed["CiphertextBlob"]})
    assert status == 200, body
    assert base64.b64decode(parsed["Plaintext"]) == b"hi"


def test_small_clock_skew_is_accepted(raw):
    status, _, body = raw.call("ListKeys", {}, when=utcnow() - datetime.timedelta(minutes=2))
    assert status == 200, f"a 2-minute-old signature must be accepted: {body!r}"


# ---- JSON protocol errors ----------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"{not json", b'{"Limit": ', b"\xff\xfe\x00", b'{"Limit": 2,}'],
                         ids=["bare-word", "truncated", "not-utf8", "trailing-comma"])
def test_malformed_json(raw, body):
    assert_error(raw.call("ListKeys", body), "SerializationException")


@pytest.mark.parametrize("body", [b"[]", b'[{"Limit": 2}]', b'"ListKeys"', b"42"],
                         ids=["empty-array", "array", "string", "number"])
def test_body_not_an_object(raw, body):
    assert_error(raw.call("ListKeys", body), "SerializationException")


@pytest.mark.parametrize(
    "operation,payload",
    [
        ("DescribeKey", {"KeyId": 5}),
        ("ListKeys", {"Limit": "two"}),
        ("ListKeys", {"Limit": 1.5}),
        ("Encrypt", {"KeyId": "KEY", "Plaintext": 123}),
        ("Encrypt", {"KeyId": "KEY", "Plaintext": "aGk=", "EncryptionContext": ["a", "b"]}),
        ("Encrypt", {"KeyId": "KEY", "Plaintext": "aGk=", "EncryptionContext": {"a": 1}}),
        ("GenerateRandom", {"NumberOfBytes": "32"}),
        ("CreateKey", {"Tags": {"TagKey": "a", "TagValue": "b"}}),
    ],
    ids=["keyid-number", "limit-string", "limit-float", "plaintext-number", "context-array",
         "context-value-number", "bytes-string", "tags-object"],
)
def test_member_of_wrong_type(raw, key_id, operation, payload):
    payload = {k: (key_id if v == "KEY" else v) for k, v in payload.items()}
    assert_error(raw.call(operation, payload), "SerializationException")


def test_unknown_operation(raw):
    assert_error(raw.call("TrentService.Nope", {}), "UnknownOperationException")


def test_body_over_one_mib(raw, key_id):
    filler = base64.b64encode(b"\0" * (1024 * 1024)).decode()  # ~1.33 MiB of JSON
    body = json.dumps({"KeyId": key_id, "Plaintext": filler}).encode()
    assert len(body) > 1024 * 1024
    headers = raw.headers("TrentService.Encrypt", body)
    # The server reads and discards a moderately oversize body before answering, so a client that writes its
    # whole body first still gets the error (not a reset connection).
    result = raw.send(body, headers, timeout=30)
    assert_error(result, "ValidationException")
    # The server is still healthy afterwards.
    assert raw.call("ListKeys", {})[0] == 200


# ---- authentication errors -------------------------------------------------------------------


def test_missing_authorization(raw):
    body = b"{}"
    headers = raw.headers("TrentService.ListKeys", body, sign=False)
    headers["X-Amz-Date"] = utcnow().strftime("%Y%m%dT%H%M%SZ")
    assert "Authorization" not in headers
    assert_error(raw.send(body, headers), "MissingAuthenticationTokenException")


def test_unknown_access_key(raw):
    assert_error(raw.call("ListKeys", {}, access_key="AKIAUNKNOWNE2E000000", secret_key="x" * 40),
                 "UnrecognizedClientException")


def test_wrong_secret(raw):
    assert_error(raw.call("ListKeys", {}, secret_key=raw.secret_key[::-1] + "x"),
                 "InvalidSignatureException")


def test_body_altered_after_signing(raw):
    signed = b'{"Limit": 5}'
    headers = raw.headers("TrentService.ListKeys", signed)
    assert_error(raw.send(b'{"Limit": 6}', headers), "InvalidSignatureException")


def test_target_altered_after_signing(raw):
    body = b"{}"
    headers = raw.headers("TrentService.ListKeys", body)
    headers["X-Amz-Target"] = "TrentService.ListAliases"
    assert_error(raw.send(body, headers), "InvalidSignatureException")


@pytest.mark.parametrize("minutes", [-10, 10, -60 * 24], ids=["10min-old", "10min-ahead", "1day-old"])
def test_stale_or_future_date(raw, minutes):
    when = utcnow() + datetime.timedelta(minutes=minutes)
    assert_error(raw.call("ListKeys", {}, when=when), "InvalidSignatureException")


@pytest.mark.parametrize(
    "authorization",
    ["garbage", "AWS4-HMAC-SHA256", "AWS4-HMAC-SHA256 Credential="],
)
def test_malformed_authorization(raw, authorization):
    body = b"{}"
    headers = raw.headers("TrentService.ListKeys", body)
    headers["Authorization"] = authorization
    assert_error(raw.send(body, headers), "IncompleteSignatureException")


def test_authorization_missing_signature(raw):
    body = b"{}"
    headers = raw.headers("TrentService.ListKeys", body)
    # Keep Credential and SignedHeaders, drop Signature.
    headers["Authorization"] = headers["Authorization"].rsplit(", Signature=", 1)[0]
    assert_error(raw.send(body, headers), "IncompleteSignatureException")


# ---- TLS ------------------------------------------------------------------------------------


def handshake(server, context: ssl.SSLContext) -> tuple[str, dict]:
    host, port = server.host_port()
    with socket.create_connection((host, port), timeout=HTTP_TIMEOUT) as sock:
        with context.wrap_socket(sock, server_hostname=host) as tls:
            return tls.version(), tls.getpeercert()


def test_tls_verifies_against_ca_pem_only(server):
    context = ssl.create_default_context(cafile=server.ca_path)  # ca.pem and nothing else
    version, cert = handshake(server, context)
    assert version in ("TLSv1.2", "TLSv1.3")
    sans = [value for kind, value in cert.get("subjectAltName", ())]
    assert "127.0.0.1" in sans, f"certificate does not name 127.0.0.1: {cert}"


def test_tls_without_ca_pem_fails(server):
    context = ssl.create_default_context()  # the system trust store only
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(server, context)


def test_tls_1_2_supported(server):
    context = ssl.create_default_context(cafile=server.ca_path)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    assert handshake(server, context)[0] == "TLSv1.2"


def test_tls_1_3_supported(server):
    context = ssl.create_default_context(cafile=server.ca_path)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    assert handshake(server, context)[0] == "TLSv1.3"


@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_tls_below_1_2_refused(server, version):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
            context.minimum_version = getattr(ssl.TLSVersion, version)
            context.maximum_version = getattr(ssl.TLSVersion, version)
        except (ValueError, ssl.SSLError) as exc:
            pytest.skip(f"this OpenSSL cannot offer {version}: {exc}")
    try:
        version_got, _ = handshake(server, context)
    except ssl.SSLError as exc:
        if "NO_PROTOCOLS_AVAILABLE" in str(exc).upper():
            pytest.skip(f"this OpenSSL cannot offer {version}: {exc}")
        return  # refused by the server
    except (ConnectionResetError, BrokenPipeError, EOFError):
        return  # refused by the server
    pytest.fail(f"server accepted a {version_got} handshake")
