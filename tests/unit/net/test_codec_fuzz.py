"""Fuzzing the WebSocket input path, codec first, then the whole server side.

tests/unit/net/test_codec.py has the codec's round trips, arbitrary short
byte strings and one-byte corruptions.  Here, for all three subprotocols:

* arbitrary *structures* (what a hostile client can build with its own JSON
  or msgpack library: bytes, 64-bit and huge integers, NaN and infinities,
  non-string map keys, deep nesting) decode to a typed message or a typed
  WS_PROTO error;
* valid envelopes of every client message type mutated at the structure
  level (fields dropped, retyped, added; envelopes reshaped) and at the byte
  level (slices inserted, deleted, duplicated, truncated, LZ4 frames
  tampered with) do the same, and what parses is exactly a message of the
  type it claims that re-encodes to itself;
* every error the codec raises can itself be sent back in that codec;
* the same hostile frames fed to a real ``Connection`` (with a real world,
  game loop and handlers on a ``task.Clock``) of an authenticated player
  get only answers that decode, every Error with a documented code, never
  the internal-error code WS_CONN_005 and never a logged failure.

A longer run (more examples per test)::

    COSMIC_TEST_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest \\
        tests/unit/net/test_codec_fuzz.py -q
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import lz4.frame
import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import defer
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure

from cosmic.game import errors as game_errors
from cosmic.net import codec as codecs
from cosmic.net import messages
from cosmic.net.errors import CODES, WsError
from tests.unit.net.conftest import Harness, settle

ALL = (codecs.JSON, codecs.MSGPACK, codecs.MSGPACK_LZ4)
LIMIT = 65536
EXAMPLES = int(os.environ.get("COSMIC_TEST_FUZZ_EXAMPLES", "300"))
GAME_CODES = {
    cls.code
    for cls in vars(game_errors).values()
    if isinstance(cls, type)
    and issubclass(cls, game_errors.GameError)
    and cls.code != "WS_GAME_000"
}


def make(name: str) -> codecs.Codec:
    if name == codecs.MSGPACK_LZ4:
        return codecs.MsgpackLz4Codec(LIMIT, min_bytes=0)  # compress everything
    return codecs.codec_for(name, LIMIT)


# -- what a hostile client can build --------------------------------------------------------

KNOWN_KEYS = sorted(
    {"type", "data", "id"}
    | {name for cls in messages.CLIENT_MESSAGES.values() for name in cls.FIELDS}
)
TYPES = sorted(messages.CLIENT_MESSAGES)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**60), 10**60)  # far past 64 bits: JSON has no size limit
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(TYPES + KNOWN_KEYS)
)
msgpack_scalars = (
    json_scalars.filter(lambda v: not isinstance(v, int) or -(2**63) <= v < 2**64)
    | st.floats()  # NaN and the infinities travel in msgpack
    | st.binary(max_size=30)
    | st.integers(2**63, 2**64 - 1)  # uint64 beyond any signed type
    | st.just(-(2**63))
)
json_keys = st.text(max_size=12) | st.sampled_from(KNOWN_KEYS)
msgpack_keys = json_keys | st.binary(max_size=8) | st.integers(-5, 5) | st.none()


def structures(scalars: st.SearchStrategy, keys: st.SearchStrategy) -> st.SearchStrategy:
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=5) | st.dictionaries(keys, inner, max_size=5),
        max_leaves=30,
    )


def shaped_like_envelopes(values: st.SearchStrategy) -> st.SearchStrategy:
    """Maps with the envelope's keys and random values: reach parse() deeply."""
    return st.fixed_dictionaries(
        {"type": st.sampled_from(TYPES) | values},
        optional={
            "data": st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=6), values)
            | values,
            "id": values,
        },
    )


JSON_VALUES = structures(json_scalars, json_keys)
MSGPACK_VALUES = structures(msgpack_scalars, msgpack_keys)


