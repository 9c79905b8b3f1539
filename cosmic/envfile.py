"""Parse KEY=VALUE environment files such as .env.development.

The accepted syntax is the common subset of dotenv and systemd's
EnvironmentFile, so one file can serve both: blank lines, ``#`` comments,
an optional ``export`` prefix, and values bare or in single or double quotes.
"""

from __future__ import annotations

import re

import attrs

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "$": "$"}


@attrs.frozen
class EnvLine:
    name: str
    value: str
    lineno: int


class EnvFileError(ValueError):
    """A line that is not KEY=VALUE; carries its line number."""

    def __init__(self, lineno: int, message: str) -> None:
        super().__init__(f"line {lineno}: {message}")
        self.lineno = lineno
        self.message = message


def _unquote(raw: str, lineno: int) -> str:
    if raw[:1] == "'":
        if len(raw) < 2 or not raw.endswith("'"):
            raise EnvFileError(lineno, "unterminated single quote")
        return raw[1:-1]
    if raw[:1] == '"':
        out: list[str] = []
        i = 1
        while i < len(raw):
            ch = raw[i]
            if ch == "\\" and i + 1 < len(raw):
                out.append(_ESCAPES.get(raw[i + 1], "\\" + raw[i + 1]))
                i += 2
                continue
            if ch == '"':
                if raw[i + 1 :].strip():
                    raise EnvFileError(lineno, "text after the closing quote")
                return "".join(out)
            out.append(ch)
            i += 1
        raise EnvFileError(lineno, "unterminated double quote")
    # A bare value ends at an unquoted " #" comment, as in dotenv.
    return raw.split(" #", 1)[0].strip()


def parse(text: str) -> list[EnvLine]:
    """Every assignment in order; raises EnvFileError at the first bad line."""
    lines: list[EnvLine] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export "):
            stripped = stripped[len("export ") :].lstrip()
        name, sep, raw = stripped.partition("=")
        name = name.strip()
        if not sep:
            raise EnvFileError(lineno, f"expected NAME=VALUE, got {stripped[:40]!r}")
        if not _NAME.match(name):
            raise EnvFileError(lineno, f"{name[:40]!r} is not a variable name")
        lines.append(EnvLine(name, _unquote(raw.strip(), lineno), lineno))
    return lines
