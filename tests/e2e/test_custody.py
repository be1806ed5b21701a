"""Custody framework end to end (local source, simulator mode): explicit initialisation, resumable initialisation
(issue 12 item 17), records required once initialised (item 19), the admin bootstrap sealed to an admin public key
(`kms-host admin open-bootstrap`), the settings digest (`custody digest`, `verify-endpoint --expected-settings-digest`)
and clear errors for bad custody flags."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest

from kmstest import KmsServer, read_credentials, scrub_aws_environment

TIMEOUT = 90
# Record kinds (shared/src/storage.rs).
PRINCIPAL, CREDENTIAL, TLS_ISSUER, CUSTODY, SIM_DOMAIN_KEY = 8, 4, 5, 9, 1


def run_host(host_bin, *args, env: dict | None = None, timeout: float = TIMEOUT):
    full_env = scrub_aws_environment(os.environ)
    full_env.update(env or {})
    return subprocess.run([str(host_bin), *map(str, args)], env=full_env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def start_fails(host_bin, data_dir: Path, *args, env: dict | None = None) -> str:
    """A `kms-host dev` start that must exit non-zero without serving; returns its last stderr line."""
    proc = run_host(host_bin, "dev", "--data-dir", data_dir, "--listen", "127.0.0.1:0", *args, env=env)
    assert proc.returncode != 0, f"start succeeded:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    assert "ready:" not in proc.stdout, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert lines, "no error line"
    return lines[-1]


def delete_rows(data_dir: Path, kind: int) -> int:
    db = sqlite3.connect(data_dir / "kms.sqlite3")
    try:
        n = db.execute("DELETE FROM records WHERE kind = ?", (kind,)).rowcount
        db.commit()
    finally:
        db.close()
    return n


def logged_bootstrap_key(text: str) -> str:
    """The access key id the enclave prepared at initialisation (logged; ids are not secret)."""
    m = re.search(r"domain key created; initialising.*?access_key_id=(AKIA[A-Z2-7]{16})", text)
    assert m, f"no initialisation line in the log:\n{text[-3000:]}"
    return m.group(1)


def admin_whoami(host_bin, server: KmsServer, creds: Path) -> dict:
    proc = run_host(host_bin, "admin", "--data-dir", server.data_dir, "whoami",
                    env={"AWS_SHARED_CREDENTIALS_FILE": str(creds), "HOME": str(server.data_dir / "no-home")})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def keys(tmp_path, host_bin) -> dict:
    out = {}
    for name in ("admin", "other"):
        d = tmp_path / f"key-{name}"
        proc = run_host(host_bin, "quorum", "keygen", "--out-dir", d)
        assert proc.returncode == 0, proc.stderr
        assert stat.S_IMODE((d / "private.pem").stat().st_mode) == 0o600
        assert "BEGIN PUBLIC KEY" in (d / "public.pem").read_text()
        out[name] = d
    return out


def make_store(data: Path, rows=()) -> None:
    """A store file as `kms-host` makes it, holding `rows` of (kind, id, version, blob)."""
    data.mkdir(exist_ok=True)
    db = sqlite3.connect(data / "kms.sqlite3")
    db.execute("CREATE TABLE records (kind INTEGER NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, "
               "blob BLOB NOT NULL, PRIMARY KEY (kind, id)) WITHOUT ROWID")
    db.executemany("INSERT INTO records VALUES (?, ?, ?, ?)", rows)
    db.commit()
    db.close()


def test_existing_store_without_a_domain_key_needs_init(tmp_path, host_bin):
    # A store with records but no domain key: never initialised afresh without --init, even in local mode.
    data = tmp_path / "data"
    make_store(data, [(PRINCIPAL, "arn:aws:iam::000000000000:user/admin", 1, b"\x01" + bytes(80))])
    line = start_fails(host_bin, data)
    assert "no domain key" in line and "SimDomainKey" in line and "--init" in line, line
    # Emptied again, it is a fresh directory: local mode initialises it (with --init or without).
    assert delete_rows(data, PRINCIPAL) == 1
    srv = KmsServer(data, extra_args=["--init"], binary=host_bin).start()
    try:
        assert (data / "credentials").exists()
    finally:
        srv.close()


@pytest.mark.parametrize("leftover", ["empty", "custody-only"])
def test_a_first_start_killed_before_its_key_was_committed_starts_again(tmp_path, host_bin, leftover):
    """The crash battery found it: a `kms-host dev` first start killed after the store file was created (or after the
    custody record, before the domain key) left a directory that refused every later start. Local mode now initialises
    such a store itself (the enclave replaces an uncommitted custody record); one with anything else still refuses."""
    data = tmp_path / "data"
    make_store(data, [] if leftover == "empty" else [(CUSTODY, "custody", 1, b"\x01" + os.urandom(120))])
    srv = KmsServer(data, binary=host_bin).start()
    try:
        assert (data / "credentials").exists()
        assert srv.client().list_keys()["Keys"] == []
    finally:
        srv.close()


def test_a_start_killed_after_the_domain_key_is_completed_by_the_next(tmp_path, host_bin):
    """Item 17: a start that stops right after committing the domain key (as a kill -9 there would) leaves a directory
    whose next start completes the initialisation with the prepared admin key, instead of running with no admin."""
    data = tmp_path / "data"
    proc = run_host(host_bin, "dev", "--data-dir", data, "--listen", "127.0.0.1:0",
                    env={"KMS_ENCLAVE_TEST_STOP": "after-domain-key"})
    assert proc.returncode != 0 and "ready:" not in proc.stdout
    assert "test stop point after-domain-key" in proc.stderr.strip().splitlines()[-1], proc.stderr[-2000:]
    prepared = logged_bootstrap_key(proc.stderr)
    assert not (data / "credentials").exists()
    srv = KmsServer(data, binary=host_bin)
    srv.start()
    try:
        assert "resuming an unfinished initialisation" in srv.stderr_text
        akid, _ = read_credentials(data / "credentials")
        assert akid == prepared, "the resumed initialisation minted another admin key"
        who = admin_whoami(host_bin, srv, data / "credentials")
        assert who["Admin"] is True, who
        srv.stop()
        # Initialisation is complete now: a later start does not resume, and the key stays.
        srv.start()
        assert srv.stderr_text.count("resuming an unfinished initialisation") == 1
        assert read_credentials(data / "credentials")[0] == prepared
    finally:
        srv.close()


def test_hiding_the_admin_records_during_resume_yields_the_same_key(tmp_path, host_bin):
    """Item 17: a host that hides the admin's records of an unfinished initialisation gets the same admin key back."""
    data = tmp_path / "data"
    proc = run_host(host_bin, "dev", "--data-dir", data, "--listen", "127.0.0.1:0",
                    env={"KMS_ENCLAVE_TEST_STOP": "after-admin"})
    assert proc.returncode != 0 and "after-admin" in proc.stderr, proc.stderr[-2000:]
    prepared = logged_bootstrap_key(proc.stderr)
    assert delete_rows(data, CREDENTIAL) == 1 and delete_rows(data, PRINCIPAL) == 1
    srv = KmsServer(data, binary=host_bin).start()
    try:
        akid, _ = read_credentials(data / "credentials")
        assert akid == prepared
        assert admin_whoami(host_bin, srv, data / "credentials")["Admin"] is True
    finally:
        srv.close()


