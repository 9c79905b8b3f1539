"""Sans-IO codecs, one per subprotocol: bytes in -> typed message out, and back.

``cosmic.json.v1``
    UTF-8 JSON in text frames.
``cosmic.msgpack.v1``
    msgpack in binary frames.
``cosmic.msgpack-lz4.v1``
    msgpack in binary frames; a frame that starts with the LZ4 frame magic
    (``04 22 4D 18``) is an LZ4 frame of msgpack, any other frame is plain
    msgpack (an envelope always starts with a map byte, ``0x8N``/``0xDE``/
    ``0xDF``, so the two never collide).  The server compresses what is at
    least ``lz4_min_bytes`` long and gets smaller by it.

Decoding never trusts a size a peer claims: JSON and msgpack input is
bounded by the WebSocket message limit before it gets here, and LZ4 is
decompressed with an explicit ``max_length`` of that same limit (+1 to tell
"exactly the limit" from "more"), so a decompression bomb costs at most the
limit in memory before it is refused.  Every failure is a ``WsError`` with a
WS_PROTO code; nothing else escapes.
"""

from __future__ import annotations

import json
import math
from typing import Any

import attrs
import lz4.frame
import msgpack
import numpy as np
import orjson

from cosmic.net import messages
from cosmic.net.errors import WsError

JSON = "cosmic.json.v1"
MSGPACK = "cosmic.msgpack.v1"
MSGPACK_LZ4 = "cosmic.msgpack-lz4.v1"
SUBPROTOCOLS = (MSGPACK_LZ4, MSGPACK, JSON)
LZ4_MAGIC = b"\x04\x22\x4d\x18"
DEFAULT_LIMIT = 65536


@attrs.frozen
class Encoded:
    """One frame to send: ``raw_size`` is the serialized size before compression."""

    payload: bytes
    binary: bool
    raw_size: int


