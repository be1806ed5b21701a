"""Attestation end to end: the simulator PKI of `kms-host dev`, `sim keygen` / `sim attest`,
`attestation verify` (simulated and real Nitro documents), `verify-endpoint`, and the
unauthenticated EnclaveKms.GetAttestationDocument operation."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import shlex
import shutil
import socket
import ssl
import select
import stat
import subprocess
import threading
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from kmstest import REPO_ROOT, KmsServer, aws_cli, scrub_aws_environment

RUN_TIMEOUT = 60
HTTP_TIMEOUT = 30
CONTENT_TYPE = "application/x-amz-json-1.1"
TARGET = "EnclaveKms.GetAttestationDocument"
VECTORS_DIR = REPO_ROOT / "attestation" / "tests" / "vectors"
HEX96_RE = re.compile(r"^[0-9a-f]{96}$")
STEP_RE = re.compile(r"verification failed at step ([a-z-]+)")
STEPS = {"size", "envelope", "algorithm", "payload", "certificate", "chain", "validity", "signature",
         "freshness", "nonce", "pcr-policy", "debug", "anchor"}
ZERO_PCR = "00" * 48


# ---- helpers --------------------------------------------------------------------------


def run(cmd, timeout: float = RUN_TIMEOUT, input: bytes | None = None, cwd=None) -> subprocess.CompletedProcess:
    """Run a command (list), bytes output, bounded by `timeout`; fails the test on timeout."""
    cmd = [str(c) for c in cmd]
    try:
        return subprocess.run(
            cmd, capture_output=True, timeout=timeout, env=scrub_aws_environment(os.environ), cwd=cwd,
            stdin=subprocess.DEVNULL if input is None else None, input=input,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"`{shlex.join(cmd)}` timed out after {timeout}s; stderr: {exc.stderr!r}", pytrace=False)


def text(b: bytes) -> str:
    return b.decode("utf-8", "replace")


def describe(proc: subprocess.CompletedProcess) -> str:
    return (f"`{shlex.join(proc.args)}` exited {proc.returncode}\nstdout:\n{text(proc.stdout)[-3000:]}\n"
            f"stderr:\n{text(proc.stderr)[-3000:]}")


def host(host_bin, *args, timeout: float = RUN_TIMEOUT, cwd=None) -> subprocess.CompletedProcess:
    return run([host_bin, *args], timeout=timeout, cwd=cwd)


def host_ok(host_bin, *args, timeout: float = RUN_TIMEOUT, cwd=None) -> subprocess.CompletedProcess:
    proc = host(host_bin, *args, timeout=timeout, cwd=cwd)
    assert proc.returncode == 0, describe(proc)
    return proc


def openssl(*args, input: bytes | None = None) -> bytes:
    proc = run(["openssl", *args], input=input)
    assert proc.returncode == 0, describe(proc)
    return proc.stdout


def sha384_hex(data: bytes) -> str:
    return hashlib.sha384(data).hexdigest()


def verify(host_bin, doc: Path, *args) -> subprocess.CompletedProcess:
    return host(host_bin, "attestation", "verify", doc, *args)


def verify_ok(host_bin, doc: Path, *args) -> dict:
    """`attestation verify` that must pass: returns the parsed JSON, checked for its common shape."""
    proc = verify(host_bin, doc, *args)
    assert proc.returncode == 0, describe(proc)
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"attestation verify printed non-JSON stdout:\n{describe(proc)}", pytrace=False)
    assert isinstance(out, dict), out
    for key in ("module_id", "timestamp", "digest", "pcrs", "public_key", "user_data", "nonce", "debug",
                "document_sha384"):
        assert key in out, f"verify JSON lacks {key!r}: {out!r}"
    assert out["digest"] == "SHA384", out
    assert isinstance(out["timestamp"], int) and not isinstance(out["timestamp"], bool), out
    assert isinstance(out["debug"], bool), out
    assert isinstance(out["pcrs"], dict) and out["pcrs"], out
    assert out["document_sha384"] == sha384_hex(Path(doc).read_bytes()), (
        f"document_sha384 {out['document_sha384']} is not the SHA-384 of {doc}")
    return out


def failed_step(proc: subprocess.CompletedProcess) -> str:
    """The STEP of 'verification failed at step STEP' in stderr (exit code must be 1)."""
    assert proc.returncode == 1, f"expected exit 1 (verification failure)\n{describe(proc)}"
    m = STEP_RE.search(text(proc.stderr))
    assert m, f"stderr does not say 'verification failed at step STEP'\n{describe(proc)}"
    assert m.group(1) in STEPS, f"unknown step {m.group(1)!r}\n{describe(proc)}"
    return m.group(1)


def verify_fails(host_bin, doc: Path, *args) -> str:
    return failed_step(verify(host_bin, doc, *args))


def read_pcrs(data_dir: Path) -> dict:
    path = Path(data_dir) / "pcrs.json"
    assert path.is_file(), f"{path} missing; dir holds {sorted(p.name for p in Path(data_dir).iterdir())}"
    return json.loads(path.read_text())


def cert_der(pem_path) -> bytes:
    """DER of the (first) certificate in a PEM file."""
    return openssl("x509", "-in", str(pem_path), "-outform", "DER")


def spki_of_cert_der(der: bytes) -> bytes:
    pem = openssl("x509", "-inform", "DER", "-pubkey", "-noout", input=der)
    return openssl("pkey", "-pubin", "-outform", "DER", input=pem)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_attestation(server, body, *, context=None):
    """POST the raw extension operation without any Authorization header.

    Returns (status, parsed JSON or None, raw body, DER of the server's TLS leaf on that connection).
    """
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    host_, port = server.host_port()
    ctx = context or ssl.create_default_context(cafile=server.ca_path)
    conn = http.client.HTTPSConnection(host_, port, context=ctx, timeout=HTTP_TIMEOUT)
    try:
        conn.request("POST", "/", body=body, headers={"Content-Type": CONTENT_TYPE, "X-Amz-Target": TARGET})
        peer = conn.sock.getpeercert(binary_form=True)
        response = conn.getresponse()
        raw = response.read()
        status = response.status
    finally:
        conn.close()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    return status, parsed, raw, peer


def fetch_document(server, nonce: bytes, dest: Path) -> bytes:
    """GetAttestationDocument with `nonce`; writes the document to dest; returns the TLS leaf DER."""
    status, parsed, raw, peer = get_attestation(server, {"Nonce": base64.b64encode(nonce).decode()})
    assert status == 200, f"GetAttestationDocument: HTTP {status}: {raw[:500]!r}"
    assert isinstance(parsed, dict) and isinstance(parsed.get("AttestationDocument"), str), raw[:500]
    doc = base64.b64decode(parsed["AttestationDocument"], validate=True)
    assert doc[:1] == b"\x84", f"document does not start with 0x84 (untagged COSE_Sign1): {doc[:8].hex()}"
    dest.write_bytes(doc)
    return peer


# ---- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pcrs(server):
    return read_pcrs(server.data_dir)


@pytest.fixture(scope="module")
def sim_root(server) -> Path:
    return server.data_dir / "sim-root.pem"


@pytest.fixture(scope="module")
def keypair(tmp_path_factory, host_bin) -> Path:
    d = tmp_path_factory.mktemp("keypair")
    host_ok(host_bin, "sim", "keygen", "--alg", "p384", "--out-dir", d)
    return d


@pytest.fixture(scope="module")
def other_server(tmp_path_factory, host_bin):
    """A second, independent data dir (other simulator root) with its server."""
    srv = KmsServer(tmp_path_factory.mktemp("kms-other"), binary=host_bin)
    srv.start()
    yield srv
    srv.close()


def attest(host_bin, server, keypair, out: Path, *args) -> Path:
    host_ok(host_bin, "sim", "attest", "--data-dir", server.data_dir, "--public-key", keypair / "public.der",
            *args, "--out", out)
    assert out.is_file(), f"sim attest exited 0 but wrote no {out}"
    assert out.read_bytes()[:1] == b"\x84", f"{out} does not start with 0x84: {out.read_bytes()[:8].hex()}"
    return out


# ---- the data dir of kms-host dev -------------------------------------------------------


def test_dev_writes_simulator_files(server, host_bin, pcrs, sim_root):
    d = server.data_dir
    assert sim_root.is_file(), f"no sim-root.pem in {sorted(p.name for p in d.iterdir())}"
    assert sim_root.read_text().lstrip().startswith("-----BEGIN CERTIFICATE-----")
    openssl("x509", "-in", str(sim_root), "-noout")  # parses as a certificate
    pki = d / "sim-pki.pem"
    assert pki.is_file(), f"no sim-pki.pem in {sorted(p.name for p in d.iterdir())}"
    mode = stat.S_IMODE(pki.stat().st_mode)
    assert mode == 0o600, f"sim-pki.pem has mode {mode:o}, expected 600"

    assert set(pcrs) == {"0", "1", "2"}, f"pcrs.json keys: {sorted(pcrs)}"
    for k, v in pcrs.items():
        assert isinstance(v, str) and HEX96_RE.match(v), f"PCR{k} is not 48 bytes of lowercase hex: {v!r}"
    enclave = host_bin.parent / "kms-enclave"
    assert pcrs["0"] == sha384_hex(enclave.read_bytes()), f"PCR0 is not SHA-384 of {enclave}"


def test_sim_root_survives_restart(fresh_server):
    d = fresh_server.data_dir
    root = (d / "sim-root.pem").read_bytes()
    pki = (d / "sim-pki.pem").read_bytes()
    pcrs_before = read_pcrs(d)
    fresh_server.restart()
    assert (d / "sim-root.pem").read_bytes() == root, "sim-root.pem changed across restart"
    assert (d / "sim-pki.pem").read_bytes() == pki, "sim-pki.pem changed across restart"
    assert read_pcrs(d) == pcrs_before
    # The restarted enclave's documents still chain to the root saved before the restart.
    saved = d.parent / "sim-root-before.pem"
    saved.write_bytes(root)
    doc = d.parent / "after-restart.cbor"
    fetch_document(fresh_server, b"after restart", doc)
    verify_ok(fresh_server.binary, doc, "--sim-root", saved, "--expected-pcr", f"0={pcrs_before['0']}")


def test_changed_enclave_binary_changes_pcr0(tmp_path, host_bin, make_server, pcrs):
    original = host_bin.parent / "kms-enclave"
    copy = tmp_path / "kms-enclave"
    shutil.copy2(original, copy)
    with open(copy, "ab") as f:
        f.write(b"\0")
    os.chmod(copy, 0o755)
    srv = make_server("--enclave-bin", copy)
    changed = read_pcrs(srv.data_dir)
    assert changed["0"] != pcrs["0"], "PCR0 did not change with the enclave binary"
    assert changed["0"] == sha384_hex(copy.read_bytes()), "PCR0 is not SHA-384 of the --enclave-bin file"
    assert changed["1"] == pcrs["1"] and changed["2"] == pcrs["2"], (changed, pcrs)

    # The running enclave attests to the new measurement, not the original one.
    doc = tmp_path / "doc.cbor"
    fetch_document(srv, b"changed-binary", doc)
    root = srv.data_dir / "sim-root.pem"
    out = verify_ok(host_bin, doc, "--sim-root", root, "--expected-pcr", f"0={changed['0']}")
    assert out["pcrs"]["0"] == changed["0"]
    assert verify_fails(host_bin, doc, "--sim-root", root, "--expected-pcr", f"0={pcrs['0']}") == "pcr-policy"


# ---- sim keygen ------------------------------------------------------------------------


@pytest.mark.parametrize("alg,expect", [("rsa2048", "2048 bit"), ("p384", "secp384r1")])
def test_sim_keygen(tmp_path, host_bin, alg, expect):
    d = tmp_path / "keys"
    host_ok(host_bin, "sim", "keygen", "--alg", alg, "--out-dir", d)
    private, public = d / "private.pem", d / "public.der"
    assert private.is_file() and public.is_file(), sorted(p.name for p in d.iterdir()) if d.exists() else None
    assert private.read_text().startswith("-----BEGIN PRIVATE KEY-----"), private.read_text()[:40]
    openssl("pkey", "-in", str(private), "-noout")
    info = text(openssl("pkey", "-pubin", "-inform", "DER", "-in", str(public), "-noout", "-text"))
    assert expect in info, info
    if alg == "rsa2048":
        assert "RSA" in info or "Modulus" in info, info
    derived = openssl("pkey", "-in", str(private), "-pubout", "-outform", "DER")
    assert derived == public.read_bytes(), "public.der is not the public half of private.pem"


def test_sim_keygen_gives_new_keys(tmp_path, host_bin):
    host_ok(host_bin, "sim", "keygen", "--alg", "p384", "--out-dir", tmp_path / "a")
    host_ok(host_bin, "sim", "keygen", "--alg", "p384", "--out-dir", tmp_path / "b")
    assert (tmp_path / "a" / "public.der").read_bytes() != (tmp_path / "b" / "public.der").read_bytes()


def test_sim_keygen_rejects_unknown_alg(tmp_path, host_bin):
    proc = host(host_bin, "sim", "keygen", "--alg", "rsa512", "--out-dir", tmp_path / "k")
    assert proc.returncode != 0, describe(proc)
    assert not (tmp_path / "k" / "private.pem").exists()


# ---- sim attest + attestation verify -----------------------------------------------------


def test_sim_attest_roundtrip(tmp_path, host_bin, server, keypair, pcrs, sim_root):
    nonce, user_data, pcr3 = "00112233445566778899aabbccddeeff", "c0ffee" * 10, "ab" * 48
    doc = attest(host_bin, server, keypair, tmp_path / "doc.cbor",
                 "--nonce", nonce, "--user-data", user_data, "--pcr", f"3={pcr3}")
    before_ms = int(time.time() * 1000)
    out = verify_ok(host_bin, doc, "--sim-root", sim_root, "--nonce", nonce,
                    "--expected-pcr", f"0={pcrs['0']}", "--expected-pcr", f"1={pcrs['1']}",
                    "--expected-pcr", f"2={pcrs['2']}", "--expected-pcr", f"3={pcr3}")
    assert out["module_id"].startswith("sim-"), out["module_id"]
    assert abs(out["timestamp"] - before_ms) < 120_000, (out["timestamp"], before_ms)
    assert set(out["pcrs"]) == {str(i) for i in range(16)}, sorted(out["pcrs"])
    for i in range(16):
        want = pcrs[str(i)] if i <= 2 else pcr3 if i == 3 else ZERO_PCR
        assert out["pcrs"][str(i)] == want, f"PCR{i}: {out['pcrs'][str(i)]} != {want}"
    assert out["public_key"] == (keypair / "public.der").read_bytes().hex()
    assert out["user_data"] == user_data
    assert out["nonce"] == nonce
    assert out["debug"] is False


def test_sim_attest_minimal_has_no_nonce_or_user_data(tmp_path, host_bin, server, keypair, pcrs, sim_root):
    doc = attest(host_bin, server, keypair, tmp_path / "doc.cbor")
    out = verify_ok(host_bin, doc, "--sim-root", sim_root)
    assert out["nonce"] is None and out["user_data"] is None, out
    assert {k: out["pcrs"][k] for k in ("0", "1", "2")} == pcrs
    # A verifier that demands a nonce refuses a document without one.
    assert verify_fails(host_bin, doc, "--sim-root", sim_root, "--nonce", "aa") == "nonce"


def test_sim_attest_requires_sim_pki(tmp_path, host_bin, keypair):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "doc.cbor"
    proc = host(host_bin, "sim", "attest", "--data-dir", empty, "--public-key", keypair / "public.der",
                "--out", out)
    assert proc.returncode != 0, describe(proc)
    assert "sim-pki" in text(proc.stderr), f"message does not name sim-pki.pem\n{describe(proc)}"
    assert "panicked" not in text(proc.stderr), describe(proc)
    assert not out.exists(), "a document was written although sim attest failed"


def test_verify_checks_pcr_policy(tmp_path, host_bin, server, keypair, pcrs, sim_root):
    custom = "5a" * 48
    doc = attest(host_bin, server, keypair, tmp_path / "doc.cbor", "--pcr", f"0={custom}")
    verify_ok(host_bin, doc, "--sim-root", sim_root, "--expected-pcr", f"0={custom}")
    assert verify_fails(host_bin, doc, "--sim-root", sim_root, "--expected-pcr", f"0={pcrs['0']}") == "pcr-policy"
    # A policy on a PCR the document leaves zero.
    assert verify_fails(host_bin, doc, "--sim-root", sim_root, "--expected-pcr", f"8={'11' * 48}") == "pcr-policy"


def test_verify_without_sim_root_uses_aws_anchor(tmp_path, host_bin, server, keypair):
    doc = attest(host_bin, server, keypair, tmp_path / "doc.cbor")
    assert verify_fails(host_bin, doc) in {"anchor", "chain"}


def test_cross_anchor_is_refused(tmp_path, host_bin, server, other_server, keypair, sim_root):
    other_root = other_server.data_dir / "sim-root.pem"
    assert other_root.read_bytes() != sim_root.read_bytes(), "two data dirs share one simulator root"
    doc = attest(host_bin, server, keypair, tmp_path / "doc.cbor")
    verify_ok(host_bin, doc, "--sim-root", sim_root)
    assert verify_fails(host_bin, doc, "--sim-root", other_root) in {"chain", "anchor"}
    # ... and the other way round, with a document served live by the other enclave.
    live = tmp_path / "live.cbor"
    fetch_document(other_server, b"cross", live)
    verify_ok(host_bin, live, "--sim-root", other_root)
    assert verify_fails(host_bin, live, "--sim-root", sim_root) in {"chain", "anchor"}


def test_debug_documents(tmp_path, host_bin, server, keypair, pcrs, sim_root):
    doc = attest(host_bin, server, keypair, tmp_path / "debug.cbor", "--debug")
    assert verify_fails(host_bin, doc, "--sim-root", sim_root) == "debug"
    out = verify_ok(host_bin, doc, "--sim-root", sim_root, "--allow-debug")
    assert out["debug"] is True, out
    for i in ("0", "1", "2"):
        assert out["pcrs"][i] == ZERO_PCR, f"debug document has PCR{i}={out['pcrs'][i]}"
    assert verify_fails(host_bin, doc, "--sim-root", sim_root, "--allow-debug",
                        "--expected-pcr", f"0={pcrs['0']}") == "pcr-policy"


def test_freshness(tmp_path, host_bin, server, keypair, sim_root):
    doc = attest(host_bin, server, keypair, tmp_path / "doc.cbor")
    verify_ok(host_bin, doc, "--sim-root", sim_root)  # default max age 300 s
    time.sleep(1.5)
    assert verify_fails(host_bin, doc, "--sim-root", sim_root, "--max-age", "0") == "freshness"
    verify_ok(host_bin, doc, "--sim-root", sim_root, "--max-age", "60")
    verify_ok(host_bin, doc, "--sim-root", sim_root, "--at-document-time")


def test_tampered_and_garbage_documents(tmp_path, host_bin, server, keypair, sim_root):
    doc = attest(host_bin, server, keypair, tmp_path / "doc.cbor")
    data = doc.read_bytes()
    tampered = tmp_path / "tampered.cbor"
    tampered.write_bytes(data[:-1] + bytes([data[-1] ^ 0x01]))  # the signature is the last field
    assert verify_fails(host_bin, tampered, "--sim-root", sim_root) == "signature"

    garbage = tmp_path / "garbage.cbor"
    garbage.write_bytes(b"this is not an attestation document")
    assert verify_fails(host_bin, garbage, "--sim-root", sim_root) in {"size", "envelope"}

    empty = tmp_path / "empty.cbor"
    empty.write_bytes(b"")
    assert verify_fails(host_bin, empty, "--sim-root", sim_root) in {"size", "envelope"}

    huge = tmp_path / "huge.cbor"
    huge.write_bytes(b"\x84" + b"\0" * (1 << 20) * 4)
    assert verify_fails(host_bin, huge, "--sim-root", sim_root) in {"size", "envelope"}


# ---- real Nitro documents ---------------------------------------------------------------


def _vectors():
    return json.loads((VECTORS_DIR / "vectors.json").read_text())["vectors"]


VECTORS = _vectors()


@pytest.mark.parametrize("vector", [v for v in VECTORS if v["verifies_at_doc_timestamp"]], ids=lambda v: v["file"])
def test_nitro_vector_verifies_at_document_time(host_bin, vector):
    doc = VECTORS_DIR / vector["file"]
    debug = vector["debug_mode_pcr0_2_all_zero"]
    args = ["--at-document-time"] + (["--allow-debug"] if debug else [])
    out = verify_ok(host_bin, doc, *args)
    assert out["module_id"] == vector["module_id"]
    assert out["timestamp"] == vector["timestamp_ms"]
    assert out["debug"] is debug, out
    assert len(out["pcrs"]) == vector["pcr_count"], sorted(out["pcrs"])
    nonzero = {k: v for k, v in out["pcrs"].items() if v != "00" * (len(v) // 2)}
    assert nonzero == vector["nonzero_pcrs"]
    for field in ("public_key", "user_data", "nonce"):
        expect = vector[field]
        if expect == "null":
            assert out[field] is None, (field, out[field])
        else:
            got = bytes.fromhex(out[field])
            assert len(got) == expect["len"] and hashlib.sha256(got).hexdigest() == expect["sha256"], field
    if debug:
        assert verify_fails(host_bin, doc, "--at-document-time") == "debug"
    else:
        pcr0 = vector["nonzero_pcrs"]["0"]
        verify_ok(host_bin, doc, "--at-document-time", "--expected-pcr", f"0={pcr0}")
        assert verify_fails(host_bin, doc, "--at-document-time", "--expected-pcr", f"0={'00' * 48}") == "pcr-policy"
    # Checked now, every real document has an expired leaf.
    assert verify_fails(host_bin, doc, *args[1:]) == "validity"


def test_nitro_vector_invalid_signature(host_bin):
    [vector] = [v for v in VECTORS if not v["verifies_at_doc_timestamp"]]
    doc = VECTORS_DIR / vector["file"]
    assert verify_fails(host_bin, doc, "--at-document-time", "--allow-debug") == "signature"
    assert verify_fails(host_bin, doc, "--at-document-time") == "signature"
    assert verify_fails(host_bin, doc, "--allow-debug") == "validity"


def test_nitro_vector_against_sim_root(host_bin, sim_root):
    doc = VECTORS_DIR / "blocky-nitrite-2024-09-07.cbor"
    assert verify_fails(host_bin, doc, "--at-document-time", "--sim-root", sim_root) in {"chain", "anchor"}


# ---- EnclaveKms.GetAttestationDocument ----------------------------------------------------


def test_get_attestation_document(tmp_path, host_bin, server, pcrs, sim_root):
    nonce = os.urandom(32)
    doc = tmp_path / "doc.cbor"
    peer = fetch_document(server, nonce, doc)
    out = verify_ok(host_bin, doc, "--sim-root", sim_root, "--nonce", nonce.hex(),
                    "--expected-pcr", f"0={pcrs['0']}")
    assert out["nonce"] == nonce.hex()
    assert out["debug"] is False
    assert out["module_id"].startswith("sim-"), out["module_id"]
    assert {k: out["pcrs"][k] for k in ("0", "1", "2")} == pcrs
    assert out["public_key"] == spki_of_cert_der(peer).hex(), "public_key is not the TLS leaf's SPKI"
    ca_der = cert_der(server.data_dir / "ca.pem")
    # user_data = SHA-384(CA certificate) || SHA-384(initialisation settings) (custody).
    assert out["user_data"][:96] == sha384_hex(ca_der), "user_data does not start with SHA-384 of ca.pem's certificate"
    assert len(out["user_data"]) == 192, out["user_data"]


def test_get_attestation_document_nonces_and_replay(tmp_path, host_bin, server, sim_root):
    a, b = os.urandom(16), os.urandom(16)
    doc_a, doc_b = tmp_path / "a.cbor", tmp_path / "b.cbor"
    fetch_document(server, a, doc_a)
    fetch_document(server, b, doc_b)
    out_a = verify_ok(host_bin, doc_a, "--sim-root", sim_root, "--nonce", a.hex())
    out_b = verify_ok(host_bin, doc_b, "--sim-root", sim_root, "--nonce", b.hex())
    assert out_a["nonce"] == a.hex() and out_b["nonce"] == b.hex()
    assert out_a["document_sha384"] != out_b["document_sha384"]
    assert verify_fails(host_bin, doc_a, "--sim-root", sim_root, "--nonce", b.hex()) == "nonce"


def test_only_attestation_is_served_without_sigv4(server):
    """The unauthenticated exemption is for GetAttestationDocument alone."""
    host_, port = server.host_port()
    conn = http.client.HTTPSConnection(host_, port, context=ssl.create_default_context(cafile=server.ca_path),
                                       timeout=HTTP_TIMEOUT)
    try:
        conn.request("POST", "/", body=b"{}", headers={"Content-Type": CONTENT_TYPE,
                                                       "X-Amz-Target": "TrentService.ListKeys"})
        response = conn.getresponse()
        status, raw = response.status, response.read()
    finally:
        conn.close()
    assert status != 200 and 400 <= status < 500, f"unsigned ListKeys answered HTTP {status}: {raw[:300]!r}"


@pytest.mark.parametrize("body", [{}, {"Nonce": base64.b64encode(b"\x01" * 513).decode()}],
                         ids=["missing-nonce", "513-byte-nonce"])
def test_get_attestation_document_validation(server, body):
    status, parsed, raw, _ = get_attestation(server, body)
    assert status == 400, f"HTTP {status}: {raw[:500]!r}"
    assert isinstance(parsed, dict) and parsed.get("__type") == "ValidationException", raw[:500]


# ---- verify-endpoint --------------------------------------------------------------------


def pcr_args(pcrs: dict) -> list[str]:
    return [a for k in sorted(pcrs) for a in ("--expected-pcr", f"{k}={pcrs[k]}")]


def test_verify_endpoint_writes_ca(tmp_path, host_bin, server, pcrs, sim_root):
    out = tmp_path / "ca.pem"
    proc = host_ok(host_bin, "verify-endpoint", "--endpoint", server.endpoint, *pcr_args(pcrs),
                   "--sim-root", sim_root, "--out", out)
    assert out.is_file(), f"verify-endpoint exited 0 without writing {out}"
    assert cert_der(out) == cert_der(server.data_dir / "ca.pem"), "written CA differs from DIR/ca.pem"
    fields = json.loads(proc.stdout)
    assert {k: fields["pcrs"][k] for k in pcrs} == pcrs, fields
    assert fields["module_id"].startswith("sim-") and fields["debug"] is False, fields
    assert fields["nonce"], "verify-endpoint did not use a nonce"
    assert fields["user_data"][:96] == sha384_hex(cert_der(out)), fields
    assert fields["user_data"][96:] == fields["settings_digest"] and len(fields["settings_digest"]) == 96, fields

    # The written bundle is enough to trust the endpoint: boto3 with verify= ...
    bsession = server.botocore_session()
    client = boto3.Session(botocore_session=bsession, region_name=server.region).client(
        "kms", endpoint_url=server.endpoint, verify=str(out),
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=10, read_timeout=30))
    assert "Keys" in client.list_keys()
    # ... and the AWS CLI with AWS_CA_BUNDLE.
    env = dict(server.env, AWS_CA_BUNDLE=str(out))
    cli = subprocess.run([str(aws_cli()), "kms", "list-keys", "--output", "json"], env=env,
                         capture_output=True, text=True, timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL)
    assert cli.returncode == 0, cli.stderr
    assert "Keys" in json.loads(cli.stdout)


def _refused(proc, out: Path, word: str | None, usage: bool = False):
    assert proc.returncode != 0, describe(proc)
    if not usage:  # a runtime refusal, not the argument parser rejecting the command line
        assert "Usage:" not in text(proc.stderr), describe(proc)
    assert not out.exists(), f"{out} was written although verify-endpoint failed\n{describe(proc)}"
    assert "panicked" not in text(proc.stderr), describe(proc)
    if word:
        assert word in text(proc.stderr), f"stderr does not name {word!r}\n{describe(proc)}"


def test_verify_endpoint_wrong_pcr(tmp_path, host_bin, server, pcrs, sim_root):
    out = tmp_path / "ca.pem"
    wrong = dict(pcrs, **{"0": "ee" * 48})
    proc = host(host_bin, "verify-endpoint", "--endpoint", server.endpoint, *pcr_args(wrong),
                "--sim-root", sim_root, "--out", out)
    _refused(proc, out, "pcr-policy")


def test_verify_endpoint_without_sim_root(tmp_path, host_bin, server, pcrs):
    out = tmp_path / "ca.pem"
    proc = host(host_bin, "verify-endpoint", "--endpoint", server.endpoint, *pcr_args(pcrs), "--out", out)
    _refused(proc, out, "anchor")


def test_verify_endpoint_other_root(tmp_path, host_bin, server, other_server, pcrs):
    out = tmp_path / "ca.pem"
    proc = host(host_bin, "verify-endpoint", "--endpoint", server.endpoint, *pcr_args(pcrs),
                "--sim-root", other_server.data_dir / "sim-root.pem", "--out", out)
    _refused(proc, out, None)
    assert re.search(r"\b(chain|anchor)\b", text(proc.stderr)), describe(proc)


def test_verify_endpoint_requires_expected_pcr(tmp_path, host_bin, server, sim_root):
    out = tmp_path / "ca.pem"
    proc = host(host_bin, "verify-endpoint", "--endpoint", server.endpoint, "--sim-root", sim_root, "--out", out)
    _refused(proc, out, "expected-pcr", usage=True)


def test_verify_endpoint_refuses_plain_http(tmp_path, host_bin, server, pcrs, sim_root):
    out = tmp_path / "ca.pem"
    host_, port = server.host_port()
    proc = host(host_bin, "verify-endpoint", "--endpoint", f"http://{host_}:{port}", *pcr_args(pcrs),
                "--sim-root", sim_root, "--out", out)
    _refused(proc, out, "https")


def test_verify_endpoint_nobody_listening(tmp_path, host_bin, pcrs, sim_root):
    out = tmp_path / "ca.pem"
    started = time.monotonic()
    proc = host(host_bin, "verify-endpoint", "--endpoint", f"https://127.0.0.1:{free_port()}", *pcr_args(pcrs),
                "--sim-root", sim_root, "--out", out, timeout=30)
    _refused(proc, out, None)
    assert text(proc.stderr).strip(), "no error message"
    assert time.monotonic() - started < 30


def test_relative_output_paths(tmp_path, host_bin, server, pcrs, sim_root):
    """The documented command lines use bare file names (`--out doc.cbor`, `--out ca.pem`)."""
    failures = []

    def step(*args, check=None):
        proc = host(host_bin, *args, cwd=tmp_path)
        if proc.returncode != 0:
            failures.append(describe(proc))
        elif check:
            check()

    step("sim", "keygen", "--alg", "p384", "--out-dir", "keys",
         check=lambda: (tmp_path / "keys" / "public.der").read_bytes())
    step("sim", "attest", "--data-dir", server.data_dir, "--public-key", "keys/public.der", "--out", "doc.cbor")
    step("attestation", "verify", "doc.cbor", "--sim-root", sim_root)
    step("verify-endpoint", "--endpoint", server.endpoint, *pcr_args(pcrs), "--sim-root", sim_root,
         "--out", "ca.pem",
         check=lambda: cert_der(tmp_path / "ca.pem") == cert_der(server.data_dir / "ca.pem") or failures.append(
             "verify-endpoint wrote a ca.pem that is not DIR/ca.pem"))
    assert not failures, "\n\n".join(failures)


class TlsRelay:
    """A man in the middle: terminates TLS with its own certificate and relays to the real server over TLS."""

    def __init__(self, server, cert: Path, key: Path):
        self.backend = server.host_port()
        self.backend_ctx = ssl.create_default_context(cafile=server.ca_path)
        self.front_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.front_ctx.load_cert_chain(str(cert), str(key))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.connections = 0
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except (socket.timeout, OSError):
                continue
            self.connections += 1
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn):
        try:
            conn.settimeout(10)
            front = self.front_ctx.wrap_socket(conn, server_side=True)
            back = self.backend_ctx.wrap_socket(socket.create_connection(self.backend, timeout=10),
                                                server_hostname=self.backend[0])
        except (OSError, ssl.SSLError) as exc:
            self.errors.append(f"setup: {exc!r}")
            conn.close()
            return
        socks = {front: back, back: front}
        try:
            for s in socks:
                s.setblocking(False)  # readable TLS records need not carry data (e.g. session tickets)
            deadline = time.monotonic() + 30
            while not self.stop.is_set() and time.monotonic() < deadline:
                ready = [s for s in socks if s.pending()] or select.select(list(socks), [], [], 0.2)[0]
                for s in ready:
                    try:
                        data = s.recv(65536)
                    except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                        continue
                    if not data:
                        return
                    dst = socks[s]
                    dst.settimeout(10)
                    dst.sendall(data)
                    dst.setblocking(False)
        except (OSError, ssl.SSLError) as exc:
            self.errors.append(f"relay: {exc!r}")
            return
        finally:
            front.close()
            back.close()

    def close(self):
        self.stop.set()
        self.listener.close()
        self.thread.join(5)


def mitm_pki(d: Path) -> tuple[Path, Path, Path]:
    """The relay's own CA and a leaf for 127.0.0.1 signed by it: (leaf+CA chain PEM, leaf key, CA PEM)."""
    ca, ca_key = d / "mitm-ca.pem", d / "mitm-ca.key"
    leaf, key, csr, ext = d / "mitm-leaf.pem", d / "mitm-leaf.key", d / "mitm.csr", d / "mitm.ext"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384", "-nodes", "-days", "1",
            "-subj", "/CN=mitm ca", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", str(ca_key), "-out", str(ca))
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384", "-nodes",
            "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(csr))
    ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n"
                   "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
            "-days", "1", "-extfile", str(ext), "-out", str(leaf))
    chain = d / "mitm-chain.pem"
    chain.write_bytes(leaf.read_bytes() + ca.read_bytes())
    return chain, key, ca


