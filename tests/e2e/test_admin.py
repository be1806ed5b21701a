"""`kms-host admin` end to end: the principals admin API from the command line, against `kms-host dev`, with the
endpoint, CA and credentials resolved from the data directory, the standard AWS environment or flags."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from kmstest import DEFAULT_ACCOUNT, assert_client_error, read_credentials, scrub_aws_environment, unique

CLI_TIMEOUT = 60


def run_admin(server, host_bin, *args, env: dict | None = None, data_dir: bool = True, home: Path | None = None):
    """Run `kms-host admin [--data-dir DIR] ARGS`; returns (exit code, stdout, stderr)."""
    cmd = [str(host_bin), "admin"]
    if data_dir:
        cmd += ["--data-dir", str(server.data_dir)]
    cmd += [str(a) for a in args]
    full_env = scrub_aws_environment(os.environ)
    # No ~/.aws of the machine running the tests: the data directory's files are the fallback under test.
    full_env["HOME"] = str(home or server.data_dir / "no-home")
    full_env.update(env or {})
    proc = subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=CLI_TIMEOUT,
                          stdin=subprocess.DEVNULL)
    return proc.returncode, proc.stdout, proc.stderr


def admin_ok(server, host_bin, *args, **kw) -> dict:
    code, out, err = run_admin(server, host_bin, *args, **kw)
    assert code == 0, f"kms-host admin {' '.join(map(str, args))} exited {code}: {err}"
    return json.loads(out)


def admin_error(server, host_bin, error_type: str, *args, **kw) -> str:
    code, out, err = run_admin(server, host_bin, *args, **kw)
    assert code == 1, f"expected exit 1, got {code}: {out} {err}"
    assert out == "", f"nothing on stdout on error: {out!r}"
    assert err.startswith(f"error: {error_type}: "), err
    return err


def kms_client(server, akid: str, secret: str):
    session = boto3.Session(aws_access_key_id=akid, aws_secret_access_key=secret, region_name=server.region)
    return session.client("kms", endpoint_url=server.env_file["AWS_ENDPOINT_URL_KMS"], verify=server.ca_path,
                          config=Config(retries={"total_max_attempts": 1}))


def user(name: str) -> str:
    return f"arn:aws:iam::{DEFAULT_ACCOUNT}:user/{name}"


def test_whoami_from_the_data_directory(server, host_bin):
    me = admin_ok(server, host_bin, "whoami")
    akid, _ = server.credentials()
    assert me.pop("UserId").startswith("AIDA")
    assert me == {"Arn": user("admin"), "Account": DEFAULT_ACCOUNT, "AccessKeyId": akid, "Admin": True}


def test_principal_lifecycle_with_credentials_out(server, host_bin, tmp_path):
    arn = user(unique("cli"))
    created = admin_ok(server, host_bin, "create-principal", arn)["Principal"]
    assert created["PrincipalArn"] == arn and created["Admin"] is False and created["CreationDate"] > 0

    out = tmp_path / "alice-credentials"
    key = admin_ok(server, host_bin, "create-access-key", arn, "--credentials-out", out)["AccessKey"]
    assert key["PrincipalArn"] == arn and key["AccessKeyId"].startswith("AKIA")
    assert "SecretAccessKey" not in key, "the secret goes to the file only"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    akid, secret = read_credentials(out)
    assert akid == key["AccessKeyId"] and len(secret) == 40

    # The new key works: whoami through the CLI with the written file as the shared-credentials file...
    me = admin_ok(server, host_bin, "whoami", env={"AWS_SHARED_CREDENTIALS_FILE": str(out)})
    assert me.pop("UserId") == created["PrincipalId"]
    assert me == {"Arn": arn, "Account": DEFAULT_ACCOUNT, "AccessKeyId": akid, "Admin": False}
    # ... and a KMS call with boto3, once an identity policy allows it (the default key policy delegates to it).
    alice = kms_client(server, akid, secret)
    assert_client_error("AccessDeniedException", alice.create_key, Description="no identity policy yet")
    policy_file = tmp_path / "identity.json"
    policy_file.write_text('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}')
    assert admin_ok(server, host_bin, "put-principal-policy", arn, "--policy-file", policy_file) == {}
    key_id = alice.create_key(Description="admin cli e2e")["KeyMetadata"]["KeyId"]
    blob = alice.encrypt(KeyId=key_id, Plaintext=b"hello")["CiphertextBlob"]
    assert alice.decrypt(CiphertextBlob=blob)["Plaintext"] == b"hello"

    listed = {p["PrincipalArn"]: p for p in admin_ok(server, host_bin, "list-principals")["Principals"]}
    assert listed[arn]["AccessKeyIds"] == [akid] and listed[arn]["Admin"] is False
    assert listed[user("admin")]["Admin"] is True

    # A non-admin gets AccessDeniedException (exit 1).
    admin_error(server, host_bin, "AccessDeniedException", "list-principals",
                env={"AWS_ACCESS_KEY_ID": akid, "AWS_SECRET_ACCESS_KEY": secret})

    assert admin_ok(server, host_bin, "delete-principal", arn) == {}
    assert_client_error("UnrecognizedClientException", alice.encrypt, KeyId=key_id, Plaintext=b"x")
    admin_error(server, host_bin, "NotFoundException", "delete-principal", arn)


def test_access_keys_and_admins(server, host_bin):
    arn = f"arn:aws:iam::{DEFAULT_ACCOUNT}:role/ops/{unique('r')}"
    assert admin_ok(server, host_bin, "create-principal", arn, "--admin")["Principal"]["Admin"] is True
    key = admin_ok(server, host_bin, "create-access-key", arn)["AccessKey"]
    assert len(key["SecretAccessKey"]) == 40, "printed when no --credentials-out"
    env = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
    # The environment's key wins over DIR/credentials; another admin can administer.
    assert admin_ok(server, host_bin, "whoami", env=env)["Arn"] == arn
    assert any(p["PrincipalArn"] == arn for p in admin_ok(server, host_bin, "list-principals", env=env)["Principals"])
    assert admin_ok(server, host_bin, "delete-access-key", key["AccessKeyId"]) == {}
    admin_error(server, host_bin, "UnrecognizedClientException", "whoami", env=env)
    admin_error(server, host_bin, "NotFoundException", "delete-access-key", key["AccessKeyId"])
    admin_ok(server, host_bin, "delete-principal", arn)


def test_errors(server, host_bin):
    arn = user(unique("dup"))
    admin_ok(server, host_bin, "create-principal", arn)
    admin_error(server, host_bin, "AlreadyExistsException", "create-principal", arn)
    for bad in ["alice", f"arn:aws:iam::{DEFAULT_ACCOUNT}:group/x", "arn:aws:iam::12345:user/x"]:
        admin_error(server, host_bin, "ValidationException", "create-principal", bad)
    ghost = user(unique("ghost"))
    admin_error(server, host_bin, "NotFoundException", "create-access-key", ghost)
    admin_error(server, host_bin, "NotFoundException", "delete-principal", ghost)
    admin_error(server, host_bin, "ValidationException", "delete-principal", user("admin"))
    # Usage errors are clap's (exit 2); no endpoint at all is a local error (exit 1).
    code, _, err = run_admin(server, host_bin, "create-principal")
    assert code == 2, err
    code, _, err = run_admin(server, host_bin, "whoami", data_dir=False)
    assert code == 1 and err.startswith("error: no endpoint"), err


def test_flags_and_environment_instead_of_the_data_directory(server, host_bin, tmp_path):
    akid, secret = server.credentials()
    env = {"AWS_ENDPOINT_URL_KMS": server.env_file["AWS_ENDPOINT_URL_KMS"], "AWS_CA_BUNDLE": server.ca_path,
           "AWS_SHARED_CREDENTIALS_FILE": server.credentials_path, "AWS_DEFAULT_REGION": server.region}
    assert admin_ok(server, host_bin, "whoami", env=env, data_dir=False)["AccessKeyId"] == akid
    flags = ["--endpoint", server.env_file["AWS_ENDPOINT_URL_KMS"], "--ca", server.ca_path, "--region", server.region]
    creds = {"AWS_ACCESS_KEY_ID": akid, "AWS_SECRET_ACCESS_KEY": secret}
    assert admin_ok(server, host_bin, *flags, "whoami", env=creds, data_dir=False)["Arn"] == user("admin")
    # A wrong region is refused by the service's SigV4 check.
    code, _, err = run_admin(server, host_bin, "--region", "eu-west-1", "whoami")
    assert code == 1 and err.startswith("error: "), err
    # A CA that is not the service's fails the TLS handshake, as a local error.
    other = tmp_path / "other-ca.pem"
    other.write_text(Path(server.data_dir / "sim-root.pem").read_text())
    code, _, err = run_admin(server, host_bin, "--ca", other, "whoami")
    assert code == 1 and err.startswith("error: "), err