def plain(value: Any) -> Any:
    """``value`` with numpy types made Python, tuples made lists and
    non-finite floats made None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str) else k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _no_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack extension type {code} is not accepted")


class Codec:
    """Base: ``encode`` an envelope; ``decode`` a frame into a validated message."""

    name = ""
    label = ""
    binary = True

    def __init__(self, max_message_bytes: int = DEFAULT_LIMIT) -> None:
        self.max_message_bytes = max_message_bytes

    def encode(self, envelope: dict[str, Any]) -> Encoded:
        raise NotImplementedError

    def decode_envelope(self, payload: bytes, binary: bool) -> Any:
        raise NotImplementedError

    def decode(self, payload: bytes, binary: bool) -> messages.Envelope:
        return messages.parse(self.decode_envelope(payload, binary))

    def _frame_type(self, binary: bool) -> None:
        if binary != self.binary:
            want, got = ("binary", "text") if self.binary else ("text", "binary")
            raise WsError("WS_PROTO_005", f"{self.name} uses {want} frames, not {got}")


class JsonCodec(Codec):
    name = JSON
    label = "json"
    binary = False

    def encode(self, envelope: dict[str, Any]) -> Encoded:
        # orjson: the broadcast's hot path (browsers speak JSON); the stdlib
        # took 22 us a frame against 3.7, a sixth of the daemon's time with
        # 10,000 JSON players.  It writes non-finite floats as null itself.
        try:
            payload = orjson.dumps(envelope, default=_default)
        except (orjson.JSONEncodeError, TypeError):
            # What orjson refuses and JSON can still say: lone surrogates
            # (become "?"), integers past 64 bits, non-string keys.
            text = json.dumps(plain(envelope), separators=(",", ":"), ensure_ascii=False)
            payload = text.encode("utf-8", "replace")
        return Encoded(payload, False, len(payload))

    def decode_envelope(self, payload: bytes, binary: bool) -> Any:
        self._frame_type(binary)
        try:
            return json.loads(payload, parse_constant=_no_constants)
        except (ValueError, RecursionError) as exc:
            raise WsError("WS_PROTO_001", f"not valid JSON: {str(exc)[:120]}") from None


class MsgpackCodec(Codec):
    name = MSGPACK
    label = "msgpack"

    def _pack(self, envelope: dict[str, Any]) -> bytes:
        return msgpack.packb(envelope, default=_default, use_bin_type=True)

    def encode(self, envelope: dict[str, Any]) -> Encoded:
        raw = self._pack(envelope)
        return Encoded(raw, True, len(raw))

    def _unpack(self, raw: bytes) -> Any:
        try:
            return msgpack.unpackb(raw, raw=False, strict_map_key=True, ext_hook=_no_ext)
        except (ValueError, TypeError, RecursionError, msgpack.UnpackException) as exc:
            raise WsError("WS_PROTO_001", f"not valid msgpack: {str(exc)[:120]}") from None

    def decode_envelope(self, payload: bytes, binary: bool) -> Any:
        self._frame_type(binary)
        return self._unpack(payload)


class MsgpackLz4Codec(MsgpackCodec):
    name = MSGPACK_LZ4
    label = "msgpack-lz4"

    def __init__(self, max_message_bytes: int = DEFAULT_LIMIT, min_bytes: int = 128) -> None:
        super().__init__(max_message_bytes)
        self.min_bytes = min_bytes

    def encode(self, envelope: dict[str, Any]) -> Encoded:
        raw = self._pack(envelope)
        if len(raw) >= self.min_bytes:
            packed = compress(raw)
            if len(packed) < len(raw):
                return Encoded(packed, True, len(raw))
        return Encoded(raw, True, len(raw))

    def decode_envelope(self, payload: bytes, binary: bool) -> Any:
        self._frame_type(binary)
        if payload[:4] == LZ4_MAGIC:
            payload = decompress(payload, self.max_message_bytes)
        return self._unpack(payload)


def compress(raw: bytes) -> bytes:
    """An LZ4 frame: fast level, 64 KiB blocks, no checksums (TCP has them)."""
    return lz4.frame.compress(
        raw,
        compression_level=0,
        block_size=lz4.frame.BLOCKSIZE_MAX64KB,
        content_checksum=False,
        block_checksum=False,
        store_size=False,
    )


def decompress(payload: bytes, limit: int) -> bytes:
    """One LZ4 frame, refusing more than ``limit`` bytes of output."""
    decompressor = lz4.frame.LZ4FrameDecompressor()
    try:
        out = decompressor.decompress(payload, max_length=limit + 1)
    except (RuntimeError, ValueError) as exc:
        raise WsError("WS_PROTO_007", f"corrupt LZ4 frame: {str(exc)[:120]}") from None
    if len(out) > limit:
        raise WsError(
            "WS_PROTO_006",
            f"the message is larger than {limit} bytes once decompressed",
            close=True,
        )
    if not decompressor.eof:
        raise WsError("WS_PROTO_007", "truncated LZ4 frame")
    if decompressor.unused_data:
        raise WsError("WS_PROTO_007", "data after the end of the LZ4 frame")
    return out


def codec_for(
    subprotocol: str, max_message_bytes: int = DEFAULT_LIMIT, lz4_min_bytes: int = 128
) -> Codec:
    if subprotocol == JSON:
        return JsonCodec(max_message_bytes)
    if subprotocol == MSGPACK:
        return MsgpackCodec(max_message_bytes)
    if subprotocol == MSGPACK_LZ4:
        return MsgpackLz4Codec(max_message_bytes, lz4_min_bytes)
    raise ValueError(f"unknown subprotocol {subprotocol!r}")


def preference(compression: str) -> tuple[str, ...]:
    """Subprotocols in the server's order of preference for net.compression."""
    if compression == "lz4":
        return (MSGPACK_LZ4, MSGPACK, JSON)
    return (MSGPACK, JSON, MSGPACK_LZ4)


def choose(offered: list[str], compression: str) -> str | None:
    """The subprotocol to speak: the server's preferred one among those offered."""
    for name in preference(compression):
        if name in offered:
            return name
    return None
