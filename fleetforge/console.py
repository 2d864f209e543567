"""The one way fleetforge prints to a terminal: text is text, never rich markup.

Host output (os-release, disk models, file names, error messages) and host names are untrusted:
``PRETTY_NAME="Debian [/oops] 12"`` must print literally, not raise ``rich.errors.MarkupError``
for the whole fleet, and ``[red]`` in a disk model must not restyle the report. A console from
``make_console`` renders every ``str`` it is given (``print`` arguments, table cells and titles)
without markup, emoji codes (``:smile:``) or highlighting. Styles are applied explicitly, with
``style=`` or ``rich.text.Text``, never by formatting markup into a string.
"""

from __future__ import annotations

import sys
from typing import IO

from rich.console import Console

PIPE_WIDTH = 160  # columns when stdout is not a terminal (rich's default there is 80)


def make_console(file: IO[str] | None = None, stderr: bool = False, width: int | None = None) -> Console:
    """A rich ``Console`` with markup, emoji and highlighting off.

    ``file``: where to print (default: stdout, or stderr with ``stderr=True``).
    ``width``: columns; default: the terminal's own width, or ``PIPE_WIDTH`` when not a terminal.
    """
    stream = file if file is not None else (sys.stderr if stderr else sys.stdout)
    if width is None and not stream.isatty():
        width = PIPE_WIDTH
    return Console(file=file, stderr=stderr, width=width, markup=False, emoji=False, highlight=False)