@pytest.fixture
def initialised(tmp_path, host_bin) -> Path:
    data = tmp_path / "init"
    srv = KmsServer(data, binary=host_bin).start()
    srv.stop()
    srv.close()
    return data


@pytest.mark.parametrize("kind,name", [(TLS_ISSUER, "TlsIssuer"), (PRINCIPAL, "Principal"), (CUSTODY, "Custody")])
def test_records_required_once_initialised(tmp_path, host_bin, initialised, kind, name):
    """Item 19: a start that does not find the TLS issuer, an admin principal or the custody (domain-key check) record
    refuses, naming it, rather than minting a new CA or starting without an admin."""
    data = tmp_path / f"copy-{name}"
    shutil.copytree(initialised, data)
    ca_before = (data / "ca.pem").read_bytes()
    assert delete_rows(data, kind) >= 1
    line = start_fails(host_bin, data)
    assert f"required record {name}" in line, line
    assert (data / "ca.pem").read_bytes() == ca_before, "a refused start rewrote the CA file"
    # The untouched directory still starts.
    KmsServer(initialised, binary=host_bin).start().close()


def test_admin_bootstrap_sealed_to_the_admin_key(tmp_path, host_bin, keys):
    data = tmp_path / "data"
    admin_pub = keys["admin"] / "public.pem"
    srv = KmsServer(data, extra_args=["--admin-public-key", admin_pub], binary=host_bin).start()
    try:
        assert not (data / "credentials").exists(), "the admin secret was handed to the host"
        assert (data / "bootstrap.enc").is_file()
        m = re.search(r"^settings digest: ([0-9a-f]{96})$", srv.stdout_text, re.M)
        assert m, srv.stdout_text
        digest = m.group(1)
        proc = run_host(host_bin, "custody", "digest", "--domain-key", "local", "--admin-public-key", admin_pub)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["settings_digest"] == digest

        creds = tmp_path / "admin-creds"
        proc = run_host(host_bin, "admin", "open-bootstrap", "--data-dir", data, "--private-key",
                        keys["other"] / "private.pem", "--credentials-out", creds)
        assert proc.returncode == 1 and "cannot open" in proc.stderr and not creds.exists(), proc.stderr
        proc = run_host(host_bin, "admin", "open-bootstrap", "--data-dir", data, "--private-key",
                        keys["admin"] / "private.pem", "--credentials-out", creds)
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        assert out["SettingsDigest"] == digest and "SecretAccessKey" not in proc.stdout
        assert stat.S_IMODE(creds.stat().st_mode) == 0o600
        assert admin_whoami(host_bin, srv, creds)["Admin"] is True

        # A bootstrap file whose digest was changed does not open (the digest is bound into the HPKE info).
        doc = json.loads((data / "bootstrap.enc").read_text())
        doc["SettingsDigest"] = "00" * 48
        tampered = tmp_path / "tampered"
        tampered.mkdir()
        (tampered / "bootstrap.enc").write_text(json.dumps(doc))
        proc = run_host(host_bin, "admin", "open-bootstrap", "--data-dir", tampered, "--private-key",
                        keys["admin"] / "private.pem", "--credentials-out", tmp_path / "x")
        assert proc.returncode == 1 and "cannot open" in proc.stderr

        # verify-endpoint reports the digest and checks it when asked.
        pcrs = json.loads((data / "pcrs.json").read_text())
        common = ["verify-endpoint", "--endpoint", srv.endpoint, "--expected-pcr", f"0={pcrs['0']}",
                  "--sim-root", data / "sim-root.pem", "--out", tmp_path / "ca.pem"]
        proc = run_host(host_bin, *common, "--expected-settings-digest", digest)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["settings_digest"] == digest
        proc = run_host(host_bin, *common, "--expected-settings-digest", "ab" * 48)
        assert proc.returncode == 1 and "settings digest" in proc.stderr, proc.stderr
    finally:
        srv.close()