def raw_msgpack(value: Any) -> bytes:
    """``value`` packed as a client might (non-string keys and all)."""
    return msgpack.packb(value, use_bin_type=True, strict_types=False)


def raw_json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def frame_of(name: str, value: Any, compress: bool) -> tuple[bytes, bool]:
    if name == codecs.JSON:
        return raw_json(value), False
    payload = raw_msgpack(value)
    if name == codecs.MSGPACK_LZ4 and compress:
        payload = lz4.frame.compress(payload)
    return payload, True


# -- valid envelopes, then mutated ----------------------------------------------------------------

vector = st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=3, max_size=3)
positive = st.integers(1, messages.MAX_INT)
word = st.text(min_size=1, max_size=32)
VALID_DATA = {
    "Authenticate": st.fixed_dictionaries(
        {},
        optional={
            "token": st.text(max_size=100),
            "resume_token": st.text(min_size=1, max_size=40),
            "last_sequence": st.integers(0, messages.MAX_INT),
        },
    ),
    "Heartbeat": st.fixed_dictionaries({}, optional={"client_time": st.floats(-1e15, 1e15)}),
    "SyncGameState": st.fixed_dictionaries(
        {}, optional={"last_sequence": st.integers(0, 10**9), "garden_id": positive}
    ),
    "CreateCelestialBody": st.fixed_dictionaries(
        {"kind": st.sampled_from(["asteroid", "comet", "planet", "moon", "star"]) | word},
        optional={
            "position": vector,
            "velocity": vector,
            "name": st.text(min_size=1, max_size=64),
            "parent_id": positive,
        },
    ),
    "DestroyCelestialBody": st.fixed_dictionaries({"body_id": positive}),
    "RenameCelestialBody": st.fixed_dictionaries({"body_id": positive, "name": word}),
    "StartResearch": st.fixed_dictionaries({"research": word}),
    "BuyUpgrade": st.fixed_dictionaries({"resource": word}),
    "SetGardenPublic": st.fixed_dictionaries({"public": st.booleans()}),
    "ObserveGarden": st.fixed_dictionaries({"garden_id": positive}),
    "StopObserving": st.fixed_dictionaries({}, optional={"garden_id": positive}),
}
assert set(VALID_DATA) == set(messages.CLIENT_MESSAGES)  # a new message type needs a line here


@st.composite
def valid_envelopes(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(TYPES))
    envelope = {"type": kind, "data": draw(VALID_DATA[kind])}
    rid = draw(st.none() | st.integers(0, messages.MAX_INT) | st.text(min_size=1, max_size=64))
    if rid is not None:
        envelope["id"] = rid
    return envelope


@st.composite
def mutated(draw: st.DrawFn, values: st.SearchStrategy) -> Any:
    """A valid envelope with one to three structural mutations."""
    envelope: Any = draw(valid_envelopes())
    for _ in range(draw(st.integers(1, 3))):
        how = draw(
            st.sampled_from(
                ["drop", "retype", "add", "retype-envelope", "add-envelope", "nest", "swap-type"]
            )
        )
        data = envelope.get("data") if isinstance(envelope, dict) else None
        if how in ("drop", "retype", "add") and isinstance(data, dict):
            names = sorted(data, key=repr) or ["x"]
            name = draw(st.sampled_from(names + KNOWN_KEYS))
            if how == "drop":
                data.pop(name, None)
            else:
                data[name] = draw(values)
        elif how == "retype-envelope" and isinstance(envelope, dict):
            envelope[draw(st.sampled_from(["type", "data", "id"]))] = draw(values)
        elif how == "add-envelope" and isinstance(envelope, dict):
            envelope[draw(st.sampled_from(KNOWN_KEYS) | st.text(max_size=8))] = draw(values)
        elif how == "nest":
            envelope = draw(st.sampled_from([[envelope], {"data": envelope}, {"type": envelope}]))
        elif how == "swap-type" and isinstance(envelope, dict):
            envelope["type"] = draw(st.sampled_from(TYPES))  # right fields, other message
    return envelope