def test_verify_endpoint_refuses_tls_relay(tmp_path, host_bin, server, pcrs, sim_root):
    """A relay that re-terminates TLS gets a genuine document through, but not one bound to its own key."""
    cert, key, ca = mitm_pki(tmp_path)
    relay = TlsRelay(server, cert, key)
    try:
        # The relay works: a client trusting the relay's CA gets a real, verifiable document.
        ctx = ssl.create_default_context(cafile=str(ca))
        via = type("Via", (), {"host_port": lambda self: ("127.0.0.1", relay.port), "ca_path": str(ca)})()
        try:
            status, parsed, raw, _ = get_attestation(via, {"Nonce": base64.b64encode(b"via relay").decode()},
                                                     context=ctx)
        except (OSError, http.client.HTTPException) as exc:
            pytest.fail(f"request through the relay failed: {exc!r}; relay errors: {relay.errors}")
        assert status == 200, (status, raw[:500], relay.errors)
        doc = tmp_path / "relayed.cbor"
        doc.write_bytes(base64.b64decode(parsed["AttestationDocument"]))
        verify_ok(host_bin, doc, "--sim-root", sim_root, "--nonce", b"via relay".hex(),
                  "--expected-pcr", f"0={pcrs['0']}")

        out = tmp_path / "ca.pem"
        proc = host(host_bin, "verify-endpoint", "--endpoint", f"https://127.0.0.1:{relay.port}",
                    *pcr_args(pcrs), "--sim-root", sim_root, "--out", out)
        assert relay.connections >= 2, "verify-endpoint never reached the relay"
        _refused(proc, out, None)
        # The document itself is genuine: what must fail is its binding to this connection's key.
        assert re.search(r"key|bind", text(proc.stderr), re.I), describe(proc)
    finally:
        relay.close()
