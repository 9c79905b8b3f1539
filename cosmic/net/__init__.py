"""The real-time WebSocket protocol at /ws (docs/protocol.rst).

``install_websocket`` is the one call makeService makes; see cosmic.net.server.
"""

from cosmic.net.server import WebSocketServer, install_websocket

__all__ = ["WebSocketServer", "install_websocket"]
