"""Deployment files: the systemd units in deploy/systemd and scripts/reproducible.

The units are checked with `systemd-analyze verify` (skipped, with the reason, where systemd is not installed), for the
hardening docs/deploy-nitro.md promises, and against the real `kms-host`: the production unit's command line with the
annotated configuration file it names (docs/kms-host.toml) must be accepted by `kms-host run`, and the development
unit's command must start a service that answers.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from kmstest import REPO_ROOT, KmsServer, scrub_aws_environment

UNITS = REPO_ROOT / "deploy" / "systemd"
PRODUCTION = UNITS / "kms-host.service"
DEVELOPMENT = UNITS / "kms-host-dev.service"
CONFIG_EXAMPLE = REPO_ROOT / "docs" / "kms-host.toml"
INSTALLED_CONFIG = "/etc/enclave-kms/kms-host.toml"
INSTALLED_HOST = "/usr/local/bin/kms-host"
REPRODUCIBLE = REPO_ROOT / "scripts" / "reproducible"


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> values (in order), with backslash continuations joined, as systemd reads a unit."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        if not pending and raw.lstrip().startswith(("#", ";")):
            continue
        if raw.endswith("\\"):
            pending += raw[:-1] + " "
            continue
        logical.append(pending + raw)
        pending = ""
    assert not pending, f"{path}: dangling continuation"
    for line in logical:
        line = line.strip()
        if not line:
            continue
        header = re.fullmatch(r"\[([A-Za-z]+)\]", line)
        if header:
            current = sections.setdefault(header.group(1), {})
            continue
        assert current is not None, f"{path}: {line!r} outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"{path}: not KEY=VALUE: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def one(unit: dict, section: str, key: str) -> str:
    values = unit.get(section, {}).get(key)
    assert values, f"[{section}] {key}= missing"
    return values[-1]


def flag_value(argv: list[str], flag: str) -> str:
    assert flag in argv, f"{flag} missing from {argv}"
    return argv[argv.index(flag) + 1]


# ---- systemd-analyze verify ------------------------------------------------------------------------------------


@pytest.mark.parametrize("unit", [PRODUCTION, DEVELOPMENT], ids=lambda p: p.name)
def test_unit_passes_systemd_analyze_verify(unit, tmp_path, host_bin):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze not installed (Debian package `systemd`): the unit files are not verified here")
    # The installed path does not exist on this machine: point ExecStart at the binary under test (verify checks that
    # the command is executable). The allocator unit the production unit requires comes from the
    # aws-nitro-enclaves-cli package; a stand-in beside the unit lets verify resolve the dependency.
    text = unit.read_text()
    assert INSTALLED_HOST in text
    copy = tmp_path / unit.name
    copy.write_text(text.replace(INSTALLED_HOST, str(host_bin)))
    (tmp_path / "nitro-enclaves-allocator.service").write_text(
        "[Unit]\nDescription=stand-in\n[Service]\nType=oneshot\nExecStart=/bin/true\n"
    )
    result = subprocess.run(
        [tool, "verify", "--man=no", str(copy)], capture_output=True, text=True, timeout=60
    )
    ours = [
        line for line in (result.stdout + result.stderr).splitlines()
        if unit.name in line or str(tmp_path) in line
    ]
    assert result.returncode == 0 and not ours, (
        f"systemd-analyze verify {unit.name}: exit {result.returncode}\n{result.stdout}{result.stderr}"
    )


# ---- what the units promise ------------------------------------------------------------------------------------


HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "Restart": "on-failure",
    "UMask": "0077",
}


@pytest.mark.parametrize("unit", [PRODUCTION, DEVELOPMENT], ids=lambda p: p.name)
def test_unit_is_hardened(unit):
    u = parse_unit(unit)
    for key, want in HARDENING.items():
        assert one(u, "Service", key) == want, f"{unit.name}: {key}= should be {want!r}"
    argv = shlex.split(one(u, "Service", "ExecStart"))
    data_dir = flag_value(argv, "--data-dir")
    # The data directory is the unit's state directory (created by systemd, mode 0700), the one place it may write.
    assert data_dir == "/var/lib/" + one(u, "Service", "StateDirectory")
    assert one(u, "Service", "StateDirectoryMode") == "0700"
    if unit == PRODUCTION:
        assert data_dir in one(u, "Service", "ReadWritePaths").split()
        assert one(u, "Service", "User") not in ("", "root")
        assert "ne" in one(u, "Service", "SupplementaryGroups").split()
        assert one(u, "Service", "DevicePolicy") == "closed"
        # A unit that restarts on failure must never initialise: a start that finds no domain key has to fail.
        assert "--init" not in argv
    else:
        assert one(u, "Service", "DynamicUser") == "yes"
        assert one(u, "Service", "PrivateDevices") == "yes"


# ---- the units' commands against the real kms-host ----------------------------------------------------------------


@pytest.mark.parametrize("custody", ["example", "quorum"])
def test_production_unit_command_is_accepted_by_kms_host_run(custody, host_bin, tmp_path):
    if Path("/dev/nitro_enclaves").exists():
        pytest.skip("this machine is a Nitro Enclaves parent: the command would really start an enclave")
    u = parse_unit(PRODUCTION)
    assert one(u, "Service", "Type") == "notify"
    argv = shlex.split(one(u, "Service", "ExecStart"))
    assert argv[0] == INSTALLED_HOST and argv[1] == "run"
    assert flag_value(argv, "--config") == INSTALLED_CONFIG
    config = CONFIG_EXAMPLE.read_text()
    if custody == "quorum":  # the alternative the example's comment gives: remove the upstream keys, domain-key quorum
        config = "\n".join(
            line for line in config.splitlines() if not line.startswith(("upstream-", "domain-key"))
        ) + '\ndomain-key = "quorum"\n'
    # The file the unit names, with the upstream credentials file (read before kms-host looks for the device) and the
    # data directory (never /var here) pointed into the test's directory.
    creds = tmp_path / "upstream-credentials"
    creds.write_text("[default]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG\n")
    conf = tmp_path / "kms-host.toml"
    conf.write_text(config.replace("/etc/enclave-kms/upstream-credentials", str(creds)))
    argv = [str(host_bin), *argv[1:]]
    argv[argv.index("--config") + 1] = str(conf)
    argv[argv.index("--data-dir") + 1] = str(tmp_path / "data")
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, env=scrub_aws_environment(os.environ),
        stdin=subprocess.DEVNULL,
    )
    # A key or value kms-host does not accept is a usage error (exit 2). Accepted, the command gets as far as looking
    # for the Nitro Enclaves device and refuses to start without it.
    assert result.returncode == 1, f"exit {result.returncode}: {result.stderr}"
    assert "/dev/nitro_enclaves not found" in result.stderr, result.stderr


def test_development_unit_command_starts_a_service(host_bin, tmp_path):
    u = parse_unit(DEVELOPMENT)
    argv = shlex.split(one(u, "Service", "ExecStart"))
    assert argv[0] == INSTALLED_HOST and argv[1] == "dev"
    rest = argv[2:]
    # KmsServer supplies its own data directory and a free port; every other argument is the unit's.
    for flag in ("--data-dir", "--listen"):
        i = rest.index(flag)
        del rest[i:i + 2]
    srv = KmsServer(tmp_path / "data", extra_args=rest, binary=host_bin)
    try:
        srv.start()
        kms = srv.client()
        key = kms.create_key(Description="unit")["KeyMetadata"]["KeyId"]
        blob = kms.encrypt(KeyId=key, Plaintext=b"systemd")["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"systemd"
    finally:
        srv.close()


# ---- scripts/reproducible ---------------------------------------------------------------------------------------


def run_reproducible(*args, timeout=60):
    return subprocess.run(
        [str(REPRODUCIBLE), *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--bogus"], "unknown argument: --bogus"),
        (["--package", "kms-shared"], "name the artifact: --bin NAME or --lib"),
        (["--jobs", "many"], "--jobs must be a positive number"),
        (["--package"], "--package needs a value"),
    ],
)
def test_reproducible_refuses_bad_arguments(args, message):
    result = run_reproducible(*args)
    assert result.returncode == 2, result
    assert message in result.stderr, result.stderr


def test_reproducible_refuses_a_non_empty_work_dir(tmp_path):
    (tmp_path / "left-over").write_text("x")
    result = run_reproducible("--package", "kms-shared", "--lib", "--work-dir", str(tmp_path))
    assert result.returncode == 2, result
    assert "is not empty" in result.stderr


@pytest.mark.skipif(
    os.environ.get("KMS_SLOW_TESTS") != "1",
    reason="two cold release builds (about a minute on 2 cores); set KMS_SLOW_TESTS=1 to run",
)
def test_reproducible_small_crate(tmp_path):
    result = run_reproducible("--package", "kms-shared", "--lib", "--work-dir", str(tmp_path / "w"), timeout=1800)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    digests = re.findall(r"^code384 [ab]: +([0-9a-f]{96}) ", result.stdout, re.M)
    assert len(digests) == 2 and digests[0] == digests[1], result.stdout
    assert "reproducible: yes" in result.stdout
