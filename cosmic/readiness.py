"""The readiness registry: named checks that components add as they start.

/health/ready runs every check at once and reports each by name.  A check is
a callable returning a ``Check`` (or a Deferred of one); one that raises or
takes longer than the timeout counts as failing, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet import defer

OK, DEGRADED, FAIL = "ok", "degraded", "fail"


@attrs.frozen
class Check:
    status: str
    detail: str = ""

    @classmethod
    def ok(cls, detail: str = "") -> Check:
        return cls(OK, detail)

    @classmethod
    def degraded(cls, detail: str) -> Check:
        return cls(DEGRADED, detail)

    @classmethod
    def fail(cls, detail: str) -> Check:
        return cls(FAIL, detail)


@attrs.frozen
class Report:
    checks: dict[str, Check]

    @property
    def ready(self) -> bool:
        return all(check.status != FAIL for check in self.checks.values())

    @property
    def status(self) -> str:
        if not self.ready:
            return "not_ready"
        if any(check.status == DEGRADED for check in self.checks.values()):
            return "degraded"
        return "ready"

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "checks": {
                name: {"status": check.status, "detail": check.detail}
                for name, check in sorted(self.checks.items())
            },
        }


CheckFunction = Callable[[], "Check | defer.Deferred[Check]"]


class Readiness:
    def __init__(self, reactor: Any, timeout: float = 2.0) -> None:
        self._reactor = reactor
        self._timeout = timeout
        self._checks: dict[str, CheckFunction] = {}

    def add(self, name: str, check: CheckFunction) -> None:
        if name in self._checks:
            raise ValueError(f"readiness check {name!r} is already registered")
        self._checks[name] = check

    def remove(self, name: str) -> None:
        self._checks.pop(name, None)

    def _run_one(self, check: CheckFunction) -> defer.Deferred[Check]:
        d = defer.maybeDeferred(check)
        d.addTimeout(self._timeout, self._reactor)

        def failed(failure: Any) -> Check:
            if failure.check(defer.TimeoutError):
                return Check.fail(f"no answer within {self._timeout:g} s")
            return Check.fail(f"check raised {failure.type.__name__}: {failure.getErrorMessage()}")

        return d.addErrback(failed)

    async def report(self) -> Report:
        names = list(self._checks)
        results = await defer.gatherResults([self._run_one(self._checks[n]) for n in names])
        return Report(dict(zip(names, results, strict=True)))
