"""Just enough of Nix's lexical structure to read a flake's shape without evaluating it.

``/etc/nixos/flake.nix`` is host output: fleetforge reads it to find a host's entry, never copies
it into a command, and refuses what it cannot read exactly rather than guessing. ``NixScan``
follows the lexer of Nix (``src/libexpr/lexer.l``): ``#`` and ``/* */`` comments, ``"..."``
strings with ``\\`` escapes, ``''...''`` strings with the ``'''``, ``''$`` and ``''\\`` escapes,
``${ ... }`` interpolation (code, with its own strings and comments, inside a string) and URI
literals (``http://x/*`` is a string, not a comment). Brackets are matched once, in one pass.

Limits, all ``ValueError``: a text over ``MAX_BYTES``, an unterminated string, comment or
interpolation, unbalanced brackets.
"""

from __future__ import annotations

import re

MAX_BYTES = 256 * 1024  # fleetforge default: generated flakes are < 1 KiB; hand-written ones a few KiB
_URI = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:[a-zA-Z0-9%/?:@&=+$,_.!~*'-]+")
_IDENT_CHAR = re.compile(r"[\w'-]")
_OPEN, _CLOSE = "([{", ")]}"
_KEYWORD = re.compile(r"(?<![\w'-])(let|in|with|assert)(?![\w'-])|[;\[\]{}()]")


class NixScan:
    """Views of Nix ``text`` with the same offsets.

    - ``plain``: comments blanked (strings kept, for quoted attribute names);
    - ``masked``: comments blanked and the contents of strings, interpolations and URIs written
      as ``_`` (quotes kept), so what remains is code;
    - ``partner``: ``{offset of a bracket: offset of its partner}`` for every bracket of code.
    """

    def __init__(self, text: str):
        if len(text.encode()) > MAX_BYTES:
            raise ValueError(f"flake.nix is over {MAX_BYTES // 1024} KiB; fleetforge does not read it")
        self.text = text
        self.plain, self.masked = list(text), list(text)
        self._lex()
        self.plain, self.masked = "".join(self.plain), "".join(self.masked)
        self.partner = self._brackets()

    def _blank(self, start: int, end: int) -> None:
        for i in range(start, end):
            if self.text[i] != "\n":
                self.plain[i] = self.masked[i] = " "

    def _mask(self, start: int, end: int) -> None:
        for i in range(start, min(end, len(self.text))):
            self.masked[i] = "_"

    def _lex(self) -> None:
        text, n, i = self.text, len(self.text), 0
        stack: list[list] = [["code", 0]]  # mode and, for code, its open { count
        while i < n:
            mode = stack[-1]
            inside = len(stack) > 1  # within a string (or an interpolation in one)
            if mode[0] == "code":
                if text[i] == "#" or text.startswith("/*", i):
                    end = text.find("\n", i) if text[i] == "#" else text.find("*/", i + 2)
                    if end < 0 and text[i] != "#":
                        raise ValueError("flake.nix: a /* comment is not closed")
                    end = n if end < 0 else end + (0 if text[i] == "#" else 2)
                    self._blank(i, end)
                    i = end
                    continue
                uri = _URI.match(text, i) if i == 0 or not _IDENT_CHAR.match(text[i - 1]) else None
                if uri:
                    self._mask(i, uri.end())
                    i = uri.end()
                    continue
                if text[i] == '"' or text.startswith("''", i):
                    stack.append(["dq" if text[i] == '"' else "ind", 0])
                    if inside:
                        self._mask(i, i + (1 if text[i] == '"' else 2))
                    i += 1 if text[i] == '"' else 2
                    continue
                if text[i] == "}" and inside and mode[1] == 0:  # end of an interpolation
                    stack.pop()
                    self._mask(i, i + 1)
                    i += 1
                    continue
                mode[1] += {"{": 1, "}": -1}.get(text[i], 0)
                if inside:
                    self._mask(i, i + 1)
                i += 1
            else:
                i = self._string_step(stack, i)
        if len(stack) > 1:
            raise ValueError("flake.nix: a string or interpolation is not closed")

    def _string_step(self, stack: list[list], i: int) -> int:
        """One step inside a string: returns the next offset (and pushes or pops modes)."""
        text, quote = self.text, stack[-1][0]
        if text.startswith("${", i):
            stack.append(["code", 0])
            step = 2
        elif quote == "dq" and text[i] == "\\":
            step = 2
        elif quote == "dq" and text[i] == '"':
            stack.pop()
            return i + 1 if len(stack) == 1 else self._masked_step(i, 1)
        elif quote == "ind" and text.startswith(("'''", "''$"), i):
            step = 3
        elif quote == "ind" and text.startswith("''\\", i):
            step = 4
        elif quote == "ind" and text.startswith("''", i):
            stack.pop()
            return i + 2 if len(stack) == 1 else self._masked_step(i, 2)
        else:
            step = 1
        return self._masked_step(i, step)

    def _masked_step(self, i: int, step: int) -> int:
        self._mask(i, i + step)
        return i + step

    def _brackets(self) -> dict[int, int]:
        partner, open_at = {}, []
        for i, c in enumerate(self.masked):
            if c in _OPEN:
                open_at.append(i)
            elif c in _CLOSE:
                if not open_at or _OPEN.index(self.masked[open_at[-1]]) != _CLOSE.index(c):
                    raise ValueError(f"flake.nix: unbalanced {c!r} at offset {i}")
                start = open_at.pop()
                partner[start], partner[i] = i, start
        if open_at:
            raise ValueError(f"flake.nix: {self.masked[open_at[-1]]!r} at offset {open_at[-1]} is not closed")
        return partner

    def is_code(self, offset: int) -> bool:
        """True if ``offset`` is code (not in a comment, string, interpolation or URI)."""
        return self.masked[offset] == self.text[offset] and not self.text[offset].isspace()

    def expression_end(self, start: int) -> int:
        """The offset of the ``;`` (or enclosing closer) that ends the binding value starting at
        ``start``: brackets are skipped whole; ``let ... in``, ``with E;`` and ``assert E;``
        consume their own ``;``."""
        lets = pending = 0
        i = start
        while i < len(self.masked):
            token = _KEYWORD.search(self.masked, i)
            if token is None:
                return len(self.masked)
            word, i = token.group(), token.start()
            if word in _OPEN:
                i = self.partner[i] + 1
                continue
            if word in _CLOSE:
                return i
            if word == ";":
                if pending:
                    pending -= 1
                elif not lets:
                    return i
            elif word == "let":
                lets += 1
            elif word == "in":
                lets = max(0, lets - 1)
            else:  # with, assert
                pending += 1
            i = token.end()
        return len(self.masked)