@st.composite
def byte_mutations(draw: st.DrawFn, payload: bytes) -> bytes:
    data = bytearray(payload)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        how = draw(st.sampled_from(["insert", "delete", "duplicate", "truncate", "flip"]))
        if how == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif how == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif how == "duplicate":
            data[at:at] = data[at : at + draw(st.integers(1, 64))]
        elif how == "truncate":
            del data[at:]
        elif data:
            data[at % len(data)] ^= 1 << draw(st.integers(0, 7))
    return bytes(data)


# -- the property ------------------------------------------------------------------------------


def decode_or_typed_error(codec: codecs.Codec, payload: bytes, binary: bool) -> Any:
    """The codec's verdict: the parsed envelope, or the WsError (checked)."""
    try:
        parsed = codec.decode(payload, binary)
    except WsError as error:
        assert error.code.startswith("WS_PROTO_") and error.code in CODES, error.code
        assert isinstance(error.message, str) and error.message
        assert error.close == (error.code == "WS_PROTO_006")
        # The server answers in the same codec: the error must encode.
        answer = codec.encode(messages.envelope(messages.ERROR, error.as_data()))
        back = codec.decode_envelope(answer.payload, answer.binary)
        assert back["type"] == "Error" and back["data"]["code"] == error.code
        return error
    message = parsed.message
    assert type(message) is messages.CLIENT_MESSAGES[message.TYPE]
    again = codec.encode(messages.envelope(message.TYPE, message.as_data(), parsed.id))
    assert codec.decode(again.payload, again.binary) == parsed  # typed and stable
    return parsed


FAST = settings(max_examples=EXAMPLES, deadline=None)


@FAST
@given(st.sampled_from(ALL), st.data(), st.booleans())
def test_arbitrary_structures_give_a_message_or_a_typed_error(name, data, compress) -> None:
    values = JSON_VALUES if name == codecs.JSON else MSGPACK_VALUES
    value = data.draw(values | shaped_like_envelopes(values), label="value")
    payload, binary = frame_of(name, value, compress)
    decode_or_typed_error(make(name), payload, binary)


@FAST
@given(st.sampled_from(ALL), st.data(), st.booleans())
def test_mutated_envelopes_give_a_message_or_a_typed_error(name, data, compress) -> None:
    values = JSON_VALUES if name == codecs.JSON else MSGPACK_VALUES
    value = data.draw(mutated(values), label="envelope")
    payload, binary = frame_of(name, value, compress)
    decode_or_typed_error(make(name), payload, binary)


@FAST
@given(st.sampled_from(ALL), st.data())
def test_byte_mutations_of_valid_frames_give_a_message_or_a_typed_error(name, data) -> None:
    codec = make(name)
    envelope = data.draw(valid_envelopes(), label="envelope")
    payload = codec.encode(envelope).payload
    broken = data.draw(byte_mutations(payload), label="mutated")
    binary = data.draw(st.sampled_from([codec.binary] * 9 + [not codec.binary]), label="binary")
    decode_or_typed_error(codec, broken, binary)


@FAST
@given(valid_envelopes(), st.sampled_from(ALL))
def test_every_valid_envelope_decodes_to_its_own_type(envelope, name) -> None:
    codec = make(name)
    encoded = codec.encode(envelope)
    parsed = decode_or_typed_error(codec, encoded.payload, encoded.binary)
    assert not isinstance(parsed, WsError), parsed
    assert envelope["type"] == parsed.message.TYPE
    assert parsed.id == envelope.get("id")
    for field, value in envelope["data"].items():
        got = getattr(parsed.message, field)
        assert (list(got) if isinstance(got, tuple) else got) == value, field


