"""Validation of client messages: every wrong shape is a WS_PROTO error naming the field."""

from __future__ import annotations

import pytest

from cosmic.net import messages
from cosmic.net.errors import WsError, close_code, recoverable


def parse(envelope):
    return messages.parse(envelope)


def refused(envelope) -> WsError:
    with pytest.raises(WsError) as caught:
        parse(envelope)
    return caught.value


def test_a_valid_command_parses_into_its_class() -> None:
    got = parse(
        {
            "type": "CreateCelestialBody",
            "data": {"kind": "planet", "position": [1, 2.5, -3], "name": "Terra"},
            "id": 7,
        }
    )
    assert got.id == 7
    assert got.message == messages.CreateCelestialBody(
        kind="planet", position=(1.0, 2.5, -3.0), name="Terra"
    )


def test_data_may_be_left_out_when_nothing_is_required() -> None:
    assert parse({"type": "Heartbeat"}).message == messages.Heartbeat()
    assert parse({"type": "SyncGameState", "data": {}}).message == messages.SyncGameState()


@pytest.mark.parametrize(
    ("envelope", "code", "field"),
    [
        ([1, 2], "WS_PROTO_002", None),
        ("Heartbeat", "WS_PROTO_002", None),
        ({"data": {}}, "WS_PROTO_002", None),
        ({"type": 5}, "WS_PROTO_002", None),
        ({"type": "Heartbeat", "extra": 1}, "WS_PROTO_002", None),
        ({"type": "Heartbeat", "id": True}, "WS_PROTO_002", None),
        ({"type": "Heartbeat", "id": "x" * 65}, "WS_PROTO_002", None),
        ({"type": "Heartbeat", "id": -1}, "WS_PROTO_002", None),
        ({"type": "Teleport"}, "WS_PROTO_003", None),
        ({"type": "Heartbeat", "data": []}, "WS_PROTO_004", "data"),
        ({"type": "Heartbeat", "data": {"client_time": "now"}}, "WS_PROTO_004", "data.client_time"),
        ({"type": "Heartbeat", "data": {"client_time": 1e300}}, "WS_PROTO_004", "data.client_time"),
        ({"type": "DestroyCelestialBody", "data": {}}, "WS_PROTO_004", "data.body_id"),
        ({"type": "DestroyCelestialBody", "data": {"body_id": "3"}}, "WS_PROTO_004", None),
        ({"type": "DestroyCelestialBody", "data": {"body_id": True}}, "WS_PROTO_004", None),
        ({"type": "DestroyCelestialBody", "data": {"body_id": 0}}, "WS_PROTO_004", None),
        ({"type": "DestroyCelestialBody", "data": {"body_id": 2**70}}, "WS_PROTO_004", None),
        ({"type": "DestroyCelestialBody", "data": {"body_id": 1.0}}, "WS_PROTO_004", None),
        (
            {"type": "DestroyCelestialBody", "data": {"body_id": 1, "x": 1}},
            "WS_PROTO_004",
            "data.x",
        ),
        ({"type": "CreateCelestialBody", "data": {"kind": ""}}, "WS_PROTO_004", "data.kind"),
        ({"type": "CreateCelestialBody", "data": {"kind": "x" * 33}}, "WS_PROTO_004", None),
        (
            {"type": "CreateCelestialBody", "data": {"kind": "planet", "position": [1, 2]}},
            "WS_PROTO_004",
            "data.position",
        ),
        (
            {"type": "CreateCelestialBody", "data": {"kind": "planet", "position": [1, 2, None]}},
            "WS_PROTO_004",
            "data.position[2]",
        ),
        (
            {"type": "CreateCelestialBody", "data": {"kind": "planet", "velocity": [1, 2, 1e7]}},
            "WS_PROTO_004",
            "data.velocity[2]",
        ),
        ({"type": "SetGardenPublic", "data": {"public": 1}}, "WS_PROTO_004", "data.public"),
        ({"type": "Authenticate", "data": {"token": 5}}, "WS_PROTO_004", "data.token"),
        ({"type": "Authenticate", "data": {"token": "x" * 5000}}, "WS_PROTO_004", "data.token"),
        ({"type": "ObserveGarden", "data": {"garden_id": -4}}, "WS_PROTO_004", None),
    ],
)
def test_wrong_shapes_are_typed_errors(envelope, code, field) -> None:
    error = refused(envelope)
    assert error.code == code
    assert error.recoverable
    if field is not None:
        assert error.details["field"] == field
        assert error.message.startswith(field)


def test_request_ids_are_echoed_only_when_usable() -> None:
    assert messages.request_id({"id": 3}) == 3
    assert messages.request_id({"id": "abc"}) == "abc"
    assert messages.request_id({"id": [1]}) is None
    assert messages.request_id({"id": False}) is None
    assert messages.request_id("nope") is None


def test_close_codes_derive_from_error_codes() -> None:
    assert close_code("WS_AUTH_007") == 4107
    assert close_code("WS_CONN_002") == 4602
    assert close_code("WS_PROTO_008") == 4408
    assert close_code("WS_GAME_012") == 4512
    assert not recoverable("WS_CONN_003")
    assert recoverable("WS_GAME_001")  # game errors: fix the request and retry
    assert WsError("WS_RATE_001").as_data()["recoverable"] is True
    assert WsError("WS_RATE_001", close=True).as_data()["recoverable"] is False
