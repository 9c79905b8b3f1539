"""A reference client: the state a client rebuilds from the frames, and a
Twisted/Autobahn connection to talk to the server (tests, bench, tools).

``GardenReplica`` is what docs/protocol.rst describes for clients, in code:
apply a ``FullStateSync``, then each ``StateDelta`` whose ``base`` is the
sequence you have (else ask ``SyncGameState`` with your last sequence).
Positions and velocities stay integers (quantum steps) so they equal the
server's exactly; ``positions()`` gives them in AU.
"""

from __future__ import annotations

import collections
from typing import Any

import numpy as np
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import defer

from cosmic.net import codec as codecs
from cosmic.net import messages

COLUMNS = ("kind", "name", "mass", "radius", "level", "life_stage", "population", "created_at")


class OutOfSync(Exception):
    """A delta for another base than the sequence we have: resync."""


class GardenReplica:
    def __init__(self) -> None:
        self.garden_id: int | None = None
        self.sequence = 0
        self.garden_seq = 0
        self.game_time = 0.0
        self.header: dict[str, Any] = {}
        self.progress: dict[str, Any] = {}
        self.quantum: dict[str, float] = {}
        self.bodies: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []

    def apply(self, kind: str, data: dict[str, Any]) -> None:
        if kind == messages.FULL_STATE_SYNC:
            self._full(data)
        elif kind == messages.STATE_DELTA:
            self._delta(data)
        else:
            raise ValueError(f"not a state message: {kind}")

    def _full(self, data: dict[str, Any]) -> None:
        self.garden_id = data["garden_id"]
        self.sequence = data["sequence"]
        self.garden_seq = data["garden_seq"]
        self.game_time = data["game_time"]
        self.header = dict(data["garden"])
        self.quantum = dict(data["quantum"])
        self.progress = {k: data[k] for k in ("resources", "rates", "upgrades", "research")}
        self.bodies = self._rows(data["bodies"])

    @staticmethod
    def _rows(columns: dict[str, Any]) -> dict[int, dict[str, Any]]:
        rows = {}
        for i, body_id in enumerate(columns["ids"]):
            row = {name: columns[name][i] for name in COLUMNS if name in columns}
            row["position"] = list(columns["position"][3 * i : 3 * i + 3])
            row["velocity"] = list(columns["velocity"][3 * i : 3 * i + 3])
            rows[body_id] = row
        return rows

    def _delta(self, data: dict[str, Any]) -> None:
        if data["base"] != self.sequence or data["garden_id"] != self.garden_id:
            raise OutOfSync(f"delta on {data['base']}, we have {self.sequence}")
        self.sequence = data["sequence"]
        self.garden_seq = data["garden_seq"]
        self.game_time = data["game_time"]
        self.events.extend(data.get("events", ()))
        for key in ("resources", "rates", "upgrades"):
            self.progress[key] = {**self.progress[key], **data.get(key, {})}
        if "research" in data:
            self.progress["research"] = data["research"]
        if "garden" in data:
            self.header.update(data["garden"])
        for body_id in data.get("removed", ()):
            self.bodies.pop(body_id, None)
        motion = data.get("motion")
        if motion:
            for i, body_id in enumerate(motion["ids"]):
                row = self.bodies[body_id]
                for k in range(3):
                    row["position"][k] += motion["position"][3 * i + k]
                    row["velocity"][k] += motion["velocity"][3 * i + k]
        changed = data.get("changed")
        if changed:
            for i, body_id in enumerate(changed["ids"]):
                for name in COLUMNS:
                    if name in changed:
                        self.bodies[body_id][name] = changed[name][i]
        if data.get("added"):
            self.bodies.update(self._rows(data["added"]))

    def ids(self) -> list[int]:
        return sorted(self.bodies)

    def steps(self, field: str = "position") -> np.ndarray:
        """(n, 3) integer steps, rows in ``ids()`` order."""
        return np.array([self.bodies[i][field] for i in self.ids()], dtype=np.int64).reshape(-1, 3)

    def positions(self) -> np.ndarray:
        return self.steps("position") * self.quantum["position"]

    def velocities(self) -> np.ndarray:
        return self.steps("velocity") * self.quantum["velocity"]


# -- over the wire -------------------------------------------------------------------------


class ClientProtocol(WebSocketClientProtocol):
    """Decodes every message into the client's inbox; state goes to replicas."""

    def onConnect(self, response: Any) -> None:
        self.factory.client.protocol = self
        self.factory.client.subprotocol = response.protocol

    def onOpen(self) -> None:
        client = self.factory.client
        opened, client._opened = client._opened, None
        if opened is not None:
            opened.callback(client)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.client._received(payload, isBinary)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.client._closed(code, reason)


