"""Shared helpers for the enclave-kms end-to-end suite.

`KmsServer` runs `kms-host dev` against a data directory, waits for its ready line,
captures its output (stdout + stderr, which carries the enclave's forwarded log lines)
and hands out clients configured purely from the files the host writes (DIR/env,
DIR/ca.pem, DIR/credentials).
"""

from __future__ import annotations

import base64
import configparser
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import boto3
import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

REPO_ROOT = Path(__file__).resolve().parents[2]

READY_PREFIX = b"ready: https://"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
CLI_TIMEOUT = 120.0

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "000000000000"

# Variables that would let the developer's / CI machine's AWS setup leak into the tests.
_LEAKY_PREFIXES = ("AWS_",)


def scrub_aws_environment(environ: dict) -> dict:
    """A copy of `environ` without any AWS_* variable, with IMDS lookups disabled."""
    clean = {k: v for k, v in environ.items() if not k.startswith(_LEAKY_PREFIXES)}
    clean["AWS_EC2_METADATA_DISABLED"] = "true"
    return clean


def host_binary() -> Path:
    """The kms-host binary under test: $KMS_HOST_BIN, else <target>/debug/kms-host."""
    explicit = os.environ.get("KMS_HOST_BIN")
    if explicit:
        path = Path(explicit)
        if not path.is_absolute():
            path = REPO_ROOT / path
        return path
    target = os.environ.get("CARGO_TARGET_DIR")
    target_dir = Path(target) if target else REPO_ROOT / "target"
    if not target_dir.is_absolute():
        target_dir = REPO_ROOT / target_dir
    return target_dir / "debug" / "kms-host"


def aws_cli() -> Path:
    """The `aws` entry point installed in the same virtualenv as the running python."""
    path = Path(sys.executable).parent / "aws"
    if not path.exists():
        pytest.fail(
            f"AWS CLI not found at {path}; install tests/e2e/requirements.txt into the venv "
            f"that runs pytest (scripts/test does this)",
            pytrace=False,
        )
    return path


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def key_arn(region: str, account: str, key_id: str) -> str:
    return f"arn:aws:kms:{region}:{account}:key/{key_id}"


def alias_arn(region: str, account: str, alias_name: str) -> str:
    assert alias_name.startswith("alias/")
    return f"arn:aws:kms:{region}:{account}:{alias_name}"


def assert_client_error(code: str, call, *args, **kwargs) -> dict:
    """Run a boto3 call that must fail with the given KMS error code and HTTP 400."""
    try:
        result = call(*args, **kwargs)
    except ClientError as exc:
        response = exc.response
    else:
        meta = result.pop("ResponseMetadata", None) if isinstance(result, dict) else None
        pytest.fail(
            f"expected {code}, but the call succeeded: {result!r} (metadata {meta!r})",
            pytrace=False,
        )
    error = response.get("Error", {})
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    assert error.get("Code") == code, f"expected error {code}, got {error!r} (HTTP {status})"
    assert status == 400, f"expected HTTP 400 for {code}, got {status}: {error!r}"
    return response


def parse_env_file(path: Path) -> dict:
    """Parse the `export NAME=VALUE` lines of DIR/env (shell quoting allowed)."""
    values = {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        words = shlex.split(stripped)
        assert len(words) == 2 and words[0] == "export" and "=" in words[1], (
            f"{path}:{lineno}: expected `export NAME=VALUE`, got {line!r}"
        )
        name, _, value = words[1].partition("=")
        values[name] = value
    return values


def read_credentials(path: Path) -> tuple[str, str]:
    parser = configparser.ConfigParser()
    assert parser.read(path), f"cannot read credentials file {path}"
    assert parser.has_section("default"), f"{path} has no [default] profile: {parser.sections()}"
    section = parser["default"]
    return section["aws_access_key_id"], section["aws_secret_access_key"]


def _proc_stat(pid: int):
    """(state, ppid) of a process from /proc, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm is in parentheses and may contain spaces: split after the last ')'.
    fields = raw[raw.rfind(")") + 2 :].split()
    return fields[0], int(fields[1])


def pid_alive(pid: int) -> bool:
    stat = _proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def descendants(root_pid: int) -> list[tuple[int, str]]:
    """All live descendants of root_pid as (pid, cmdline)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _proc_stat(int(entry.name))
        if stat is not None:
            children.setdefault(stat[1], []).append(int(entry.name))
    found = []
    queue = list(children.get(root_pid, []))
    while queue:
        pid = queue.pop()
        if not pid_alive(pid):
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
                "utf-8", "replace"
            )
        except OSError:
            cmdline = "?"
        found.append((pid, cmdline.strip()))
        queue.extend(children.get(pid, []))
    return found


