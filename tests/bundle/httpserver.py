"""A small HTTP file server with ``Range`` support for the bundle tests, run as a subprocess:

    python -m tests.bundle.httpserver ROOT LOG [--cut-after BYTES]

Prints the port on its first line. Every response appends ``path status first last sent`` to
LOG (``sent``: body bytes actually written). ``--cut-after N``: the first response of each
file stops after N body bytes and drops the connection (an interrupted download).
"""

import argparse
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def make_handler(root: Path, log: Path, cut_after: int | None):
    cut_done: set[str] = set()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def do_GET(self):  # noqa: N802
            path = root / self.path.lstrip("/")
            if not path.is_file():
                self.send_error(404)
                return
            size = path.stat().st_size
            first, last, status = 0, size - 1, 200
            header = self.headers.get("Range")
            if header and header.startswith("bytes="):
                start, _, end = header[6:].partition("-")
                first = int(start)
                last = int(end) if end else size - 1
                if first >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.end_headers()
                    return
                status = 206
            self.send_response(status)
            self.send_header("Content-Length", str(last - first + 1))
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
            self.end_headers()
            limit = last - first + 1
            if cut_after is not None and self.path not in cut_done:
                cut_done.add(self.path)
                limit = min(limit, cut_after)
            sent = 0
            with open(path, "rb") as f:
                f.seek(first)
                while sent < limit:
                    chunk = f.read(min(65536, limit - sent))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    sent += len(chunk)
            with open(log, "a") as out:
                out.write(f"{self.path} {status} {first} {last} {sent}\n")
            if sent < last - first + 1:
                self.close_connection = True
                self.wfile.flush()
                self.connection.shutdown(2)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("log")
    parser.add_argument("--cut-after", type=int)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(Path(args.root), Path(args.log), args.cut_after))
    print(server.server_address[1], flush=True)
    sys.stdout.close()
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    server.serve_forever()


if __name__ == "__main__":
    main()
