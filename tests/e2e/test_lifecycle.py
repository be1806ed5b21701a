"""Data dir layout, restart persistence and clean shutdown of kms-host dev."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest

from kmstest import (
    assert_client_error,
    descendants,
    pid_alive,
    read_credentials,
    unique,
    wait_until,
)

ENV_NAMES = {"AWS_ENDPOINT_URL_KMS", "AWS_CA_BUNDLE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_DEFAULT_REGION"}


def test_data_dir_layout(fresh_server):
    d = fresh_server.data_dir
    for name in ("ca.pem", "credentials", "env", "kms.sqlite3"):
        assert (d / name).is_file(), f"{d / name} missing after ready; dir holds {sorted(p.name for p in d.iterdir())}"

    env = fresh_server.env_file
    assert ENV_NAMES <= set(env), f"DIR/env exports {sorted(env)}, expected at least {sorted(ENV_NAMES)}"
    for line in (d / "env").read_text().splitlines():
        assert not line.strip() or line.startswith("export "), f"unexpected line in DIR/env: {line!r}"
    assert env["AWS_ENDPOINT_URL_KMS"] == fresh_server.endpoint
    host, port = fresh_server.host_port()
    assert host == "127.0.0.1" and port != 0, fresh_server.endpoint
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"
    for name, file in (("AWS_CA_BUNDLE", "ca.pem"), ("AWS_SHARED_CREDENTIALS_FILE", "credentials")):
        path = Path(env[name])
        assert path.is_absolute(), f"{name}={env[name]} is not absolute"
        assert path.resolve() == (d / file).resolve(), f"{name}={env[name]}, expected {d / file}"

    assert (d / "ca.pem").read_text().lstrip().startswith("-----BEGIN CERTIFICATE-----")
    access_key, secret_key = read_credentials(d / "credentials")
    assert access_key and secret_key, "empty credentials"
    assert secret_key not in (d / "env").read_text(), "DIR/env must not carry the secret key"


def test_restart_preserves_keys_aliases_credentials(fresh_server):
    srv = fresh_server
    d = srv.data_dir
    kms = srv.client()
    key = kms.create_key(Description="survives restart")["KeyMetadata"]
    other = kms.create_key(Description="also survives")["KeyMetadata"]
    alias = unique("alias/restart")
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    context = {"purpose": "restart", "n": "1"}
    blob = kms.encrypt(KeyId=alias, Plaintext=b"made before restart", EncryptionContext=context)["CiphertextBlob"]
    plain_blob = kms.encrypt(KeyId=other["Arn"], Plaintext=b"no context")["CiphertextBlob"]
    data_key = kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256", EncryptionContext=context)
    ca_before = (d / "ca.pem").read_bytes()
    creds_before = (d / "credentials").read_bytes()

    srv.restart()

    assert (d / "ca.pem").read_bytes() == ca_before, "ca.pem changed across restart"
    assert (d / "credentials").read_bytes() == creds_before, "credentials changed across restart"
    kms = srv.client()  # the port is new; ca.pem and credentials are the old ones
    meta = kms.describe_key(KeyId=alias)["KeyMetadata"]
    assert meta["KeyId"] == key["KeyId"]
    assert meta["Description"] == "survives restart"
    assert meta["CreationDate"] == key["CreationDate"]
    listed = {k["KeyId"] for k in kms.list_keys(Limit=1000)["Keys"]}
    assert {key["KeyId"], other["KeyId"]} <= listed
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases(Limit=100)["Aliases"]}
    assert aliases.get(alias) == key["KeyId"]

    resp = kms.decrypt(CiphertextBlob=blob, EncryptionContext=context)
    assert resp["Plaintext"] == b"made before restart"
    assert resp["KeyId"] == key["Arn"]
    assert kms.decrypt(CiphertextBlob=plain_blob)["Plaintext"] == b"no context"
    assert kms.decrypt(CiphertextBlob=data_key["CiphertextBlob"],
                       EncryptionContext=context)["Plaintext"] == data_key["Plaintext"]
    assert_client_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=blob)
    assert_client_error("AlreadyExistsException", kms.create_alias, AliasName=alias,
                        TargetKeyId=other["KeyId"])

    # New work after the restart, and once more across a second restart.
    blob2 = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"after restart")["CiphertextBlob"]
    srv.restart()
    kms = srv.client()
    assert kms.decrypt(CiphertextBlob=blob2)["Plaintext"] == b"after restart"
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=context)["Plaintext"] == b"made before restart"
    assert (d / "ca.pem").read_bytes() == ca_before


def test_cli_works_after_restart(fresh_server):
    key_id = fresh_server.aws_ok("create-key")["KeyMetadata"]["KeyId"]
    fresh_server.restart()
    out = fresh_server.aws_ok("describe-key", "--key-id", key_id)
    assert out["KeyMetadata"]["KeyId"] == key_id


def enclave_children(srv) -> list[tuple[int, str]]:
    found = []

    def look():
        found[:] = descendants(srv.pid)
        return any("kms-enclave" in cmd for _, cmd in found)

    assert wait_until(look, 5.0), f"no kms-enclave process under kms-host (pid {srv.pid}): {found}"
    return list(found)


def refuses_connections(srv) -> bool:
    host, port = srv.host_port()
    try:
        with socket.create_connection((host, port), timeout=2):
            return False
    except OSError:
        return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_exits_zero_and_stops_enclave(fresh_server, sig):
    srv = fresh_server
    srv.client().create_key()  # the enclave has done real work
    children = enclave_children(srv)
    srv.stop(sig)  # asserts exit code 0 within 20 s
    gone = wait_until(lambda: not any(pid_alive(pid) for pid, _ in children), 10.0)
    leftovers = [(pid, cmd) for pid, cmd in children if pid_alive(pid)]
    for pid, _ in leftovers:  # don't leave them running for the rest of the suite
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert gone, f"processes left behind after {sig.name}: {leftovers}"
    assert refuses_connections(srv), "the port still accepts connections after shutdown"


def test_enclave_log_lines_are_forwarded(fresh_server):
    srv = fresh_server
    kms = srv.client()
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.encrypt(KeyId=key_id, Plaintext=b"log me not")

    def forwarded():
        return any(line.startswith("enclave: ") for line in srv.stderr_text.splitlines())

    assert wait_until(forwarded, 5.0), (
        f"no `enclave: ` line on the host's stderr:\n{srv.stderr_text[-3000:]}"
    )