@FAST
@given(st.data())
def test_lz4_frames_of_anything_are_bounded_and_typed(data) -> None:
    """LZ4 around arbitrary (possibly huge, possibly non-msgpack) content, with
    tampered frame headers: a message, or WS_PROTO_001/006/007."""
    codec = codecs.MsgpackLz4Codec(4096, min_bytes=0)
    inner = data.draw(
        st.binary(max_size=200)
        | st.builds(raw_msgpack, valid_envelopes())
        | st.builds(lambda n, b: bytes([b]) * n, st.integers(0, 200_000), st.integers(0, 255)),
        label="inner",
    )
    frame = lz4.frame.compress(
        inner,
        block_size=data.draw(st.sampled_from([0, 4, 5, 6, 7])),
        content_checksum=data.draw(st.booleans()),
        store_size=data.draw(st.booleans()),
    )
    tampered = data.draw(st.booleans())
    if tampered:
        frame = data.draw(byte_mutations(frame), label="tampered")
    verdict = decode_or_typed_error(codec, frame, True)
    if tampered:
        return
    if len(inner) > 4096:  # a bomb, whatever it holds: refused before it is read
        assert isinstance(verdict, WsError) and verdict.code == "WS_PROTO_006", verdict
        return
    plain = decode_or_typed_error(codecs.MsgpackLz4Codec(4096), inner, True)
    if isinstance(plain, WsError):  # the same verdict as for the content sent uncompressed
        assert isinstance(verdict, WsError) and verdict.code == plain.code
    else:
        assert verdict == plain


def test_numbers_at_the_edges() -> None:
    """Values the strategies might rarely hit: exact answers."""
    for name in ALL:
        codec = make(name)
        for value, ok in (
            (messages.MAX_INT, True),
            (messages.MAX_INT + 1, False),
            (-1, False),
            (2**64 - 1, False),
            (1.0, False),  # an integer field takes no float
            (True, False),  # nor a boolean
        ):
            payload, binary = frame_of(
                name, {"type": "DestroyCelestialBody", "data": {"body_id": value}}, True
            )
            verdict = decode_or_typed_error(codec, payload, binary)
            assert isinstance(verdict, WsError) != ok, (name, value)
            if not ok:
                assert verdict.code == "WS_PROTO_004" and verdict.details["field"] == "data.body_id"
    binary_codec = make(codecs.MSGPACK)
    for value in (math.nan, math.inf, -math.inf, 1e300):
        payload = raw_msgpack({"type": "Heartbeat", "data": {"client_time": value}})
        verdict = decode_or_typed_error(binary_codec, payload, True)
        assert isinstance(verdict, WsError) and verdict.code == "WS_PROTO_004"
    for text in (b'{"type":"Heartbeat","data":{"client_time":1e400}}', b"9" * 5000):
        verdict = decode_or_typed_error(make(codecs.JSON), text, False)
        assert isinstance(verdict, WsError) and verdict.code in ("WS_PROTO_001", "WS_PROTO_004")


# -- the same frames through a real Connection ---------------------------------------------------


class Fuzzed:
    """One harness (real world, loop, handlers; task.Clock) whose connections
    are fed hostile frames; tracks logged failures."""

    def __init__(self) -> None:
        self.h = Harness(max_protocol_errors=10**6, max_pending_requests=1000)
        self.failures: list[dict] = []
        self.player = self._run(self.h.player("fuzz"))
        self.conns: dict[str, Any] = {}

    def _run(self, coro: Any) -> Any:
        d = defer.ensureDeferred(coro)
        for _ in range(100):
            if d.called:
                break
            self.h.clock.advance(1 / 60)
        results: list[Any] = []
        d.addBoth(results.append)
        assert results, "the harness did not settle"
        if isinstance(results[0], Failure):
            results[0].raiseException()
        return results[0]

    def observe(self, event: dict) -> None:
        if event.get("log_failure") is not None:
            self.failures.append(event)

    def connection(self, subprotocol: str, key: str = "") -> Any:
        """The authenticated connection ``key`` speaks ``subprotocol`` on
        (a new one when the last was closed: a bomb, a flood)."""
        conn = self.conns.get(subprotocol + key)
        if conn is None or conn.closing:
            conn = self.h.connect(subprotocol)
            self._run(self.h.login(conn, self.player))
            assert conn.session is not None, conn.test_transport.messages()
            self.conns[subprotocol + key] = conn
        return conn

    def feed(
        self, subprotocol: str, payload: bytes, binary: bool, key: str = ""
    ) -> list[tuple[str, Any, Any]]:
        conn = self.connection(subprotocol, key)
        before = len(conn.test_transport.frames)
        conn.received(payload, binary)
        self._run(settle(self.h))
        replies = []
        for frame, was_binary in conn.test_transport.frames[before:]:
            assert was_binary == conn.codec.binary
            env = conn.codec.decode_envelope(frame, was_binary)
            replies.append((env["type"], env["data"], env.get("id")))
        return replies