class CosmicClient:
    """One connection.  ``await client.request(type, data)`` sends with an id
    and returns the answer (any state frames on the way go to ``replicas``);
    ``await client.next(type)`` waits for the next message of a type."""

    def __init__(self, reactor: Any, subprotocol: str, max_inbox: int = 10_000) -> None:
        self.reactor = reactor
        self.subprotocol = subprotocol
        self.codec = codecs.codec_for(subprotocol, max_message_bytes=64 * 1024 * 1024)
        self.protocol: ClientProtocol | None = None
        self.replicas: dict[int, GardenReplica] = collections.defaultdict(GardenReplica)
        self.inbox: collections.deque[tuple[str, Any, Any]] = collections.deque(maxlen=max_inbox)
        self.received_at: list[float] = []
        self.track_state = True
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._opened: defer.Deferred[CosmicClient] | None = defer.Deferred()
        self._closed_d: defer.Deferred[tuple[int | None, str | None]] = defer.Deferred()
        self._waiters: list[tuple[Any, defer.Deferred[Any]]] = []
        self._next_id = 0
        self.out_of_sync = 0

    # -- receiving --------------------------------------------------------------------

    def _received(self, payload: bytes, binary: bool) -> None:
        envelope = self.codec.decode_envelope(payload, binary)
        kind, data, rid = envelope["type"], envelope["data"], envelope.get("id")
        if self.track_state and kind in (messages.FULL_STATE_SYNC, messages.STATE_DELTA):
            try:
                self.replicas[data["garden_id"]].apply(kind, data)
            except OutOfSync:
                self.out_of_sync += 1
        for i, (match, d) in enumerate(self._waiters):
            if match(kind, data, rid):
                del self._waiters[i]
                d.callback((kind, data, rid))
                return
        self.inbox.append((kind, data, rid))

    def _closed(self, code: int | None, reason: str | None) -> None:
        self.close_code, self.close_reason = code, reason
        opened, self._opened = self._opened, None
        if opened is not None:
            opened.errback(ConnectionError(f"closed during the handshake: {code} {reason}"))
        waiters, self._waiters = self._waiters, []
        for _, d in waiters:
            d.errback(ConnectionError(f"closed: {code} {reason}"))
        if not self._closed_d.called:
            self._closed_d.callback((code, reason))

    def wait(self, match: Any, timeout: float = 10.0) -> defer.Deferred[Any]:
        for i, item in enumerate(self.inbox):
            if match(*item):
                del self.inbox[i]
                return defer.succeed(item)
        if self._closed_d.called:
            return defer.fail(ConnectionError(f"closed: {self.close_code} {self.close_reason}"))
        d: defer.Deferred[Any] = defer.Deferred()
        entry = (match, d)
        self._waiters.append(entry)

        def forget(result: Any) -> Any:
            if entry in self._waiters:
                self._waiters.remove(entry)
            return result

        d.addTimeout(timeout, self.reactor)
        d.addBoth(forget)
        return d

    def next(self, kind: str | None = None, timeout: float = 10.0, **fields: Any):
        def match(k: str, data: Any, rid: Any) -> bool:
            if kind is not None and k != kind:
                return False
            return all(isinstance(data, dict) and data.get(n) == v for n, v in fields.items())

        return self.wait(match, timeout)

    # -- sending ---------------------------------------------------------------------

    def send(self, kind: str, data: Any = None, rid: Any = None) -> None:
        self.send_raw(self.codec.encode(messages.envelope(kind, data or {}, rid)).payload)

    def send_raw(self, payload: bytes, binary: bool | None = None) -> None:
        assert self.protocol is not None
        self.protocol.sendMessage(payload, isBinary=self.codec.binary if binary is None else binary)

    async def request(self, kind: str, data: Any = None, timeout: float = 10.0) -> tuple:
        """Send with a fresh id; the (type, data, id) answered to it."""
        self._next_id += 1
        rid = self._next_id
        waiting = self.wait(lambda k, d, r: r == rid, timeout)
        self.send(kind, data, rid)
        return await waiting

    def close(self, code: int = 1000, reason: str = "bye") -> defer.Deferred:
        if self.protocol is not None and not self._closed_d.called:
            self.protocol.sendClose(code, reason)
        return self.closed()

    def closed(self) -> defer.Deferred[tuple[int | None, str | None]]:
        d: defer.Deferred[tuple[int | None, str | None]] = defer.Deferred()
        if self._closed_d.called:
            d.callback((self.close_code, self.close_reason))
        else:
            self._closed_d.addBoth(lambda r: (d.callback(r), r)[1])
        return d


def connect(
    reactor: Any,
    host: str,
    port: int,
    subprotocol: str,
    *,
    path: str = "/ws",
    protocols: list[str] | None = None,
    headers: dict[str, str] | None = None,
    deflate: bool = False,
    timeout: float = 10.0,
) -> defer.Deferred[CosmicClient]:
    """Open a WebSocket to the server; fires with the open CosmicClient."""
    client = CosmicClient(reactor, subprotocol)
    factory = WebSocketClientFactory(
        f"ws://{host}:{port}{path}",
        protocols=protocols if protocols is not None else [subprotocol],
        headers=headers or {},
        reactor=reactor,
    )
    factory.protocol = ClientProtocol
    factory.client = client
    options: dict[str, Any] = {"maxMessagePayloadSize": 0, "maxFramePayloadSize": 0}
    if deflate:
        from autobahn.websocket.compress import (
            PerMessageDeflateOffer,
            PerMessageDeflateResponse,
            PerMessageDeflateResponseAccept,
        )

        options["perMessageCompressionOffers"] = [
            PerMessageDeflateOffer(accept_max_window_bits=True, accept_no_context_takeover=True)
        ]

        def accept(response: Any) -> Any:
            if isinstance(response, PerMessageDeflateResponse):
                return PerMessageDeflateResponseAccept(response)
            return None

        options["perMessageCompressionAccept"] = accept
    factory.setProtocolOptions(**options)
    reactor.connectTCP(host, port, factory, timeout=timeout)
    assert client._opened is not None
    opened = client._opened
    opened.addTimeout(timeout, reactor)
    return opened
