"""Host data is validated once per run, before any host is contacted, on both paths users type:
``pyinfra inventory.py deploys/*.py`` and ``fleetforge plan|probe|verify inventory.py``.

"Contacted" is measured, not assumed: every host of these inventories points at one TCP listener
of the test, which counts the connections it accepts.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from pyinfra.api import Inventory

from fleetforge.inventory import group
from fleetforge.settings import SettingsError, inventory_settings

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


class Listener:
    """A TCP port on 127.0.0.1 that accepts and counts connections (and closes them)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def listener():
    lst = Listener()
    yield lst
    lst.close()


def write_inventory(path: Path, port: int, hosts: int, bad: dict[int, dict]) -> Path:
    lines = [
        "from fleetforge.inventory import group",
        f"hosts = [(f'vps-{{i}}', {{'ssh_hostname': '127.0.0.1', 'ssh_port': {port}}}) for i in range({hosts})]",
    ]
    lines += [f"hosts[{i}][1].update({data!r})" for i, data in bad.items()]
    lines.append("fleet = group(hosts, {'ssh_user': 'debian', 'ssh_connect_timeout': 2})")
    path.write_text("\n".join(lines) + "\n")
    return path


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


BAD = {
    3: {"zram_sise": "1G"},
    7: {"nix_settings": {"max-jobs": "4\ntrusted-users = *"}},
    11: {"ssh_user": "-oProxyCommand=touch /tmp/x"},
}


@pytest.mark.parametrize("deploy", ["vps.py", "disk_layout.py", "iso_bundle.py", "nix_cache.py", "disko.py"])
def test_pyinfra_cli_refuses_bad_data_before_connecting(tmp_path, listener, deploy):
    inv = write_inventory(tmp_path / "inventory.py", listener.port, 20, BAD)
    proc = run(["pyinfra", "-y", str(inv), str(ROOT / "deploys" / deploy)], tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "no host was contacted" in out
    assert "host vps-3: zram_sise: unknown key" in out
    assert (
        "host vps-7: nix_settings.max-jobs: expected a nix.conf value on one line, got '4\\ntrusted-users = *'" in out
    )
    assert "host vps-11: ssh_user:" in out
    assert "Connecting to hosts" not in out
    assert listener.accepted == 0


def test_fleetforge_cli_refuses_bad_data_before_connecting(tmp_path, listener):
    inv = write_inventory(tmp_path / "inventory.py", listener.port, 20, {5: {"zram_size": "lots"}})
    for verb in ("plan", "probe", "verify"):
        proc = run(["fleetforge", verb, str(inv), "--limit", "vps-1"], tmp_path)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 3, (verb, out)
        # the whole inventory is validated, as on the pyinfra path: vps-5 is outside --limit
        assert "host vps-5: zram_size: expected a size" in out, (verb, out)
        assert "Traceback" not in out
    assert listener.accepted == 0


def test_valid_data_still_connects(tmp_path, listener):
    """The check lets a good inventory through to pyinfra's connect stage (the listener is no SSH
    server, so the hosts then fail to connect; what matters is that they were contacted)."""
    inv = write_inventory(tmp_path / "inventory.py", listener.port, 3, {})
    proc = run(["pyinfra", "-y", str(inv), str(ROOT / "deploys" / "vps.py")], tmp_path)
    assert "no host was contacted" not in proc.stdout + proc.stderr
    assert listener.accepted >= 3


def test_inventory_is_validated_once_and_failures_are_cached(monkeypatch):
    calls = []
    import fleetforge.settings as settings_module

    real = settings_module.validate_hosts

    def counting(hosts):
        calls.append(len(hosts))
        return real(hosts)

    monkeypatch.setattr(settings_module, "validate_hosts", counting)
    names, data = group([f"h{i}" for i in range(50)] + [("bad", {"swappiness": 500})])
    inventory = Inventory((names, data))
    for _ in range(51):  # every host's prepare asks
        with pytest.raises(SettingsError) as err:
            inventory_settings(inventory)
    assert calls == [51]
    assert [(h, k) for h, k, _ in err.value.problems] == [("bad", "swappiness")]
    good = Inventory(group([f"h{i}" for i in range(10)]))
    assert inventory_settings(good) is inventory_settings(good)
    assert calls == [51, 10]
