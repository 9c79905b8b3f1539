"""Live operations on a real daemon: sd_notify, manhole, socket activation, units."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.contract.servers import free_port
from tests.integration.daemon import TWISTD, Daemon, base_environ
from tests.integration.telnet import Telnet

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def daemons(tmp_path: Path):
    started: list[Daemon] = []

    def make(*args: str, env: dict | None = None) -> Daemon:
        d = Daemon(tmp_path, *args, env=env)
        started.append(d)
        return d

    yield make
    for d in started:
        d.kill()


# -- sd_notify ---------------------------------------------------------------------------


@pytest.fixture(params=["path", "abstract"])
def notify_socket(request, tmp_path: Path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        name = str(tmp_path / "notify")
        sock.bind(name)
    else:
        name = f"@cosmic-it-{os.getpid()}-{tmp_path.name}"
        sock.bind("\0" + name[1:])
    sock.settimeout(20)
    yield sock, name
    sock.close()


def next_message(sock: socket.socket, prefix: str) -> str:
    """The next datagram that is not a watchdog ping, unless a ping is asked for."""
    while True:
        message = sock.recv(4096).decode()
        if message.startswith(prefix):
            return message
        if not message.startswith("WATCHDOG=1"):
            raise AssertionError(f"expected {prefix!r}, got {message!r}")


def test_notify_ready_reload_watchdog_stopping_in_order(daemons, notify_socket) -> None:
    sock, name = notify_socket
    env = base_environ(NOTIFY_SOCKET=name, WATCHDOG_USEC="400000")
    d = daemons(env=env).start()
    assert next_message(sock, "READY=1") == "READY=1\nSTATUS=serving"
    assert next_message(sock, "WATCHDOG=1") == "WATCHDOG=1"
    d.signal(signal.SIGHUP)
    assert next_message(sock, "RELOADING=1").startswith("RELOADING=1\nMONOTONIC_USEC=")
    assert next_message(sock, "READY=1") == "READY=1\nSTATUS=reloaded"
    d.signal(signal.SIGTERM)
    assert next_message(sock, "STOPPING=1") == "STOPPING=1"
    assert d.stop() == 0


# -- manhole ------------------------------------------------------------------------------


def test_telnet_manhole_evaluates_against_the_live_world(daemons, tmp_path: Path) -> None:
    passwd = tmp_path / "manhole.passwd"
    passwd.write_text("ops:s3cret-words\n")
    port = free_port()
    d = daemons("--set", f"manhole.port={port}", "--set", f"manhole.passwd_file={passwd}")
    d.start()
    d.wait_for(lambda e: e.get("namespace") == "cosmic.manhole")

    refused = Telnet(port)
    refused.expect(b"Username: ")
    refused.line("ops")
    refused.expect(b"Password: ")
    refused.line("wrong")
    refused.expect(b"Username: ")  # asked again: no prompt was given

    session = Telnet(port)
    session.expect(b"Username: ")
    session.line("ops")
    session.expect(b"Password: ")
    session.line("s3cret-words")
    session.expect(b">>> ")
    # The prompt is redrawn as each key echoes: find the result line itself.
    session.line("('R', stats()['gardens'], loop.ticks > 0, settings.server.host)")
    session.expect(b"\n('R', ")
    assert session.expect(b")\r") == b"0, True, '127.0.0.1'"
    assert d.stop() == 0


def test_manhole_helpers_read_the_live_gardens_and_reload(daemons, tmp_path: Path) -> None:
    passwd = tmp_path / "manhole.passwd"
    passwd.write_text("ops:s3cret-words\n")
    config = tmp_path / "cosmic.conf"
    config.write_text("[game]\ntarget_tps = 60\n")
    port = free_port()
    d = daemons(
        "--config",
        str(config),
        "--set",
        f"manhole.port={port}",
        "--set",
        f"manhole.passwd_file={passwd}",
    )
    d.start()
    d.wait_for(lambda e: e.get("namespace") == "cosmic.manhole")
    credentials = {"username": "gardener", "password": "correct horse battery"}
    assert api(d, "POST", "auth/register", credentials)[0] == 201
    token = api(d, "POST", "auth/login", credentials)[1]["access_token"]
    status, _ = api(d, "POST", "celestial-bodies", {"kind": "asteroid", "name": "Ceres"}, token)
    assert status == 201  # the garden is loaded now, with its star and Ceres
    me = api(d, "GET", "players/me", token=token)[1]
    garden_id = me["garden_id"]

    session = Telnet(port)
    session.login("ops", "s3cret-words")
    # gardens() and garden() answer with Deferreds (the world may be mid-step):
    # keep their results, then read them once both have arrived.
    session.line("out = {}")
    session.line("gardens().addCallback(lambda r: out.__setitem__('all', r)) and None")
    session.line(f"garden({garden_id}).addCallback(lambda r: out.__setitem__('one', r)) and None")
    for _ in range(50):
        if session.evaluate("sorted(out)") == b"['all', 'one']":
            break
    else:
        raise AssertionError("gardens() / garden() never called back")
    listed = session.evaluate("[(g['id'], g['owner'], g['bodies']) for g in out['all']]")
    assert listed == f"[({garden_id}, {me['id']}, 2)]".encode()
    header = session.evaluate("out['one']['garden']['id'], out['one']['garden']['owner_id']")
    assert header == f"{garden_id}, {me['id']}".encode()  # evaluate() unpacks a tuple
    counts = session.evaluate("{k: n for k, n in sorted(out['one']['bodies'].items()) if n}")
    assert counts == b"{'asteroid': 1, 'star': 1}"

    config.write_text("[game]\ntarget_tps = 30\n")
    # reload() answers with a Deferred too: the files are read in a thread.
    session.line("reload().addCallback(lambda r: out.__setitem__('reload', r)) and None")
    for _ in range(50):
        if session.evaluate("'reload' in out") == b"True":
            break
        # Unlike the idle-moment reads above, a thread hop and file reads may
        # outlast a few round trips; up to 5 s in all.
        time.sleep(0.1)
    else:
        raise AssertionError("reload() never called back")
    assert session.evaluate("out['reload']") == (
        b"ReloadOutcome(applied=('game.target_tps',), needs_restart=(), problems=())"
    )
    assert session.evaluate("settings.game.target_tps, loop.rates['physics'].interval") == (
        f"30, {1 / 30!r}".encode()
    )
    assert d.stop() == 0


@pytest.mark.skipif(
    shutil.which("ssh-keygen") is None or shutil.which("ssh") is None,
    reason="OpenSSH client not installed",
)
def test_ssh_manhole_takes_keys_only(daemons, tmp_path: Path) -> None:
    for name in ("good", "bad"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / name)], check=True
        )
    (tmp_path / "authorized_keys").write_text((tmp_path / "good.pub").read_text())
    port = free_port()
    d = daemons(
        "--set",
        f"manhole.ssh_port={port}",
        "--set",
        f"manhole.authorized_keys={tmp_path / 'authorized_keys'}",
        "--set",
        f"manhole.ssh_host_key={tmp_path / 'host_key'}",
    )
    d.start()
    d.wait_for(lambda e: "SSH manhole" in e.get("message", ""), timeout=30)

    def ssh(key: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                "ssh",
                "-tt",
                "-i",
                str(tmp_path / key),
                "-p",
                str(port),
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "cosmic@127.0.0.1",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    good = ssh("good")
    try:
        good.stdin.write(b"('R', world.load())\r")
        good.stdin.flush()
        seen = b""
        while b"\n('R', " not in seen or not seen.endswith(b">>> "):
            chunk = good.stdout.read1(4096)
            assert chunk, f"ssh session ended: {seen!r}"
            seen += chunk
        assert b"\n('R', {'gardens': 0, 'bodies': 0})" in seen
    finally:
        good.kill()
        good.wait(10)
    bad = ssh("bad")
    _, errors = bad.communicate(b"world\r", timeout=30)
    assert bad.returncode == 255
    assert b"Permission denied (publickey)" in errors
    assert d.stop() == 0


def test_a_public_manhole_without_passwords_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            TWISTD,
            "-n",
            "--pidfile=",
            "cosmic",
            "--env",
            "test",
            "--set",
            "manhole.port=2222",
            "--set",
            "manhole.host=0.0.0.0",
        ],
        cwd=tmp_path,
        env=base_environ(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 78
    assert "manhole.host = '0.0.0.0'" in result.stderr


# -- socket activation ---------------------------------------------------------------------

LAUNCHER = """
import os, socket, sys
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(16)
print(sock.getsockname()[1], flush=True)
if sock.fileno() != 3:
    os.dup2(sock.fileno(), 3)
