"""Real WebSocket players against a running daemon, for fault tests and bench/faults.py.

Each ``Player`` registers and logs in over the REST API (blocking HTTP, run
in a thread so the reactor keeps receiving frames), opens /ws with
cosmic/net/client.py, and plays:

* ``create(name)`` creates an asteroid (500 starting dust buys five);
* ``mark(seq)`` renames the garden's star (body 1, never destroyed by a
  collision) to ``m<seq>``: a cheap, free, ordered change whose saved value
  tells exactly which acknowledged commands a restart kept.

Every command's outcome is recorded (``Outcome``: wall-clock times, answer
type, error code), so a test can count what failed during an outage and
compare what the daemon acknowledged with what it restored.  The replica of
the player's garden (``player.replica``) follows every StateDelta.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet import defer, reactor, task, threads

from cosmic.net import codec as codecs
from cosmic.net.client import CosmicClient, GardenReplica, connect
from tests.integration.daemon import FAST_ARGON2

STAR = 1  # every garden starts with its star as body 1
MARK_PREFIX = "m"
PASSWORD = "a long enough password"
JWT_SECRET = "fault-tests-fixed-secret-0123456789abcdef"  # tokens survive a restart


def http_json(
    url: str,
    method: str = "GET",
    body: dict[str, Any] | None = None,
    token: str | None = None,
    timeout: float = 15.0,
) -> tuple[int, Any]:
    """(status, decoded body) of one request; HTTP errors are answers too."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        url,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers=headers,
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def login(base: str, username: str, register: bool = True) -> str:
    """An access token for ``username`` (registered first when asked)."""
    credentials = {"username": username, "password": PASSWORD}
    if register:
        status, answer = http_json(f"{base}/api/v1/auth/register", "POST", credentials)
        if status != 201:
            raise AssertionError(f"register {username}: {status} {answer}")
    status, answer = http_json(f"{base}/api/v1/auth/login", "POST", credentials)
    if status != 200:
        raise AssertionError(f"login {username}: {status} {answer}")
    return answer["access_token"]


def readiness(base: str) -> tuple[int, dict[str, Any]]:
    """(status, body) of /health/ready; (0, {...}) when nothing answers."""
    try:
        return http_json(f"{base}/health/ready", timeout=10.0)
    except OSError as exc:
        return 0, {"status": "unreachable", "checks": {}, "error": str(exc)}


def sleep(seconds: float) -> defer.Deferred[None]:
    return task.deferLater(reactor, seconds, lambda: None)


