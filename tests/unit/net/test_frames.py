"""The protocol's own server frames are byte for byte Autobahn's."""

from __future__ import annotations

import pytest
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.protocol import WebSocketProtocol
from twisted.internet.testing import StringTransport

from cosmic.net.protocol import frame_header


def autobahn_frame(payload: bytes, binary: bool) -> bytes:
    factory = WebSocketServerFactory()
    factory.protocol = WebSocketServerProtocol
    factory.setProtocolOptions(autoFragmentSize=0)
    proto = factory.buildProtocol(None)
    transport = StringTransport()
    proto.makeConnection(transport)
    transport.clear()
    proto.state = WebSocketProtocol.STATE_OPEN  # as after a handshake
    proto.sendMessage(payload, isBinary=binary)
    return transport.value()


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536, 70000])
@pytest.mark.parametrize("binary", [True, False])
def test_frame_header_matches_autobahn(length: int, binary: bool) -> None:
    payload = b"x" * length
    assert frame_header(length, binary) + payload == autobahn_frame(payload, binary)
