"""The [ws] settings (and the ones it borrows) as one plain object.

Everything in cosmic.net reads ``WsOptions``, never the settings object, so
tests build exactly the options they need.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from cosmic.net.deltas import Quanta


def parse_origins(text: str) -> tuple[str, ...]:
    """ws.allowed_origins -> the list of patterns ('*' included as itself)."""
    items = [item.strip().rstrip("/").lower() for item in re.split(r"[\s,]+", text.strip())]
    return tuple(item for item in items if item)


@attrs.frozen
class WsOptions:
    max_message_bytes: int = 65536
    max_frame_bytes: int = 65536
    max_handshake_bytes: int = 8192
    open_handshake_timeout: float = 5.0
    close_handshake_timeout: float = 5.0
    ping_interval: float = 20.0
    ping_timeout: float = 10.0
    allowed_origins: tuple[str, ...] = ()
    max_connections: int = 10000
    max_connections_per_address: int = 64
    handshake_rate_burst: int = 20
    handshake_rate_per_minute: float = 60.0
    message_rate_burst: int = 40
    message_rate_per_second: float = 20.0
    flood_close_after: int = 200
    max_protocol_errors: int = 20
    max_pending_requests: int = 16
    auth_timeout: float = 10.0
    auth_attempts: int = 3
    resume_grace: float = 30.0
    max_detached_sessions: int = 10000
    resume_frames: int = 8
    max_observed: int = 4
    send_queue_bytes: int = 1048576
    slow_client_timeout: float = 10.0
    quanta: Quanta = attrs.field(factory=Quanta)
    attributes_interval: float = 1.0
    idle_interval: float = 5.0
    broadcast_slice: float = 0.005
    lz4_min_bytes: int = 128
    deflate_window_bits: int = 10
    deflate_mem_level: int = 4
    # Borrowed from other sections.
    compression: str = "lz4"
    broadcast_hz: float = 10.0
    trust_proxy: bool = False

    @classmethod
    def from_settings(cls, settings: Any) -> WsOptions:
        ws = settings.ws
        plain = {
            field.name: getattr(ws, field.name)
            for field in attrs.fields(cls)
            if field.name not in ("allowed_origins", "quanta", "compression", "broadcast_hz")
            and field.name != "trust_proxy"
        }
        return cls(
            **plain,
            allowed_origins=parse_origins(ws.allowed_origins),
            quanta=Quanta(ws.position_quantum, ws.velocity_quantum),
            compression=settings.net.compression,
            broadcast_hz=settings.game.broadcast_hz,
            trust_proxy=settings.http.trust_proxy,
        )