async def until(
    predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.05
) -> None:
    """Wait (without blocking the reactor) until ``predicate()``; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await sleep(step)


async def ready_when(
    base: str, match: Callable[[int, dict[str, Any]], bool], timeout: float, what: str
) -> tuple[int, dict[str, Any], float]:
    """Poll /health/ready (in a thread) until ``match(status, body)``; the
    matching answer and the wall-clock time it came."""
    deadline = time.monotonic() + timeout
    last: tuple[int, dict[str, Any]] = (0, {})
    while time.monotonic() < deadline:
        last = await threads.deferToThread(readiness, base)
        if match(*last):
            return last[0], last[1], time.time()
        await sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last}")


def check_status(body: dict[str, Any], name: str) -> str:
    return body.get("checks", {}).get(name, {}).get("status", "missing")


def all_ok(status: int, body: dict[str, Any]) -> bool:
    checks = body.get("checks", {})
    return status == 200 and bool(checks) and all(c["status"] == "ok" for c in checks.values())


@attrs.define
class Outcome:
    command: str
    label: str
    sent_at: float  # time.time() when sent
    answered_at: float | None = None  # when the answer came (None: never)
    kind: str | None = None  # CommandResult, Error
    code: str | None = None  # the Error's code
    seq: int | None = None  # the mark's sequence number

    @property
    def ok(self) -> bool:
        return self.kind == "CommandResult"

    @property
    def pending(self) -> bool:
        """Sent, and neither answered nor lost yet."""
        return self.kind is None


class Player:
    def __init__(self, name: str, codec: str = codecs.MSGPACK_LZ4) -> None:
        self.name = name
        self.codec = codec
        self.token: str | None = None
        self.client: CosmicClient | None = None
        self.garden_id: int | None = None
        self.outcomes: list[Outcome] = []
        self.created: list[tuple[int, str]] = []  # (body id, name) acknowledged
        self.next_seq = 0
        self.connections = 0

    async def sign_in(self, base: str, register: bool = True) -> None:
        self.token = await threads.deferToThread(login, base, self.name, register)

    async def connect(self, port: int, timeout: float = 15.0) -> dict[str, Any]:
        """Open /ws, authenticate, wait for the FullStateSync; the hello."""
        assert self.token is not None
        self.client = await connect(reactor, "127.0.0.1", port, self.codec, timeout=timeout)
        self.connections += 1
        kind, hello, _ = await self.client.request(
            "Authenticate", {"token": self.token}, timeout=timeout
        )
        if kind != "AuthenticateResponse":
            raise AssertionError(f"{self.name}: authenticate answered {kind} {hello}")
        self.garden_id = hello["garden_id"]
        await self.client.next("FullStateSync", timeout=timeout)
        self.client.inbox.clear()
        return hello

    @property
    def replica(self) -> GardenReplica:
        assert self.client is not None and self.garden_id is not None
        return self.client.replicas[self.garden_id]

    @property
    def connected(self) -> bool:
        return (
            self.client is not None
            and self.client.close_code is None
            and (self.client.protocol is not None and not self.client._closed_d.called)
        )

    async def command(self, kind: str, data: dict[str, Any], label: str = "") -> Outcome:
        assert self.client is not None
        outcome = Outcome(kind, label, time.time())
        self.outcomes.append(outcome)
        try:
            answer, body, _ = await self.client.request(kind, data, timeout=20.0)
        except (ConnectionError, defer.TimeoutError) as exc:
            outcome.kind, outcome.code = "lost", type(exc).__name__
            return outcome
        outcome.answered_at = time.time()
        outcome.kind = answer
        if answer == "Error":
            outcome.code = body.get("code")
        elif kind == "CreateCelestialBody":
            self.created.append((body["result"]["body"]["id"], data["name"]))
        return outcome

    async def create(self, name: str) -> Outcome:
        return await self.command("CreateCelestialBody", {"kind": "asteroid", "name": name}, name)

    async def mark(self) -> Outcome:
        """Rename the star to the next mark."""
        self.next_seq += 1
        seq = self.next_seq
        outcome = await self.command(
            "RenameCelestialBody", {"body_id": STAR, "name": f"{MARK_PREFIX}{seq}"}, "mark"
        )
        outcome.seq = seq
        return outcome

    def acknowledged_marks(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.seq is not None and o.ok]

    def close(self) -> defer.Deferred[Any]:
        if self.client is None or not self.connected:
            return defer.succeed(None)
        return self.client.close()


def mark_of(name: str) -> int:
    """The sequence number in a star's name (0 for the name it started with)."""
    if name.startswith(MARK_PREFIX) and name[len(MARK_PREFIX) :].isdigit():
        return int(name[len(MARK_PREFIX) :])
    return 0


