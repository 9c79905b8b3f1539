"""Just enough of a telnet client to log in to the manhole and read results."""

from __future__ import annotations

import socket

IAC, SB, SE = 255, 250, 240
WILL, WONT, DO, DONT = 251, 252, 253, 254


class Telnet:
    """Just enough telnet: answers option negotiation, strips it from the text."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.text = bytearray()

    def _feed(self, data: bytes) -> None:
        i = 0
        while i < len(data):
            if data[i] == IAC and i + 2 < len(data) and data[i + 1] in (WILL, WONT, DO, DONT):
                reply = {WILL: DO, WONT: DONT, DO: WONT, DONT: WONT}[data[i + 1]]
                self.sock.sendall(bytes([IAC, reply, data[i + 2]]))
                i += 3
            elif data[i] == IAC and i + 1 < len(data) and data[i + 1] == SB:
                end = data.find(bytes([IAC, SE]), i)
                i = len(data) if end < 0 else end + 2
            else:
                self.text.append(data[i])
                i += 1

    def expect(self, marker: bytes) -> bytes:
        while marker not in self.text:
            data = self.sock.recv(4096)
            if not data:
                raise AssertionError(f"closed before {marker!r}; got {bytes(self.text)!r}")
            self._feed(data)
        before, _, after = bytes(self.text).partition(marker)
        self.text = bytearray(after)
        return before

    def line(self, text: str) -> None:
        self.sock.sendall(text.encode() + b"\r\n")

    def login(self, user: str, password: str) -> None:
        self.expect(b"Username: ")
        self.line(user)
        self.expect(b"Password: ")
        self.line(password)
        self.expect(b">>> ")

    def evaluate(self, expression: str) -> bytes:
        """The repr of ``expression`` as the manhole prints it.

        The prompt is redrawn as each key echoes, so the result is found as
        the line that starts with a marker tuple."""
        self.line(f"('R', {expression})")
        self.expect(b"\n('R', ")
        return self.expect(b")\r")
