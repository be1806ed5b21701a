"""The `upstream` domain-key source end to end, in simulator mode with real binaries: the upstream is a second
`kms-host dev` whose key policy releases the data key only to a Recipient document with the downstream's PCR0; the
downstream (`--domain-key upstream`, sharing the upstream's simulator PKI through `--sim-pki`) initialises, serves,
restarts; a changed enclave binary, a foreign envelope, an untrusted upstream certificate, an unreachable upstream and
a missing envelope without --init are all refused with one line naming the cause; nothing secret lands on the host."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from kmstest import DEFAULT_ACCOUNT, KmsServer, read_credentials, scrub_aws_environment
from test_secrets import needle_forms, read_tree

TIMEOUT = 120
UPSTREAM_ENVELOPE = 10


def run_host(host_bin, *args, env: dict | None = None, timeout: float = TIMEOUT):
    full_env = scrub_aws_environment(os.environ)
    full_env.update(env or {})
    return subprocess.run([str(host_bin), *map(str, args)], env=full_env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def host_ok(host_bin, *args, **kw) -> str:
    proc = run_host(host_bin, *args, **kw)
    assert proc.returncode == 0, f"kms-host {args[:2]} failed: {proc.stderr[-2000:]}"
    return proc.stdout


def start_fails(host_bin, data_dir: Path, *args) -> str:
    proc = run_host(host_bin, "dev", "--data-dir", data_dir, "--listen", "127.0.0.1:0", *args)
    assert proc.returncode != 0, f"start succeeded:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    assert "ready:" not in proc.stdout, proc.stdout
    return proc.stderr.strip().splitlines()[-1]


def client_for(server: KmsServer, akid: str, secret: str):
    session = boto3.Session(aws_access_key_id=akid, aws_secret_access_key=secret, region_name=server.region)
    return session.client("kms", endpoint_url=server.endpoint, verify=server.ca_path,
                          config=Config(retries={"total_max_attempts": 1}, read_timeout=60))


class Upstream:
    def __init__(self, server: KmsServer, key_arn: str, creds: Path, pcrs: dict):
        self.server, self.key_arn, self.creds, self.pcrs = server, key_arn, creds, pcrs

    def args(self, key_arn: str | None = None, ca: Path | None = None, endpoint: str | None = None) -> list:
        d = self.server.data_dir
        return ["--domain-key", "upstream", "--upstream-endpoint", endpoint or self.server.endpoint,
                "--upstream-key-id", key_arn or self.key_arn, "--upstream-ca", ca or d / "ca.pem",
                "--upstream-credentials", self.creds, "--sim-pki", d / "sim-pki.pem"]


@pytest.fixture(scope="module")
def upstream(tmp_path_factory, host_bin):
    root = tmp_path_factory.mktemp("upstream")
    srv = KmsServer(root / "data", binary=host_bin).start()
    try:
        arn = f"arn:aws:iam::{DEFAULT_ACCOUNT}:user/downstream"
        host_ok(host_bin, "admin", "--data-dir", srv.data_dir, "create-principal", arn,
                env={"HOME": str(root / "no-home")})
        creds = root / "downstream-credentials"
        host_ok(host_bin, "admin", "--data-dir", srv.data_dir, "create-access-key", arn, "--credentials-out", creds,
                env={"HOME": str(root / "no-home")})
        pcrs = json.loads((srv.data_dir / "pcrs.json").read_text())
        admin = f"arn:aws:iam::{DEFAULT_ACCOUNT}:user/admin"
        policy = {"Version": "2012-10-17", "Statement": [
            {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": admin}, "Resource": "*",
             "NotAction": ["kms:Decrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*", "kms:Encrypt",
                           "kms:DeriveSharedSecret"]},
            {"Sid": "EnclaveOnly", "Effect": "Allow", "Principal": {"AWS": arn}, "Resource": "*",
             "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
             "Condition": {"StringEqualsIgnoreCase": {"kms:RecipientAttestation:ImageSha384": pcrs["0"]}}}]}
        key = srv.client().create_key(Description="enclave-kms domain keys", Policy=json.dumps(policy))
        yield Upstream(srv, key["KeyMetadata"]["Arn"], creds, pcrs)
    finally:
        srv.close()


@pytest.fixture(scope="module")
def admin_keys(tmp_path_factory, host_bin) -> Path:
    d = tmp_path_factory.mktemp("admin-key")
    host_ok(host_bin, "quorum", "keygen", "--out-dir", d)
    return d


def init_downstream(tmp_path, host_bin, upstream, admin_keys, name="down") -> KmsServer:
    srv = KmsServer(tmp_path / name, binary=host_bin,
                    extra_args=[*upstream.args(), "--admin-public-key", admin_keys / "public.pem", "--init"])
    return srv.start()


def test_initialise_serve_restart(tmp_path, host_bin, upstream, admin_keys):
    down = init_downstream(tmp_path, host_bin, upstream, admin_keys)
    try:
        data = down.data_dir
        assert not (data / "credentials").exists(), "the admin secret was handed to the host"
        assert (data / "bootstrap.enc").is_file()
        digest = next(l.split()[-1] for l in down.stdout_text.splitlines() if l.startswith("settings digest: "))
        expected = json.loads(host_ok(host_bin, "custody", "digest", "--domain-key", "upstream", "--upstream-key-id",
                                      upstream.key_arn, "--admin-public-key", admin_keys / "public.pem"))
        assert expected["settings_digest"] == digest

        creds = tmp_path / "admin-creds"
        host_ok(host_bin, "admin", "open-bootstrap", "--data-dir", data, "--private-key",
                admin_keys / "private.pem", "--credentials-out", creds)
        akid, secret = read_credentials(creds)
        kms = client_for(down, akid, secret)
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        blob = kms.encrypt(KeyId=key_id, Plaintext=b"kept across restarts")["CiphertextBlob"]
        dk = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
        data_key = dk["Plaintext"]

        # Restart without --init: the envelope is decrypted at the upstream again.
        down.extra_args = [a for a in down.extra_args if a != "--init"]
        down.restart()
        kms = client_for(down, akid, secret)
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"kept across restarts"
        assert kms.decrypt(CiphertextBlob=dk["CiphertextBlob"])["Plaintext"] == data_key

        # The domain key, as the upstream releases it to an attested Recipient (the test holds the simulator PKI,
        # as any simulator user does): it must not appear on the host, nor the admin secret or the data key.
        rsa = tmp_path / "rsa"
        host_ok(host_bin, "sim", "keygen", "--alg", "rsa2048", "--out-dir", rsa)
        doc = tmp_path / "doc.cbor"
        host_ok(host_bin, "sim", "attest", "--data-dir", upstream.server.data_dir, "--public-key", rsa / "public.der",
                "--out", doc)
        db = sqlite3.connect(data / "kms.sqlite3")
        envelope = db.execute("SELECT blob FROM records WHERE kind = ?", (UPSTREAM_ENVELOPE,)).fetchone()[0]
        db.close()
        up_akid, up_secret = read_credentials(upstream.creds)
        ans = client_for(upstream.server, up_akid, up_secret).decrypt(
            CiphertextBlob=envelope, KeyId=upstream.key_arn,
            EncryptionContext={"enclave-kms:purpose": "domain-key"},
            Recipient={"KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256", "AttestationDocument": doc.read_bytes()})
        ct = tmp_path / "ct"
        ct.write_bytes(ans["CiphertextForRecipient"])
        host_ok(host_bin, "sim", "open-recipient", "--private-key", rsa / "private.pem", "--in", ct,
                "--out", tmp_path / "dk")
        domain_key = (tmp_path / "dk").read_bytes()
        assert len(domain_key) == 32
        down.stop()
        files = read_tree(data, exclude=())
        logs = down.log_bytes
        for label, secret_bytes in (("domain key", domain_key), ("data key", data_key),
                                    ("admin secret", secret.encode())):
            for form, needle in needle_forms(secret_bytes):
                for rel, content in files.items():
                    assert needle not in content, f"{label} ({form}) in {rel}"
                assert needle not in logs, f"{label} ({form}) in the logs"
    finally:
        down.close()


def test_no_envelope_without_init_is_refused(tmp_path, host_bin, upstream):
    line = start_fails(host_bin, tmp_path / "empty", *upstream.args())
    assert "no domain key" in line and "UpstreamEnvelope" in line and "--init" in line, line


def test_another_enclave_image_is_refused_by_the_upstream(tmp_path, host_bin, upstream, admin_keys):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    changed = bin_dir / "kms-enclave"
    shutil.copy2(Path(host_bin).with_name("kms-enclave"), changed)
    with open(changed, "ab") as f:
        f.write(b"another image")
    line = start_fails(host_bin, tmp_path / "changed", *upstream.args(), "--admin-public-key",
                       admin_keys / "public.pem", "--init", "--enclave-bin", changed)
    assert "AccessDeniedException" in line and "GenerateDataKey" in line, line


def test_a_foreign_envelope_is_refused(tmp_path, host_bin, upstream, admin_keys):
    one = init_downstream(tmp_path, host_bin, upstream, admin_keys, "one")
    one.stop()
    one.close()
    two = init_downstream(tmp_path, host_bin, upstream, admin_keys, "two")
    two.stop()
    two.close()
    db = sqlite3.connect(two.data_dir / "kms.sqlite3")
    foreign = db.execute("SELECT blob FROM records WHERE kind = ?", (UPSTREAM_ENVELOPE,)).fetchone()[0]
    db.close()
    db = sqlite3.connect(one.data_dir / "kms.sqlite3")
    db.execute("UPDATE records SET blob = ? WHERE kind = ?", (foreign, UPSTREAM_ENVELOPE))
    db.commit()
    db.close()
    line = start_fails(host_bin, one.data_dir, *upstream.args())
    assert "domain-key check failed" in line, line


def test_an_untrusted_upstream_certificate_is_refused(tmp_path, host_bin, upstream, admin_keys):
    other = KmsServer(tmp_path / "other-ca", binary=host_bin).start()
    other.stop()
    other.close()
    line = start_fails(host_bin, tmp_path / "down", *upstream.args(ca=other.data_dir / "ca.pem"),
                       "--admin-public-key", admin_keys / "public.pem", "--init")
    assert "TLS" in line and "certificate" in line.lower(), line
    assert not (tmp_path / "down" / "bootstrap.enc").exists()


def test_unreachable_upstream_and_bad_ca_file(tmp_path, host_bin, upstream, admin_keys):
    line = start_fails(host_bin, tmp_path / "down", *upstream.args(endpoint="https://127.0.0.1:1"),
                       "--admin-public-key", admin_keys / "public.pem", "--init")
    assert line.startswith("kms-host: the enclave refused to start: upstream:") and "127.0.0.1:1" in line, line
    bad = tmp_path / "bad-ca.pem"
    bad.write_text("not a certificate")
    line = start_fails(host_bin, tmp_path / "down", *upstream.args(ca=bad), "--admin-public-key",
                       admin_keys / "public.pem", "--init")
    assert "--upstream-ca" in line, line
