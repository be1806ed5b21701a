"""Secret scan: no plaintext key material or admin secret in the data dir or the logs."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kmstest import KmsServer, unique
from test_net_hardening import read_responses, tls_socket

CREDENTIALS_FILE = "credentials"  # legitimately holds the admin secret


def needle_forms(secret: bytes) -> list[tuple[str, bytes]]:
    """The encodings a leak would most likely take."""
    forms = [
        ("raw", secret),
        ("base64", base64.b64encode(secret)),
        ("base64url", base64.urlsafe_b64encode(secret).rstrip(b"=")),
        ("hex", secret.hex().encode()),
        ("HEX", secret.hex().upper().encode()),
    ]
    if len(secret) >= 32:  # a partial leak of either half (16+ random bytes) counts too
        half = len(secret) // 2
        forms += [("raw-first-half", secret[:half]), ("raw-second-half", secret[half:])]
    return forms


def read_tree(root: Path, exclude=(CREDENTIALS_FILE,)) -> dict[str, bytes]:
    """Every regular file under root (recursively) as bytes, by relative path."""
    files = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel in exclude or not path.is_file():
            continue
        try:
            files[rel] = path.read_bytes()
        except FileNotFoundError:  # e.g. a -shm/-wal file removed while we walk
            continue
    return files


def scan(blobs: dict[str, bytes], secrets: list[tuple[str, bytes]]) -> list[str]:
    """Where any form of any secret occurs: ['label (form) in name', ...]."""
    hits = []
    for label, secret in secrets:
        for form, needle in needle_forms(secret):
            for name, data in blobs.items():
                if needle in data:
                    hits.append(f"{label} ({form}) in {name}")
    return hits


@dataclass
class Exercised:
    server: KmsServer
    secrets: list = field(default_factory=list)  # (label, bytes)
    files_running: dict = field(default_factory=dict)
    files_stopped: dict = field(default_factory=dict)
    log: bytes = b""
    access_key: str = ""
    secret_key: str = ""


@pytest.fixture(scope="module", params=["text", "json"], ids=["text-logs", "json-logs"])
def exercised(request, tmp_path_factory, host_bin):
    # Debug logging on: a leak behind a debug! line still counts. JSON logs add one `request` event per request.
    srv = KmsServer(tmp_path_factory.mktemp("kms-secrets"), binary=host_bin, extra_env={"RUST_LOG": "debug"},
                    extra_args=("--log-format", request.param))
    srv.start()
    try:
        kms = srv.client()
        key = kms.create_key(Description="secret scan")["KeyMetadata"]
        alias = unique("alias/secrets")
        kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
        result = Exercised(server=srv)
        for i in range(50):
            context = {"i": str(i)} if i % 2 else {}
            resp = kms.generate_data_key(KeyId=key["KeyId"] if i % 3 else alias, KeySpec="AES_256",
                                         EncryptionContext=context)
            result.secrets.append((f"data key #{i}", resp["Plaintext"]))
            if i % 5 == 0:
                assert kms.decrypt(CiphertextBlob=resp["CiphertextBlob"],
                                   EncryptionContext=context)["Plaintext"] == resp["Plaintext"]
        for i in range(10):
            resp = kms.generate_data_key(KeyId=key["Arn"], NumberOfBytes=64)
            result.secrets.append((f"64-byte data key #{i}", resp["Plaintext"]))
        for i in range(10):
            resp = kms.generate_data_key_without_plaintext(KeyId=key["KeyId"], KeySpec="AES_256")
            plaintext = kms.decrypt(CiphertextBlob=resp["CiphertextBlob"])["Plaintext"]
            result.secrets.append((f"data key without plaintext #{i}", plaintext))
        for i in range(20):
            plaintext = os.urandom(64)
            blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=plaintext,
                               EncryptionContext={"doc": str(i)})["CiphertextBlob"]
            assert kms.decrypt(CiphertextBlob=blob, EncryptionContext={"doc": str(i)})["Plaintext"] == plaintext
            result.secrets.append((f"encrypted plaintext #{i}", plaintext))
        for i in range(10):
            result.secrets.append((f"random #{i}", kms.generate_random(NumberOfBytes=32)["Plaintext"]))
        # A head refused by the framing guard (logged with its reason) must not carry its header values to the log.
        planted = os.urandom(32)
        with tls_socket(srv) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: h\r\nX-Leak: " + planted.hex().encode() + b"\0\r\n\r\n")
            assert read_responses(sock)[0][0] == 400
        result.secrets.append(("header value of a refused head", planted))
        # A principal authorized by an identity policy (and its unique id bound into a key policy): neither its
        # secret access key nor what it decrypts may show up anywhere.
        from test_access import call_ok, make_principal, policy
        from test_protocol import RawClient
        raw = RawClient(srv)
        account = call_ok(raw, "EnclaveKms.GetCallerIdentity", {})["Account"]
        app = make_principal(raw, srv, f"arn:aws:iam::{account}:role/{unique('app')}", identity={
            "Statement": [{"Effect": "Allow", "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": "*"}]})
        result.secrets.append(("identity-policy principal's secret access key", app.secret.encode()))
        bound = kms.create_key(Policy=policy(
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:user/admin"}, "Action": "kms:*",
             "Resource": "*"},
            {"Effect": "Allow", "Principal": {"AWS": app.arn}, "Action": "kms:Decrypt", "Resource": "*"}))
        resp = app.kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256")
        result.secrets.append(("data key by identity policy", resp["Plaintext"]))
        plaintext = os.urandom(48)
        blob = kms.encrypt(KeyId=bound["KeyMetadata"]["KeyId"], Plaintext=plaintext)["CiphertextBlob"]
        assert app.kms.decrypt(CiphertextBlob=blob)["Plaintext"] == plaintext
        result.secrets.append(("plaintext decrypted through a bound key policy", plaintext))

        result.access_key, result.secret_key = srv.credentials()
        result.files_running = read_tree(srv.data_dir)
        srv.stop()
        result.files_stopped = read_tree(srv.data_dir)
        result.log = srv.log_bytes
        yield result
    finally:
        srv.close()


def test_store_exists_and_is_scanned(exercised):
    for files in (exercised.files_running, exercised.files_stopped):
        assert files.get("kms.sqlite3"), f"kms.sqlite3 missing or empty; scanned {sorted(files)}"
        assert CREDENTIALS_FILE not in files
        assert files.get("env"), f"the env file is not scanned; scanned {sorted(files)}"
    assert len(exercised.secrets) == 104


def test_no_key_material_in_data_dir_while_running(exercised):
    hits = scan(exercised.files_running, exercised.secrets)
    assert not hits, "plaintext found in the data dir (while running):\n" + "\n".join(hits[:50])


def test_no_key_material_in_data_dir_after_stop(exercised):
    hits = scan(exercised.files_stopped, exercised.secrets)
    assert not hits, "plaintext found in the data dir (after stop):\n" + "\n".join(hits[:50])


def test_no_key_material_in_logs(exercised):
    assert exercised.log, "nothing was captured from the host"
    hits = scan({"host stdout+stderr": exercised.log}, exercised.secrets)
    assert not hits, "plaintext found in the logs:\n" + "\n".join(hits[:50])


def test_admin_secret_not_in_store_or_logs(exercised):
    secret = [("admin secret access key", exercised.secret_key.encode())]
    blobs = {**{f"running:{k}": v for k, v in exercised.files_running.items()},
             **{f"stopped:{k}": v for k, v in exercised.files_stopped.items()},
             "host stdout+stderr": exercised.log}
    hits = scan(blobs, secret)
    assert not hits, "admin secret found:\n" + "\n".join(hits)


# ---- positive controls: the scan can fail ------------------------------------------------------


def test_control_scan_finds_planted_value(exercised):
    label, secret = exercised.secrets[0]
    planted = exercised.server.data_dir / "planted-by-test.bin"
    planted.write_bytes(os.urandom(100) + secret.hex().encode() + os.urandom(100))
    try:
        hits = scan(read_tree(exercised.server.data_dir), exercised.secrets)
    finally:
        planted.unlink()
    assert hits == [f"{label} (hex) in planted-by-test.bin"], hits


def test_control_scan_finds_admin_secret_in_credentials_file(exercised):
    creds = read_tree(exercised.server.data_dir, exclude=())
    hits = scan({CREDENTIALS_FILE: creds[CREDENTIALS_FILE]}, [("admin secret", exercised.secret_key.encode())])
    assert "admin secret (raw) in credentials" in hits, hits


def test_control_json_logs_carry_request_events(exercised):
    if "--log-format json" not in " ".join(exercised.server.extra_args):
        pytest.skip("text logs: request events are off by default")
    events = [json.loads(line) for line in exercised.log.decode().splitlines() if line.startswith("{")]
    requests = [e for e in events if e.get("target") == "request"]
    assert len(requests) >= 100, len(requests)  # the scan above covers them


def test_control_scan_reads_logs(exercised):
    endpoint = exercised.server.endpoint.encode()
    assert scan({"log": exercised.log}, [("endpoint", endpoint)]), "the captured log lacks the ready line"
