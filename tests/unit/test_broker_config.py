"""The generated Mosquitto configuration, password file and credentials."""

from __future__ import annotations

import base64
import hashlib
import stat
from pathlib import Path

from m2x.broker.files import BrokerFiles, ensure_credentials, password_line, read_credentials
from m2x.broker.mosquitto_conf import DEVICE_ACL, Listener, render_config, write_config


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_config_has_a_confined_device_listener_and_a_password_backend(tmp_path: Path) -> None:
    files = BrokerFiles.of(tmp_path)
    conf = render_config(files, Listener("0.0.0.0", 1883), Listener("127.0.0.1", 4321), "root",
                         1024, "WARNING")  # fmt: skip
    lines = conf.splitlines()
    assert "per_listener_settings true" in lines and "persistence false" in lines
    assert "user root" in lines  # never drop to `mosquitto`, who cannot read the data dir
    assert [line for line in lines if line.startswith("log_type")] == [
        "log_type error",
        "log_type warning",
    ]
    device = lines.index("listener 1883 0.0.0.0")
    backend = lines.index("listener 4321 127.0.0.1")
    assert device < backend
    assert lines[device + 1 : device + 3] == [
        "allow_anonymous true",
        f"acl_file {files.device_acl}",
    ]
    assert lines[backend + 1 : backend + 4] == [
        "allow_anonymous false", f"password_file {files.passwords}",
        f"acl_file {files.backend_acl}",
    ]  # fmt: skip
    assert "listener 1883\n" in render_config(files, Listener("::", 1883), Listener(
        "127.0.0.1", 1), "m2x", 1)  # fmt: skip


def test_device_acl_confines_each_user_name_to_its_topics() -> None:
    rules = [line for line in DEVICE_ACL.splitlines() if not line.startswith("#")]
    assert rules == [
        "pattern write m2x/%u/requests",
        "pattern read m2x/%u/responses",
        "pattern read m2x/%u/commands",
    ]


def test_password_line_is_mosquitto_pbkdf2() -> None:
    line = password_line("m2x-adapter", "secret", salt=b"0123456789ab")
    user, _, entry = line.strip().partition(":")
    _, scheme, iterations, salt, digest = entry.split("$")
    assert (user, scheme, iterations) == ("m2x-adapter", "7", "101")
    expected = hashlib.pbkdf2_hmac("sha512", b"secret", b"0123456789ab", 101)
    assert base64.b64decode(salt) == b"0123456789ab"
    assert base64.b64decode(digest) == expected


def test_credentials_are_generated_once_and_private(tmp_path: Path) -> None:
    files = BrokerFiles.of(tmp_path)
    assert read_credentials(files) is None
    first = ensure_credentials(files)
    assert ensure_credentials(files) == first == read_credentials(files)
    assert len(first.password) >= 24 and first.share_group.startswith("m2x-")
    assert mode(files.credentials) == 0o600 and mode(files.directory) == 0o700

    write_config(files, first, Listener("0.0.0.0", 1883), Listener("127.0.0.1", 4321), "root",
                 1024)  # fmt: skip
    for path in (files.conf, files.passwords, files.device_acl, files.backend_acl):
        assert mode(path) == 0o600, path
    assert files.passwords.read_text().startswith(f"{first.user}:$7$101$")
    assert files.backend_acl.read_text().splitlines()[:2] == [
        f"user {first.user}",
        "topic readwrite m2x/#",
    ]
    assert first.password not in files.conf.read_text()