os.set_inheritable(3, True)  # sockets are close-on-exec in Python
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_FDNAMES"] = "cosmic.socket"  # as systemd 227+ does
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[1], sys.argv[1:])
"""


def test_socket_activation_through_a_passed_descriptor(tmp_path: Path) -> None:
    args = [
        TWISTD,
        "-n",
        "--pidfile=",
        "cosmic",
        "--env",
        "test",
        "--set",
        "server.endpoint=systemd:domain=INET:index=0",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, *args],
        cwd=tmp_path,
        env=base_environ(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(proc.stdout.readline())
        d = Daemon(tmp_path)
        d.proc, d.port = proc, port
        threading.Thread(target=d._read, daemon=True).start()
        listening = d.wait_for(lambda e: e.get("event") == "listening", timeout=30)
        assert listening["port"] == port  # the inherited socket, not a new one
        assert d.get("/health/live") == (200, {"status": "alive"})
        assert d.stop() == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


# -- the units ----------------------------------------------------------------------------


def verify_units(tmp_path: Path, service_text: str) -> subprocess.CompletedProcess[str]:
    root = tmp_path / "root"
    units = root / "etc" / "systemd" / "system"
    units.mkdir(parents=True, exist_ok=True)
    executable = root / "opt" / "cosmic" / ".venv" / "bin" / "twistd"
    executable.parent.mkdir(parents=True, exist_ok=True)
    executable.write_text("#!/bin/sh\n")
    executable.chmod(0o755)
    (root / "bin").mkdir(exist_ok=True)
    shutil.copy("/bin/kill", root / "bin" / "kill")
    (units / "cosmic.service").write_text(service_text)
    shutil.copy(ROOT / "systemd" / "cosmic.socket", units / "cosmic.socket")
    return subprocess.run(
        [
            "systemd-analyze",
            "verify",
            "--man=no",
            "--recursive-errors=no",
            f"--root={root}",
            "/etc/systemd/system/cosmic.service",
            "/etc/systemd/system/cosmic.socket",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_systemd_analyze_verify_passes_on_the_units(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    service = (ROOT / "systemd" / "cosmic.service").read_text()
    result = verify_units(tmp_path, service)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    broken = verify_units(tmp_path, service.replace("Type=notify", "Type=notfy"))
    assert broken.returncode != 0  # the check can fail
    for directive in (
        "Type=notify",
        "WatchdogSec=",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "ReadWritePaths=",
        "EnvironmentFile=",
        "Restart=on-failure",
        "User=cosmic",
        "--nodaemon --pidfile= cosmic",
    ):
        assert directive in service


# -- graceful shutdown ---------------------------------------------------------------------


def api(
    d: Daemon, method: str, path: str, body: dict | None = None, token: str | None = None
) -> tuple[int, dict]:
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        d.url(f"/api/v1/{path}"),
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "Content-Type": "application/json",
            **({"Authorization": f"Bearer {token}"} if token else {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_sigterm_while_playing_loses_nothing(daemons) -> None:
    # A long flush interval: everything below is unsaved when SIGTERM comes.
    args = ("--set", "database.flush_interval=600")
    d = daemons(*args).start()
    credentials = {"username": "stayer", "password": "correct horse battery"}
    assert api(d, "POST", "auth/register", credentials)[0] == 201
    token = api(d, "POST", "auth/login", credentials)[1]["access_token"]
    for name in ("Ceres", "Pallas", "Vesta"):
        status, _ = api(d, "POST", "celestial-bodies", {"kind": "asteroid", "name": name}, token)
        assert status == 201
    garden_id = api(d, "GET", "players/me", token=token)[1]["garden_id"]
    before = api(d, "GET", f"gardens/{garden_id}", token=token)[1]
    assert d.stop() == 0

    again = daemons(*args).start()
    token = api(again, "POST", "auth/login", credentials)[1]["access_token"]
    after = api(again, "GET", f"gardens/{garden_id}", token=token)[1]
    for column in ("ids", "kind", "name", "mass", "radius", "level"):
        assert after["bodies"][column] == before["bodies"][column], column
    assert after["bodies"]["name"][1:] == ["Ceres", "Pallas", "Vesta"]
    # The bodies kept moving between the read and the stop: a few ticks' worth.
    for a, b in zip(after["bodies"]["position"], before["bodies"]["position"], strict=True):
        assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 0.05
    spent = 500 - 3 * 100
    assert after["resources"]["cosmic_dust"] >= spent
    assert again.stop() == 0