def test_bad_custody_flags_get_clear_errors(tmp_path, host_bin, keys):
    data = tmp_path / "data"
    line = start_fails(host_bin, data, "--domain-key", "upstream", "--init")
    assert "--admin-public-key" in line, line
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    line = start_fails(host_bin, data, "--admin-public-key", bad)
    assert "--admin-public-key" in line and "not a PEM public key" in line, line
    line = start_fails(host_bin, data, "--domain-key", "upstream", "--init", "--admin-public-key",
                       keys["admin"] / "public.pem")
    assert "--upstream-endpoint" in line, line
    line = start_fails(host_bin, data, "--domain-key", "upstream", "--init", "--admin-public-key",
                       keys["admin"] / "public.pem", "--upstream-endpoint", "http://127.0.0.1:1",
                       "--upstream-key-id", "k", "--upstream-credentials", bad)
    assert "is not https://" in line, line
    proc = run_host(host_bin, "run", "--enclave-cid", "16", "--domain-key", "local")
    assert proc.returncode != 0 and "only in `kms-host dev`" in proc.stderr, proc.stderr
    proc = run_host(host_bin, "admin", "open-bootstrap", "--data-dir", tmp_path / "nowhere", "--private-key",
                    keys["admin"] / "private.pem", "--credentials-out", tmp_path / "c")
    assert proc.returncode == 1 and "bootstrap" in proc.stderr, proc.stderr