class Team:
    """N players playing at once: each marks in a loop, ``pause`` apart."""

    def __init__(self, players: list[Player], pause: float = 0.1) -> None:
        self.players = players
        self.pause = pause
        self._running = False
        self._loops: list[defer.Deferred[None]] = []

    @classmethod
    async def join(cls, base: str, port: int, count: int, prefix: str, pause: float = 0.1) -> Team:
        players = [Player(f"{prefix}{i}") for i in range(count)]
        for player in players:  # one at a time: argon2 and the login rate
            await player.sign_in(base)
        await defer.gatherResults([defer.ensureDeferred(p.connect(port)) for p in players])
        return cls(players, pause)

    def start(self) -> None:
        self._running = True
        self._loops = [defer.ensureDeferred(self._play(p)) for p in self.players]

    async def _play(self, player: Player) -> None:
        while self._running and player.connected:
            await player.mark()
            await sleep(self.pause)

    async def stop(self) -> None:
        self._running = False
        await defer.gatherResults(self._loops)
        self._loops = []

    @property
    def connected(self) -> int:
        return sum(p.connected for p in self.players)

    def sequences(self) -> list[int]:
        return [p.replica.sequence for p in self.players]

    async def deltas(self, count: int, timeout: float = 30.0) -> None:
        """Wait until every player has had ``count`` more StateDeltas."""
        start = self.sequences()
        await until(
            lambda: all(
                p.replica.sequence >= s + count for p, s in zip(self.players, start, strict=True)
            ),
            timeout,
            f"{count} more deltas for every player",
        )

    async def create_all(self, name: str) -> list[Outcome]:
        return list(
            await defer.gatherResults([defer.ensureDeferred(p.create(name)) for p in self.players])
        )

    def outcomes_between(self, start: float, end: float) -> list[Outcome]:
        return [o for p in self.players for o in p.outcomes if start <= o.sent_at <= end]

    def close(self) -> defer.Deferred[Any]:
        return defer.gatherResults([p.close() for p in self.players])


# -- the stack: private PostgreSQL, private Redis, the daemon --------------------------


def daemon_args(flush_interval: float, *extra: str) -> tuple[str, ...]:
    """Arguments for ``twistd cosmic`` under load: fast hashes, no login limits."""
    return (
        *FAST_ARGON2,
        "--set", f"database.flush_interval={flush_interval}",
        "--set", "database.connect_timeout=2",
        "--set", "database.health_check_interval=1",
        "--set", "auth.rate_limit_burst=100000",
        "--set", "auth.rate_limit_per_minute=1000000",
        "--set", "ws.handshake_rate_burst=100000",
        "--set", "ws.handshake_rate_per_minute=1000000",
        *extra,
    )  # fmt: skip


class Stack:
    """A private PostgreSQL cluster and Redis server (each on its own port,
    started here, so stopping them leaves the shared ones alone) and the
    daemons started on them."""

    def __init__(self, workdir: Any) -> None:
        from tests.contract.servers import PrivatePostgres, PrivateRedis

        self.workdir = workdir
        self.redis = PrivateRedis()  # raises first when redis-server is missing
        self.pg = PrivatePostgres()
        try:
            self.pg.init()
        except BaseException:
            self.pg.cleanup()
            raise
        self.daemons: list[Any] = []

    def start(self) -> Stack:
        self.pg.start()
        self.redis.start()
        return self

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.pg.port}/postgres"

    def daemon(self, *args: str) -> Any:
        from tests.integration.daemon import Daemon, base_environ

        env = base_environ(
            DATABASE_URL=self.database_url, REDIS_URL=self.redis.url, JWT_SECRET=JWT_SECRET
        )
        made = Daemon(self.workdir, *args, env=env)
        self.daemons.append(made)
        return made

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        import psycopg2

        conn = psycopg2.connect(self.pg.dsn + " connect_timeout=5")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql, params or None)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def saved_gardens(self) -> dict[int, dict[str, Any]]:
        """What the database holds now: per garden, its save time, game time,
        version, star name and body names."""
        gardens = {
            gid: {"saved_at": saved_at, "game_time": game_time, "version": version}
            for gid, saved_at, game_time, version in self.query(
                "SELECT id, saved_at, game_time, version FROM gardens"
            )
        }
        for gid, body_id, name in self.query("SELECT garden_id, body_id, name FROM bodies"):
            garden = gardens[gid]
            garden.setdefault("bodies", {})[body_id] = name
            if body_id == STAR:
                garden["star"] = name
        return gardens

    def cleanup(self) -> None:
        for made in self.daemons:
            made.kill()
        self.redis.cleanup()
        self.pg.cleanup()