@pytest.fixture(scope="module")
def fuzzed() -> Any:
    target = Fuzzed()
    globalLogPublisher.addObserver(target.observe)
    yield target
    globalLogPublisher.removeObserver(target.observe)
    target.h.stop()


@st.composite
def hostile_frames(draw: st.DrawFn, name: str) -> tuple[bytes, bool]:
    values = JSON_VALUES if name == codecs.JSON else MSGPACK_VALUES
    kind = draw(st.sampled_from(["valid", "mutated", "structure", "bytes", "broken"]))
    codec = make(name)
    if kind == "valid":
        encoded = codec.encode(draw(valid_envelopes()))
        return encoded.payload, encoded.binary
    if kind == "mutated":
        return frame_of(name, draw(mutated(values)), draw(st.booleans()))
    if kind == "structure":
        return frame_of(name, draw(shaped_like_envelopes(values)), draw(st.booleans()))
    if kind == "bytes":
        return draw(st.binary(max_size=200)), draw(st.booleans())
    payload = codec.encode(draw(valid_envelopes())).payload
    return draw(byte_mutations(payload)), codec.binary


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.data())
def test_hostile_frames_through_a_connection_get_only_typed_answers(fuzzed, data) -> None:
    name = data.draw(st.sampled_from(ALL), label="subprotocol")
    payload, binary = data.draw(hostile_frames(name), label="frame")
    replies = fuzzed.feed(name, payload, binary)
    for kind, body, _ in replies:
        assert kind in messages.SERVER_TYPES, kind
        if kind == messages.ERROR:
            assert body["code"] in CODES or body["code"] in GAME_CODES, body
            assert body["code"] != "WS_CONN_005", body  # an exception in a handler
            assert isinstance(body["message"], str) and isinstance(body["recoverable"], bool)
    assert not fuzzed.failures, [e.get("log_format") for e in fuzzed.failures]


def test_after_the_fuzzing_the_player_still_plays(fuzzed) -> None:
    """Whatever the fuzzer sent, a fresh connection of the same player gets
    its state, and a command still applies."""
    for name in ALL:
        codec = make(name)

        def ask(kind: str, data: dict, rid: int, codec=codec, name=name) -> list:
            frame = codec.encode(messages.envelope(kind, data, rid))
            return fuzzed.feed(name, frame.payload, frame.binary, key="after")

        replies = ask("SyncGameState", {}, 7)
        assert [k for k, _, rid in replies if rid == 7] == ["FullStateSync"], replies
        public = name != codecs.JSON
        replies = ask("SetGardenPublic", {"public": public}, 8)
        answers = [(k, d) for k, d, rid in replies if rid == 8]
        assert answers and answers[0][0] == "CommandResult", replies
    garden = fuzzed.h.world.garden(fuzzed.conns[codecs.JSON + "after"].session.garden_id)
    assert garden.public  # the last command (msgpack-lz4: public) was applied
    assert not fuzzed.failures
