"""Add up the closing lines of pytest runs: ``python scripts/pytest_total.py LOG [LOG ...]``.

Each LOG is the output of one pytest process; its last line of the form
``=== 12 passed, 1 failed, 2 skipped in 3.4s ===`` is read. Prints one line,
``tests: N passed, N failed`` (``, N skipped`` when any), where failed counts failures and
errors, and exits 0 when nothing failed and at least one test passed, 1 otherwise.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

SUMMARY = re.compile(r"^=+ (?P<body>.*\b(?:passed|failed|error|errors|skipped|deselected|no tests ran)\b.*) =+$")
COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)\b")


def counts(log: str) -> dict[str, int]:
    """``{"passed": n, "failed": n, "skipped": n}`` from the last pytest summary line of ``log``.

    Raises:
        ValueError: ``log`` has no pytest summary line (the run died before it).
    """
    lines = [m.group("body") for m in map(SUMMARY.match, log.splitlines()) if m]
    if not lines:
        raise ValueError("no pytest summary line")
    total = {"passed": 0, "failed": 0, "skipped": 0}
    for n, word in COUNT.findall(lines[-1]):
        key = {"error": "failed", "errors": "failed", "xpassed": "passed", "xfailed": "skipped"}.get(word, word)
        total[key] += int(n)
    return total


def main(paths: list[str]) -> int:
    total = {"passed": 0, "failed": 0, "skipped": 0}
    for path in paths:
        try:
            found = counts(Path(path).read_text(errors="replace"))
        except ValueError as e:
            print(f"{path}: {e}", file=sys.stderr)
            found = {"passed": 0, "failed": 1, "skipped": 0}
        for key, n in found.items():
            total[key] += n
    skipped = f", {total['skipped']} skipped" if total["skipped"] else ""
    print(f"tests: {total['passed']} passed, {total['failed']} failed{skipped}")
    return 0 if total["failed"] == 0 and total["passed"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
