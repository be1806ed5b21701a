"""Issue 17, operating it: the unauthenticated health check (`GET /healthz`), graceful drain on SIGTERM, systemd's
readiness notification, and `--config FILE`. Real TLS to the enclave, raw sockets where the connection matters."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import time

import pytest

from kmstest import KmsServer, wait_until
from test_net_hardening import parse_responses, signed_head, tls_socket
from test_protocol import RawClient

DRAIN_WAIT = 15.0


def healthz(server, method: str = "GET") -> tuple[int, dict | None, dict]:
    host, port = server.host_port()
    ctx = ssl.create_default_context(cafile=server.ca_path)
    conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=10)
    try:
        conn.request(method, "/healthz")
        resp = conn.getresponse()
        raw = resp.read()
        headers = {k.lower(): v for k, v in resp.getheaders()}
        return resp.status, (json.loads(raw) if raw else None), headers
    finally:
        conn.close()


def test_healthz_needs_no_credentials_and_says_serving(fresh_server):
    status, body, headers = healthz(fresh_server)
    assert (status, body) == (200, {"status": "serving"})
    assert headers["cache-control"] == "no-store"
    status, _, _ = healthz(fresh_server, "POST")
    assert status == 405


def test_sigterm_drains_answers_503_finishes_in_flight_and_exits(make_server):
    srv = make_server()
    raw = RawClient(srv)
    # A request in flight across the drain: its head and half its body are sent before SIGTERM.
    body = json.dumps({"NumberOfBytes": 16}).encode()
    pending = tls_socket(srv)
    pending.sendall(signed_head(raw, "TrentService.GenerateRandom", body) + body[:5])
    # An idle keep-alive connection that has already been answered once.
    idle = tls_socket(srv)
    idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert parse_one(idle)[0] == 200

    srv.proc.send_signal(signal.SIGTERM)
    assert wait_until(lambda: healthz(srv)[0] == 503, DRAIN_WAIT), "healthz never answered 503 while draining"
    status, answer, headers = healthz(srv)
    assert (status, answer, headers.get("connection")) == (503, {"status": "draining"}, "close")
    # The idle connection is closed by the enclave, not left open.
    idle.settimeout(DRAIN_WAIT)
    assert idle.recv(1) == b""
    # The request in flight completes.
    pending.sendall(body[5:])
    status, parsed = parse_one(pending)
    assert status == 200 and len(parsed["Plaintext"]) > 0, parsed
    pending.close()
    # With nothing open, the host exits cleanly, well before the 30 s drain timeout.
    assert srv.proc.wait(timeout=DRAIN_WAIT) == 0
    text = srv.stderr_text
    assert "draining" in text and "drained: no connection open" in text, text[-2000:]
    srv.proc = None


def test_drain_timeout_bounds_the_wait(make_server):
    srv = make_server("--drain-timeout", "1")
    raw = RawClient(srv)
    body = json.dumps({"NumberOfBytes": 16}).encode()
    stuck = tls_socket(srv)
    stuck.sendall(signed_head(raw, "TrentService.GenerateRandom", body) + body[:5])  # never finished
    started = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(timeout=DRAIN_WAIT) == 0
    assert time.monotonic() - started < DRAIN_WAIT
    assert "drain timeout reached" in srv.stderr_text
    srv.proc = None
    stuck.close()


def parse_one(sock) -> tuple[int, dict | None]:
    data = b""
    while True:
        got = parse_responses(data)
        if got:
            status, parsed, _ = got[0]
            return status, parsed
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a whole response: {data!r}"
        data += chunk


def test_systemd_notify_ready_and_stopping(tmp_path, host_bin):
    path = tmp_path / "notify.sock"
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(str(path))
    rx.settimeout(30)
    srv = KmsServer(tmp_path / "data", binary=host_bin, extra_env={"NOTIFY_SOCKET": str(path)})
    srv.start()
    try:
        ready = rx.recv(4096).decode()
        assert ready.startswith("READY=1\nSTATUS=serving https://127.0.0.1:"), ready
        srv.proc.send_signal(signal.SIGTERM)
        assert rx.recv(4096).decode() == "STOPPING=1\nSTATUS=draining"
        assert srv.proc.wait(timeout=DRAIN_WAIT) == 0
        srv.proc = None
    finally:
        srv.close()
        rx.close()


def run_host(host_bin, *args, timeout=30):
    return subprocess.run([str(host_bin), *map(str, args)], capture_output=True, text=True, timeout=timeout)


def test_config_file_sets_flags_and_flags_override_it(tmp_path, host_bin):
    data = tmp_path / "data"
    conf = tmp_path / "kms.toml"
    conf.write_text(
        "# enclave-kms settings\n"
        f'data-dir = "{data}"\n'
        'listen = "127.0.0.1:1"\n'
        'region = "eu-west-2"\n'
        'tls-name = ["kms.example.internal"]\n'
        "drain-timeout = 5\n"
    )

    class ConfigServer(KmsServer):
        def command(self):
            # The data directory and region come from the file; --listen on the command line overrides its port 1.
            return [str(self.binary), "dev", "--config", str(conf), "--listen", "127.0.0.1:0"]

    srv = ConfigServer(data, binary=host_bin)
    srv.start()
    try:
        assert srv.endpoint.startswith("https://127.0.0.1:") and not srv.endpoint.endswith(":1")
        assert (data / "env").exists()
        assert srv.env_file["AWS_DEFAULT_REGION"] == "eu-west-2"
        key = srv.client().create_key()["KeyMetadata"]
        assert key["Arn"].startswith("arn:aws:kms:eu-west-2:")
    finally:
        srv.close()


@pytest.mark.parametrize(
    "text, message",
    [
        ('listen-on = "127.0.0.1:0"\n', "unknown key 'listen-on' (not a flag of `kms-host dev`)"),
        ('config = "other.toml"\n', "unknown key 'config'"),
        ('init = "yes"\n', "'init' takes true or false"),
        ("data-dir = [1]\n", "'data-dir' takes a string or a number"),
        ("data-dir = \n", "kms.toml"),
    ],
)
def test_config_file_errors_name_the_key(tmp_path, host_bin, text, message):
    conf = tmp_path / "kms.toml"
    conf.write_text(text)
    r = run_host(host_bin, "dev", "--config", conf)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.startswith("kms-host: ") and message in r.stderr, r.stderr
    assert os.listdir(tmp_path) == ["kms.toml"]  # nothing started, nothing written


def test_config_file_missing(tmp_path, host_bin):
    r = run_host(host_bin, "run", "--config", tmp_path / "absent.toml", "--enclave-cid", "16")
    assert r.returncode == 2 and "absent.toml" in r.stderr, r.stderr


def test_json_logs_one_event_per_request_with_the_request_id(make_server):
    srv = make_server("--log-format", "json")
    kms = srv.client()
    created = kms.create_key(Description="json logs")
    key_id = created["KeyMetadata"]["KeyId"]
    enc = kms.encrypt(KeyId=key_id, Plaintext=b"logged? never")
    try:
        kms.describe_key(KeyId="alias/does-not-exist")
        raise AssertionError("expected NotFoundException")
    except kms.exceptions.NotFoundException as e:
        failed_id = e.response["ResponseMetadata"]["RequestId"]
    srv.stop()
    lines = [line for line in srv.stderr_text.splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]  # every line is one JSON object, enclave's and host's alike
    assert all(isinstance(e, dict) and "level" in e for e in events)
    assert any(e.get("target", "").startswith("kms_host") for e in events)
    requests = {e["request_id"]: e for e in events if e.get("target") == "request"}
    principal = f"arn:aws:iam::{srv.env_file.get('AWS_ACCOUNT_ID', '000000000000')}:user/admin"

    ok = requests[enc["ResponseMetadata"]["RequestId"]]
    assert (ok["operation"], ok["key_id"], ok["status"], ok["error"]) == ("Encrypt", key_id, 200, "")
    assert ok["principal"] == principal and ok["duration_ms"] >= 0
    made = requests[created["ResponseMetadata"]["RequestId"]]
    assert (made["operation"], made["key_id"]) == ("CreateKey", key_id)
    bad = requests[failed_id]
    assert (bad["operation"], bad["status"], bad["error"], bad["key_id"]) == (
        "DescribeKey", 400, "NotFoundException", "")
    # Exactly one event per request: three calls, three events.
    assert len(requests) == 3, requests
    assert "logged? never" not in srv.stderr_text


METRICS_WAIT = 30.0  # the enclave sends its counters every 5 s


def scrape(url: str, method: str = "GET") -> tuple[int, str]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def sample(text: str, line_prefix: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(line_prefix + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_endpoint_counts_without_naming_keys_or_principals(make_server):
    srv = make_server("--metrics-listen", "127.0.0.1:0")
    url = next(line.split(" ", 1)[1] for line in srv.stdout_text.splitlines() if line.startswith("metrics: "))
    assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
    kms = srv.client()
    key_id = kms.create_key(Description="metrics")["KeyMetadata"]["KeyId"]
    alias = "alias/metrics-secret-name"
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    for _ in range(5):
        kms.encrypt(KeyId=alias, Plaintext=b"counted")
    try:
        kms.describe_key(KeyId="alias/absent-metrics")
    except kms.exceptions.NotFoundException:
        pass
    raw = RawClient(srv)
    body = b"{}"
    status, _, _ = raw.send(body, raw.headers("TrentService.NoSuchOperation", body))
    assert status == 400

    def encrypts():
        return sample(scrape(url)[1], 'kms_requests_total{operation="Encrypt",code=""}') or 0

    assert wait_until(lambda: encrypts() >= 5, METRICS_WAIT), scrape(url)[1]
    status, text = scrape(url)
    assert status == 200
    assert sample(text, 'kms_requests_total{operation="DescribeKey",code="NotFoundException"}') == 1
    assert sample(text, 'kms_requests_total{operation="Unknown",code="UnknownOperationException"}') == 1
    assert sample(text, 'kms_request_duration_seconds_count{operation="Encrypt"}') >= 5
    assert sample(text, 'kms_state{state="serving"}') == 1
    assert sample(text, "kms_tls_handshakes_total") >= 1
    assert sample(text, 'kms_cache_lookups_total{cache="aliases",result="hit"}') >= 4
    assert sample(text, 'kms_storage_requests_total{op="put"}') >= 2
    assert sample(text, "kms_relay_connections_total") >= 1
    # Counts only: no key id, alias, principal or access key reaches whoever scrapes.
    access_key, _ = srv.credentials()
    for name in (key_id, alias, "metrics-secret-name", access_key, "user/admin", "NoSuchOperation"):
        assert name not in text, name
    assert scrape(url.replace("/metrics", "/other"))[0] == 404
    assert scrape(url, "POST")[0] == 405
    # The Grafana dashboard in docs/ queries only metrics the endpoint serves.
    from kmstest import REPO_ROOT
    import re
    dashboard = json.loads((REPO_ROOT / "docs" / "grafana-dashboard.json").read_text())
    names = {n for p in dashboard["panels"] for t in p["targets"] for n in re.findall(r"kms_[a-z_]+", t["expr"])}
    assert len(names) >= 10, names
    served = set(re.findall(r"^kms_[a-z_]+", text, re.M))
    assert names <= served, names - served