def wait_until(predicate, timeout: float, interval: float = 0.05) -> bool:
    """Bounded polling: True as soon as predicate() holds, False after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


class KmsServer:
    """One `kms-host dev` process (restartable) over a fixed data directory."""

    def __init__(self, data_dir: Path, extra_args=(), binary: Path | None = None,
                 extra_env: dict | None = None):
        self.data_dir = Path(data_dir).resolve()
        self.extra_args = [str(a) for a in extra_args]
        self.extra_env = dict(extra_env or {})
        self.binary = Path(binary) if binary else host_binary()
        self.proc: subprocess.Popen | None = None
        self.endpoint: str | None = None
        self.env_file: dict = {}
        self.env: dict = {}
        self.last_exit_code: int | None = None
        self.last_children: list[tuple[int, str]] = []
        self._lock = threading.Lock()
        self._log = bytearray()  # stdout + stderr of every run, interleaved by line
        self._stdout = bytearray()
        self._stderr = bytearray()
        self._threads: list[threading.Thread] = []

    # ---- process control -------------------------------------------------------------

    @property
    def pid(self) -> int:
        assert self.proc is not None, "server is not running"
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def command(self) -> list[str]:
        return [
            str(self.binary),
            "dev",
            "--data-dir",
            str(self.data_dir),
            "--listen",
            "127.0.0.1:0",
            *self.extra_args,
        ]

    def start(self, timeout: float = READY_TIMEOUT) -> "KmsServer":
        assert self.proc is None, "server already started"
        if not self.binary.exists():
            pytest.fail(
                f"kms-host binary not found at {self.binary} "
                f"(build with `cargo build --workspace --bins` or set KMS_HOST_BIN)",
                pytrace=False,
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ready = threading.Event()
        found: dict = {}
        stderr_mark = len(self._stderr)
        host_env = scrub_aws_environment(os.environ)
        host_env.setdefault("RUST_BACKTRACE", "1")
        host_env.update(self.extra_env)
        self.proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=host_env,
            start_new_session=True,  # its own process group, so cleanup can reach the enclave
        )

        def pump(stream, own, is_stdout):
            for line in iter(stream.readline, b""):
                with self._lock:
                    own.extend(line)
                    self._log.extend(line)
                if is_stdout and not ready.is_set() and line.startswith(READY_PREFIX):
                    found["line"] = line.decode("utf-8", "replace").strip()
                    ready.set()
            stream.close()

        self._threads = [
            threading.Thread(target=pump, args=(self.proc.stdout, self._stdout, True), daemon=True),
            threading.Thread(target=pump, args=(self.proc.stderr, self._stderr, False), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

        deadline = time.monotonic() + timeout
        while not ready.wait(0.05):
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self._join_readers(2.0)
                self.proc = None
                pytest.fail(
                    f"kms-host exited with code {code} before printing its ready line\n"
                    f"command: {shlex.join(self.command())}\n"
                    f"stdout:\n{self.stdout_text}\nstderr:\n{self._stderr[stderr_mark:].decode('utf-8', 'replace')}",
                    pytrace=False,
                )
            if time.monotonic() >= deadline:
                self.kill()
                pytest.fail(
                    f"kms-host printed no `ready: https://` line within {timeout:.0f}s\n"
                    f"command: {shlex.join(self.command())}\n"
                    f"stdout:\n{self.stdout_text}\nstderr:\n{self._stderr[stderr_mark:].decode('utf-8', 'replace')}",
                    pytrace=False,
                )

        self.endpoint = found["line"][len("ready: ") :].split()[0]
        env_path = self.data_dir / "env"
        if not env_path.exists():
            self.kill()
            pytest.fail(f"kms-host is ready but {env_path} does not exist", pytrace=False)
        self.env_file = parse_env_file(env_path)
        env = scrub_aws_environment(os.environ)
        env.update(self.env_file)
        env["AWS_CONFIG_FILE"] = str(self.data_dir.parent / f"{self.data_dir.name}.no-aws-config")
        env.pop("AWS_PROFILE", None)
        self.env = env
        return self

    def _join_readers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Signal the host, require exit code 0 within `timeout` seconds."""
        assert self.proc is not None, "server is not running"
        self.last_children = descendants(self.proc.pid)
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(
                f"kms-host did not exit within {timeout:.0f}s of signal {sig}\nstderr:\n{self.stderr_text[-4000:]}",
                pytrace=False,
            )
        self._join_readers(5.0)
        self.proc = None
        self.last_exit_code = code
        assert code == 0, (
            f"kms-host exited with code {code} after signal {signal.Signals(sig).name}, expected 0\n"
            f"stderr (tail):\n{self.stderr_text[-4000:]}"
        )
        return code

    def restart(self) -> "KmsServer":
        self.stop()
        return self.start()

    def kill(self) -> None:
        """Hard cleanup: SIGKILL the process group this server was started in."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._join_readers(2.0)
        self.proc = None

    def close(self) -> None:
        """Fixture teardown: graceful stop (asserting exit 0); always leaves nothing running."""
        if self.proc is None:
            return
        try:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.kill()
                pytest.fail(
                    f"kms-host died during the tests with exit code {code}\nstderr (tail):\n"
                    f"{self.stderr_text[-4000:]}",
                    pytrace=False,
                )
            self.stop()
        finally:
            self.kill()

    # ---- captured output -------------------------------------------------------------

    @property
    def log_bytes(self) -> bytes:
        with self._lock:
            return bytes(self._log)

    @property
    def stdout_text(self) -> str:
        with self._lock:
            return self._stdout.decode("utf-8", "replace")

    @property
    def stderr_text(self) -> str:
        with self._lock:
            return self._stderr.decode("utf-8", "replace")

    # ---- configuration read from the data dir ----------------------------------------

    @property
    def region(self) -> str:
        return self.env_file.get("AWS_DEFAULT_REGION", DEFAULT_REGION)

    @property
    def ca_path(self) -> str:
        return self.env_file["AWS_CA_BUNDLE"]

    @property
    def credentials_path(self) -> str:
        return self.env_file["AWS_SHARED_CREDENTIALS_FILE"]

    def credentials(self) -> tuple[str, str]:
        return read_credentials(Path(self.credentials_path))

    def host_port(self) -> tuple[str, int]:
        rest = self.endpoint[len("https://") :].rstrip("/")
        host, _, port = rest.rpartition(":")
        return host.strip("[]"), int(port)

    # ---- clients ---------------------------------------------------------------------

    def botocore_session(self) -> botocore.session.Session:
        session = botocore.session.Session()
        session.set_config_variable("config_file", self.env["AWS_CONFIG_FILE"])
        session.set_config_variable("credentials_file", self.credentials_path)
        session.set_config_variable("profile", "default")
        session.set_config_variable("region", self.region)
        return session

    def client(self, parameter_validation: bool = True, region: str | None = None):
        """boto3 KMS client: endpoint from DIR/env, CA from ca.pem, keys from DIR/credentials."""
        bsession = self.botocore_session()
        creds = bsession.get_credentials()
        assert creds is not None, f"boto3 found no credentials in {self.credentials_path}"
        assert creds.method == "shared-credentials-file", (
            f"credentials came from {creds.method}, expected the shared credentials file"
        )
        session = boto3.Session(botocore_session=bsession, region_name=region or self.region)
        return session.client(
            "kms",
            endpoint_url=self.env_file["AWS_ENDPOINT_URL_KMS"],
            verify=self.ca_path,
            config=Config(
                retries={"total_max_attempts": 1},
                connect_timeout=10,
                read_timeout=60,
                parameter_validation=parameter_validation,
            ),
        )

    def aws(self, *args, output: str | None = "json", timeout: float = CLI_TIMEOUT):
        """Run `aws kms ARGS --output json` with self.env.

        Returns (returncode, parsed JSON or None, stderr). With output="text" (or any
        other format) the raw stdout string is returned instead of parsed JSON.
        """
        cmd = [str(aws_cli()), "kms", *[str(a) for a in args]]
        if output is not None:
            cmd += ["--output", output]
        try:
            proc = subprocess.run(
                cmd, env=self.env, capture_output=True, text=True, timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"`{shlex.join(cmd)}` timed out after {timeout}s: {exc.stderr!r}",
                        pytrace=False)
        if output != "json":
            return proc.returncode, proc.stdout, proc.stderr
        parsed = None
        if proc.returncode == 0 and proc.stdout.strip():
            try:
                parsed = json.loads(proc.stdout)
            except json.JSONDecodeError:
                pytest.fail(f"`{shlex.join(cmd)}` printed non-JSON output: {proc.stdout!r}",
                            pytrace=False)
        return proc.returncode, parsed, proc.stderr

    def aws_ok(self, *args, output: str | None = "json"):
        """Like aws(), but require exit code 0 and return only the output."""
        code, out, err = self.aws(*args, output=output)
        assert code == 0, f"`aws kms {' '.join(map(str, args))}` exited {code}: {err}"
        return out
