from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cosmic import envfile

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)
bare_values = st.text(
    alphabet=st.characters(
        blacklist_characters="\"'#\\\n\r", blacklist_categories=["Cs", "Zs", "Cc", "Zl", "Zp"]
    ),
    max_size=30,
)
any_values = st.text(
    alphabet=st.characters(
        blacklist_categories=["Cs"], blacklist_characters="\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
    ),
    max_size=30,
)


def double_quoted(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


@given(st.lists(st.tuples(names, bare_values), max_size=8))
def test_bare_values_round_trip(pairs) -> None:
    text = "\n".join(f"{name}={value}" for name, value in pairs)
    assert [(ln.name, ln.value) for ln in envfile.parse(text)] == pairs


@given(st.lists(st.tuples(names, any_values), max_size=8), st.booleans())
def test_quoted_values_round_trip(pairs, export: bool) -> None:
    prefix = "export " if export else ""
    text = "\n".join(f"{prefix}{name}={double_quoted(value)}" for name, value in pairs)
    assert [(ln.name, ln.value) for ln in envfile.parse(text)] == pairs


@given(st.text(max_size=200))
def test_any_text_parses_or_names_a_line(text: str) -> None:
    try:
        lines = envfile.parse(text)
    except envfile.EnvFileError as exc:
        assert exc.lineno >= 1
        assert str(exc).startswith(f"line {exc.lineno}:")
    else:
        assert all(ln.lineno >= 1 for ln in lines)


def test_comments_blanks_single_quotes_and_inline_comments() -> None:
    text = "# comment\n\nA=1 # trailing\nB='x # not a comment'\n  C = spaced  \nD=\n"
    parsed = {ln.name: ln.value for ln in envfile.parse(text)}
    assert parsed == {"A": "1", "B": "x # not a comment", "C": "spaced", "D": ""}


@pytest.mark.parametrize(
    ("text", "lineno", "fragment"),
    [
        ("A=1\nno equals", 2, "expected NAME=VALUE"),
        ("1A=x", 1, "not a variable name"),
        ("A='open", 1, "unterminated single quote"),
        ('A="open', 1, "unterminated double quote"),
        ('A="x" y', 1, "text after the closing quote"),
    ],
)
def test_bad_lines(text: str, lineno: int, fragment: str) -> None:
    with pytest.raises(envfile.EnvFileError) as caught:
        envfile.parse(text)
    assert caught.value.lineno == lineno
    assert fragment in str(caught.value)
