"""Value checks for configspec.ini beyond the ones validate ships, and plain
English descriptions of a spec entry for error messages."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from configobj.validate import (
    ValidateError,
    Validator,
    VdtTypeError,
    VdtValueError,
)

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_URL_PATH = re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@/-]*\Z")


class VdtReasonError(VdtValueError):
    """A value refused with a reason that says more than 'bad value'."""

    def __init__(self, value: object, reason: str) -> None:
        ValidateError.__init__(self, reason)
        self.value = value
        self.reason = reason


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise VdtTypeError(value)
    return value


def ip_address(value: object) -> str:
    text = _text(value).strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise VdtReasonError(value, "is not an IP address such as 127.0.0.1 or ::") from None


def database_url(value: object) -> str:
    text = _text(value).strip()
    parts = urlsplit(text)
    if parts.scheme in ("postgresql", "postgres"):
        if not parts.hostname and not parts.path.strip("/"):
            raise VdtReasonError(value, "names no host or database")
        return text
    if parts.scheme == "sqlite":
        if not text.startswith("sqlite:///") or len(text) == len("sqlite:///"):
            raise VdtReasonError(value, "must look like sqlite:///relative/path or sqlite:////abs")
        return text
    raise VdtReasonError(value, "must start with postgresql:// or sqlite:///")


def redis_url(value: object) -> str:
    text = _text(value).strip()
    if text == "":
        return text
    parts = urlsplit(text)
    if parts.scheme != "redis" or not parts.hostname:
        raise VdtReasonError(value, "must be empty or redis://host[:port][/db]")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port lazily
    except ValueError:
        raise VdtReasonError(value, "has a port that is not a number from 0 to 65535") from None
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise VdtReasonError(value, "has a database that is not a number")
    return text


def url_path(value: object) -> str:
    text = _text(value).strip()
    if not _URL_PATH.match(text) or text == "/" or "//" in text:
        raise VdtReasonError(value, "must be a URL path such as /metrics")
    return text.rstrip("/")


def metric_name(value: object) -> str:
    text = _text(value).strip()
    if not _METRIC_NAME.match(text):
        raise VdtReasonError(value, "must match [a-zA-Z_:][a-zA-Z0-9_:]* (a Prometheus name)")
    return text


CHECKS = {
    "ip_address": ip_address,
    "database_url": database_url,
    "redis_url": redis_url,
    "url_path": url_path,
    "metric_name": metric_name,
}

_KINDS = {
    "integer": "a whole number",
    "float": "a number",
    "boolean": "true or false",
    "string": "text",
    "ip_address": "an IP address",
    "database_url": "a database URL",
    "redis_url": "a Redis URL or nothing",
    "url_path": "a URL path",
    "metric_name": "a Prometheus metric name",
}


def make_validator() -> Validator:
    return Validator(dict(CHECKS))


def describe(validator: Validator, check: str) -> str:
    """'a whole number from 0 to 65535' for 'integer(min=0, max=65535, ...)'."""
    name, args, kwargs, _default = validator._parse_with_caching(check)
    if name == "option":
        return "one of " + ", ".join(args)
    kind = _KINDS.get(name, name)
    low, high = kwargs.get("min"), kwargs.get("max")
    if name == "string":
        if low not in (None, "0") and high is not None:
            return f"text of {low} to {high} characters"
        return f"text of at most {high} characters" if high is not None else kind
    if low is not None and high is not None:
        return f"{kind} from {low} to {high}"
    if low is not None:
        return f"{kind} of at least {low}"
    if high is not None:
        return f"{kind} of at most {high}"
    return kind


def reason(validator: Validator, check: str, error: ValidateError) -> str:
    """Why a value failed, phrased for an operator reading a startup error."""
    if isinstance(error, VdtReasonError):
        return error.reason
    return f"must be {describe(validator, check)}"
