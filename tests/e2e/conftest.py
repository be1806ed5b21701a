"""Fixtures for the enclave-kms end-to-end suite (see kmstest.py for the helpers)."""

from __future__ import annotations

import os

import pytest

from kmstest import KmsServer, host_binary, scrub_aws_environment

# Nothing from the machine's AWS setup (AWS_PROFILE, AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL,
# ~/.aws via AWS_CONFIG_FILE, ...) may influence boto3 inside this test process.
_clean = scrub_aws_environment(os.environ)
for _name in list(os.environ):
    if _name not in _clean:
        del os.environ[_name]
os.environ.update(_clean)


@pytest.fixture(scope="session")
def host_bin():
    path = host_binary()
    if not path.exists():
        pytest.fail(
            f"kms-host binary not found at {path}; run `cargo build --workspace --bins` "
            f"or set KMS_HOST_BIN",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory, host_bin):
    """A server shared by the tests of one module (for tests whose state doesn't matter)."""
    srv = KmsServer(tmp_path_factory.mktemp("kms-module"), binary=host_bin)
    srv.start()
    yield srv
    srv.close()


@pytest.fixture
def fresh_server(tmp_path, host_bin):
    """A server of this test alone, over an empty data dir (for restart/shutdown tests)."""
    srv = KmsServer(tmp_path / "data", binary=host_bin)
    srv.start()
    yield srv
    srv.close()


@pytest.fixture
def make_server(tmp_path_factory, host_bin):
    """Factory: make_server(*extra_args) starts a server over a new data dir."""
    started = []

    def factory(*extra_args, start=True):
        srv = KmsServer(tmp_path_factory.mktemp("kms"), extra_args=extra_args, binary=host_bin)
        started.append(srv)
        if start:
            srv.start()
        return srv

    yield factory
    errors = []
    for srv in started:
        try:
            srv.close()
        except BaseException as exc:  # keep cleaning the others up, report afterwards
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture(scope="module")
def kms(server):
    """boto3 KMS client of the module server."""
    return server.client()


@pytest.fixture(scope="module")
def kms_raw(server):
    """boto3 KMS client without client-side parameter validation, to reach server errors."""
    return server.client(parameter_validation=False)
