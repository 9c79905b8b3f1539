"""Codecs: round trips (hypothesis), hostile bytes, decompression bombs."""

from __future__ import annotations

import json
import math

import lz4.block
import lz4.frame
import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosmic.net import codec as codecs
from cosmic.net import messages
from cosmic.net.errors import WsError

ALL = (codecs.JSON, codecs.MSGPACK, codecs.MSGPACK_LZ4)
LIMIT = 65536

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=12), inner, max_size=6)
    ),
    max_leaves=40,
)
ids = st.none() | st.integers(0, messages.MAX_INT) | st.text(min_size=1, max_size=64)


def make(name: str, **kw) -> codecs.Codec:
    if name == codecs.MSGPACK_LZ4:
        return codecs.MsgpackLz4Codec(LIMIT, min_bytes=kw.get("min_bytes", 0))
    return codecs.codec_for(name, LIMIT)


# -- round trips ---------------------------------------------------------------------------


@settings(max_examples=300)
@given(st.sampled_from(ALL), st.text(max_size=30), values, ids)
def test_any_envelope_round_trips(name, kind, data, rid) -> None:
    codec = make(name)
    envelope = messages.envelope(kind, data, rid)
    encoded = codec.encode(envelope)
    assert encoded.binary is codec.binary
    assert codec.decode_envelope(encoded.payload, encoded.binary) == envelope


vector = st.tuples(*[st.floats(-1e6, 1e6, allow_nan=False)] * 3)
positive = st.integers(1, messages.MAX_INT)
word = st.text(min_size=1, max_size=32)
client_messages = st.one_of(
    st.builds(
        messages.Authenticate,
        token=st.none() | st.text(max_size=200),
        resume_token=st.none() | st.text(min_size=1, max_size=128),
        last_sequence=st.none() | st.integers(0, messages.MAX_INT),
    ),
    st.builds(messages.Heartbeat, client_time=st.none() | st.floats(-1e15, 1e15)),
    st.builds(
        messages.SyncGameState,
        last_sequence=st.none() | st.integers(0, 10**9),
        garden_id=st.none() | positive,
    ),
    st.builds(
        messages.CreateCelestialBody,
        kind=word,
        position=st.none() | vector,
        velocity=st.none() | vector,
        name=st.none() | st.text(min_size=1, max_size=64),
        parent_id=st.none() | positive,
    ),
    st.builds(messages.DestroyCelestialBody, body_id=positive),
    st.builds(messages.RenameCelestialBody, body_id=positive, name=word),
    st.builds(messages.StartResearch, research=word),
    st.builds(messages.BuyUpgrade, resource=word),
    st.builds(messages.SetGardenPublic, public=st.booleans()),
    st.builds(messages.ObserveGarden, garden_id=positive),
    st.builds(messages.StopObserving, garden_id=st.none() | positive),
)


@settings(max_examples=300)
@given(st.sampled_from(ALL), client_messages, ids)
def test_every_client_message_round_trips_typed(name, message, rid) -> None:
    codec = make(name)
    encoded = codec.encode(messages.envelope(message.TYPE, message.as_data(), rid))
    parsed = codec.decode(encoded.payload, encoded.binary)
    assert parsed.message == message
    assert parsed.id == rid


@settings(max_examples=500)
@given(st.sampled_from(ALL), st.binary(max_size=300), st.booleans())
def test_arbitrary_bytes_give_a_typed_error_or_a_message(name, payload, binary) -> None:
    codec = make(name)
    try:
        codec.decode(payload, binary)
    except WsError as error:
        assert error.code.startswith("WS_PROTO_")


@settings(max_examples=300)
@given(st.sampled_from(ALL), client_messages, st.integers(0, 400), st.integers(0, 255))
def test_corrupted_valid_frames_never_escape_as_other_errors(name, message, at, byte) -> None:
    codec = make(name)
    payload = bytearray(codec.encode(messages.envelope(message.TYPE, message.as_data())).payload)
    payload[at % len(payload)] = byte
    try:
        codec.decode(bytes(payload), codec.binary)
    except WsError as error:
        assert error.code.startswith("WS_PROTO_")


# -- specifics ---------------------------------------------------------------------------------


def test_json_refuses_nan_and_deep_nesting_and_binary_frames() -> None:
    codec = make(codecs.JSON)
    for bad in (b'{"type": NaN}', b"[" * 100_000, b"{", "\ud800".encode("utf-8", "surrogatepass")):
        with pytest.raises(WsError) as caught:
            codec.decode(bad, False)
        assert caught.value.code == "WS_PROTO_001"
    with pytest.raises(WsError) as caught:
        codec.decode(b'{"type": "Heartbeat"}', True)
    assert caught.value.code == "WS_PROTO_005"


def test_msgpack_refuses_text_frames_ext_types_huge_headers_and_nesting() -> None:
    codec = make(codecs.MSGPACK)
    with pytest.raises(WsError) as caught:
        codec.decode(msgpack.packb({"type": "Heartbeat", "data": {}}), False)
    assert caught.value.code == "WS_PROTO_005"
    for bad in (
        msgpack.packb({"type": msgpack.ExtType(5, b"x")}),
        b"\xdd\xff\xff\xff\xff",  # an array header claiming 4 G elements
        b"\x91" * 100_000 + b"\xc0",
        msgpack.packb({1: 2}),  # non-string key
        b"",
    ):
        with pytest.raises(WsError) as caught:
            codec.decode(bad, True)
        assert caught.value.code == "WS_PROTO_001"


