"""A real OpenSSH server on 127.0.0.1 for the DVC SSH-remote round trip.

Started with its own config (key auth only, ``internal-sftp``, which dvc-ssh
needs) on a free high port; stopped when the context exits. Needs root and
Debian's openssh-server (``.ci/run`` installs it).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"


@dataclass(frozen=True)
class SshServer:
    host: str
    port: int
    user: str
    keyfile: Path


def sshd_unavailable_reason() -> str | None:
    if not Path(SSHD).exists():
        return f"{SSHD} missing (apt-get install openssh-server; .ci/run does)"
    if not shutil.which("ssh-keygen"):
        return "ssh-keygen missing"
    if os.geteuid() != 0:
        return "sshd with its own config needs root here"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited with {proc.returncode}: {proc.stderr.read().decode() if proc.stderr else ''}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"sshd did not listen on 127.0.0.1:{port} within {timeout}s")


@contextlib.contextmanager
def running_sshd(workdir: Path) -> Iterator[SshServer]:
    workdir.mkdir(parents=True, exist_ok=True)
    hostkey = workdir / "host_ed25519"
    userkey = workdir / "user_ed25519"
    for key in (hostkey, userkey):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    auth = workdir / "authorized_keys"
    auth.write_text((userkey.with_suffix(".pub")).read_text())
    auth.chmod(0o600)
    port = _free_port()
    config = workdir / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {hostkey}",
                f"AuthorizedKeysFile {auth}",
                f"PidFile {workdir / 'sshd.pid'}",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "PermitRootLogin prohibit-password",
                "StrictModes no",
                "UsePAM no",
                "Subsystem sftp internal-sftp",
                "LogLevel ERROR",
                "",
            ]
        )
    )
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE)
    try:
        _wait_port(port, proc)
        yield SshServer(host="127.0.0.1", port=port, user=getpass.getuser(), keyfile=userkey)
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()
