"""Real ISO 9660 images (xorriso) and a Range-capable HTTP server (subprocess) for the bundle tests."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def make_iso(path: Path, size_bytes: int, seed: str) -> Path:
    """An ISO 9660 image (xorriso) holding one file of ``size_bytes`` pseudo-random bytes."""
    src = path.parent / f"{path.name}.src"
    src.mkdir(parents=True, exist_ok=True)
    block = hashlib.sha512(seed.encode()).digest()
    (src / "payload.bin").write_bytes((block * (size_bytes // len(block) + 1))[:size_bytes])
    subprocess.run(
        ["xorriso", "-as", "mkisofs", "-quiet", "-V", seed[:16].upper(), "-o", str(path), str(src)],
        check=True,
        capture_output=True,
    )
    assert path.read_bytes()[0x8001:0x8006] == b"CD001"  # an ISO 9660 primary volume descriptor
    return path


def digests(path: Path) -> dict:
    data = path.read_bytes()
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "sha512": hashlib.sha512(data).hexdigest(),
        "blake2b": hashlib.blake2b(data).hexdigest(),
        "size": len(data),
    }


class HttpServer:
    def __init__(self, root: Path, log: Path, cut_after: int | None = None):
        argv = [sys.executable, "-m", "tests.bundle.httpserver", str(root), str(log)]
        if cut_after is not None:
            argv += ["--cut-after", str(cut_after)]
        self.log = log
        self.proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}"

    def requests(self, path: str) -> list[tuple[int, int, int, int]]:
        """``(status, first, last, sent)`` of every response for ``path``."""
        if not self.log.exists():
            return []
        rows = [line.split() for line in self.log.read_text().splitlines()]
        return [tuple(int(x) for x in row[1:]) for row in rows if row[0] == path]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def serve(tmp_path):
    servers = []

    def start(root: Path, cut_after: int | None = None) -> HttpServer:
        server = HttpServer(root, tmp_path / f"http-{len(servers)}.log", cut_after)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def manifest_text(entries: list[dict]) -> str:
    lines = []
    for e in entries:
        lines.append("[[iso]]")
        lines.extend(f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in e.items() if v is not None)
    return "\n".join(lines).replace("'", '"') + "\n"


os.environ.setdefault("COLUMNS", "120")