def test_lz4_decompression_bomb_is_refused_at_the_limit() -> None:
    codec = make(codecs.MSGPACK_LZ4)
    bomb = lz4.frame.compress(b"\x00" * (50 * 1024 * 1024))  # zeros: ~250:1
    assert len(bomb) < 300_000
    with pytest.raises(WsError) as caught:
        codec.decode(bomb, True)
    assert caught.value.code == "WS_PROTO_006"
    assert caught.value.close


def test_lz4_exactly_at_the_limit_is_accepted_and_one_more_byte_is_not() -> None:
    limit = 4096
    assert codecs.decompress(codecs.compress(b"a" * limit), limit) == b"a" * limit
    with pytest.raises(WsError) as caught:
        codecs.decompress(codecs.compress(b"a" * (limit + 1)), limit)
    assert caught.value.code == "WS_PROTO_006"


def test_lz4_corrupt_truncated_and_trailing_frames() -> None:
    codec = make(codecs.MSGPACK_LZ4)
    good = codecs.compress(msgpack.packb({"type": "Heartbeat", "data": {}}) * 20)
    cases = {
        "truncated": good[:-3],
        "garbage": codecs.LZ4_MAGIC + b"\xff" * 40,
        "trailing": good + b"tail",
    }
    for name, bad in cases.items():
        with pytest.raises(WsError) as caught:
            codec.decode(bad, True)
        assert caught.value.code == "WS_PROTO_007", name


def test_lz4_block_with_forged_size_is_not_an_lz4_frame() -> None:
    # lz4.block trusts its 4-byte size header; we never call it: a block is
    # not a frame, so it is read as (invalid) msgpack.
    forged = b"\xff\xff\xff\x7f" + lz4.block.compress(b"x" * 100, store_size=False)
    with pytest.raises(WsError) as caught:
        make(codecs.MSGPACK_LZ4).decode(forged, True)
    assert caught.value.code == "WS_PROTO_001"


def test_lz4_codec_compresses_only_what_is_big_enough_and_shrinks() -> None:
    codec = codecs.MsgpackLz4Codec(LIMIT, min_bytes=128)
    small = codec.encode(messages.envelope("HeartbeatAck", {"latency_ms": 3}))
    assert not small.payload.startswith(codecs.LZ4_MAGIC)
    big = codec.encode(messages.envelope("StateDelta", {"motion": [1, -2, 3, 0] * 300}))
    assert big.payload.startswith(codecs.LZ4_MAGIC)
    assert len(big.payload) < big.raw_size
    noise = codec.encode(messages.envelope("X", {"b": np.random.default_rng(1).bytes(2000)}))
    assert not noise.payload.startswith(codecs.LZ4_MAGIC)  # incompressible: sent raw


def test_encoding_handles_numpy_and_non_finite_values() -> None:
    data = {
        "a": np.arange(3),
        "f": np.float32(1.5),
        "n": float("nan"),
        "t": (1, 2),
        "i": np.int64(7),
    }
    for name in ALL:
        codec = make(name)
        encoded = codec.encode(messages.envelope("X", data))
        back = codec.decode_envelope(encoded.payload, encoded.binary)["data"]
        assert back["a"] == [0, 1, 2] and back["f"] == 1.5 and back["t"] == [1, 2]
        assert back["i"] == 7
        assert back["n"] is None or math.isnan(back["n"])
    text = make(codecs.JSON).encode(messages.envelope("X", data)).payload
    assert json.loads(text)["data"]["n"] is None


def test_json_encodes_what_orjson_refuses_through_the_fallback() -> None:
    """Lone surrogates, integers past 64 bits and non-string keys still make
    valid JSON (the stdlib fallback), and NaN inside numpy arrays is null."""
    codec = make(codecs.JSON)
    data = {
        "name": "bad \ud800 name",
        "big": 2**70,
        "keys": {1: "one"},
        "arr": np.array([1.0, np.nan, np.inf]),
    }
    payload = codec.encode(messages.envelope("X", data)).payload
    back = json.loads(payload)["data"]
    assert back["name"] == "bad ? name"
    assert back["big"] == 2**70
    assert back["keys"] == {"1": "one"}
    assert back["arr"] == [1.0, None, None]
    fast = codec.encode(messages.envelope("X", {"arr": np.array([np.nan, 2.5])})).payload
    assert fast == b'{"type":"X","data":{"arr":[null,2.5]}}'


def test_subprotocol_choice_follows_the_configured_preference() -> None:
    offered = [codecs.JSON, codecs.MSGPACK, codecs.MSGPACK_LZ4]
    assert codecs.choose(offered, "lz4") == codecs.MSGPACK_LZ4
    assert codecs.choose(offered, "deflate") == codecs.MSGPACK
    assert codecs.choose(offered, "none") == codecs.MSGPACK
    assert codecs.choose([codecs.JSON], "lz4") == codecs.JSON
    assert codecs.choose(["chat", "cosmic.json.v2"], "lz4") is None
