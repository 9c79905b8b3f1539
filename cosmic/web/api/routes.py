"""The REST API under /api/v1: the route table, its schemas and its handlers."""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from cosmic import accounts as acc
from cosmic.game import rules
from cosmic.game.commands import CreateBody
from cosmic.gardens import GardenNotFound
from cosmic.store.records import LEADERBOARD_KINDS
from cosmic.web.api import errors
from cosmic.web.api.game import GameAccess
from cosmic.web.api.router import AUTH_OPTIONAL, AUTH_REQUIRED, Call, Param, Reply, Route

log = Logger(namespace="cosmic.web.api")

PREFIX = "/api/v1"
INT64_MAX = 2**63 - 1
BODY_PAGE_MAX = 500
LEADERBOARD_MAX = 100


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_NUMBER = {"type": "number"}
_VECTOR = {"type": "array", "items": _NUMBER, "minItems": 3, "maxItems": 3}
_NULLABLE_VECTOR = {
    "type": ["array", "null"],
    "items": _NUMBER,
    "minItems": 3,
    "maxItems": 3,
    "description": "x, y, z (AU or AU/year)",
}
_RESOURCES = {"type": "object", "additionalProperties": _NUMBER}

COMPONENTS: dict[str, dict[str, Any]] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "description": "stable, e.g. AUTH_TOKEN_EXPIRED"},
                    "message": {"type": "string", "description": "for people"},
                },
                "additionalProperties": True,
                "description": "code, message, and details for some codes (e.g. field)",
            }
        },
    },
    "Account": {
        "type": "object",
        "required": ["id", "username", "display_name", "created_at"],
        "properties": {
            "id": {"type": "integer"},
            "username": {"type": "string"},
            "display_name": {"type": "string"},
            "created_at": {"type": "number", "description": "seconds since the epoch"},
        },
    },
    "Player": {
        "type": "object",
        "required": ["id", "username", "display_name", "created_at", "garden_id"],
        "properties": {
            "id": {"type": "integer"},
            "username": {"type": "string"},
            "display_name": {"type": "string"},
            "created_at": {"type": "number"},
            "garden_id": {
                "type": ["integer", "null"],
                "description": "null until the garden is created (on first play)",
            },
        },
    },
    "Session": {
        "type": "object",
        "required": [
            "token_type",
            "access_token",
            "expires_in",
            "expires_at",
            "refresh_token",
            "refresh_expires_in",
            "refresh_expires_at",
            "account",
        ],
        "properties": {
            "token_type": {"type": "string", "enum": ["Bearer"]},
            "access_token": {"type": "string", "description": "a JWT (HS256)"},
            "expires_in": {"type": "number", "description": "seconds"},
            "expires_at": {"type": "number"},
            "refresh_token": {"type": "string", "description": "opaque; use once"},
            "refresh_expires_in": {"type": "number"},
            "refresh_expires_at": {"type": "number"},
            "account": ref("Account"),
        },
    },
    "Body": {
        "type": "object",
        "required": ["id", "kind", "name", "mass", "radius", "position", "velocity", "level"],
        "properties": {
            "id": {"type": "integer"},
            "kind": {"type": "string"},
            "name": {"type": "string"},
            "mass": {"type": "number", "description": "solar masses"},
            "radius": {"type": "number", "description": "AU"},
            "position": _VECTOR,
            "velocity": _VECTOR,
            "level": {"type": "integer"},
            "created_at": {"type": "number"},
            "life_stage": {"type": ["string", "null"]},
            "population": {"type": "number"},
        },
    },
    "BodyPage": {
        "type": "object",
        "required": ["items", "total", "limit", "next_after"],
        "properties": {
            "items": {"type": "array", "items": ref("Body")},
            "total": {"type": "integer", "description": "bodies in the garden"},
            "limit": {"type": "integer"},
            "next_after": {
                "type": ["integer", "null"],
                "description": "pass as ?after= for the next page; null on the last",
            },
        },
    },
    "CreatedBody": {
        "type": "object",
        "required": ["body", "resources"],
        "properties": {"body": ref("Body"), "resources": _RESOURCES},
    },
    "GardenSnapshot": {
        "type": "object",
        "required": ["garden", "resources", "bodies"],
        "properties": {
            "garden": {
                "type": "object",
                "required": ["id", "owner_id", "name", "public"],
                "properties": {
                    "id": {"type": "integer"},
                    "owner_id": {"type": "integer"},
                    "name": {"type": "string"},
                    "public": {"type": "boolean"},
                    "created_at": {"type": "number"},
                    "game_time": {"type": "number", "description": "game years"},
                    "transcended_at": {"type": ["number", "null"]},
                    "seq": {"type": "integer"},
                },
            },
            "resources": _RESOURCES,
            "rates": _RESOURCES,
            "upgrades": {"type": "object"},
            "research": {"type": "object"},
            "bodies": {
                "type": "object",
                "description": "columns: ids, kind, name, mass, radius, position, "
                "velocity, level, life_stage, population, created_at (one entry per body)",
                "properties": {"ids": {"type": "array", "items": {"type": "integer"}}},
            },
        },
    },
    "Leaderboard": {
        "type": "object",
        "required": ["kind", "entries"],
        "properties": {
            "kind": {"type": "string", "enum": list(LEADERBOARD_KINDS)},
            "entries": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["rank", "garden_id", "owner_id", "owner_name", "score"],
                    "properties": {
                        "rank": {"type": "integer"},
                        "garden_id": {"type": "integer"},
                        "owner_id": {"type": "integer"},
                        "owner_name": {"type": "string"},
                        "score": {"type": "number"},
                    },
                },
            },
        },
    },
    "OpenApiDocument": {"type": "object", "required": ["openapi", "paths"]},
}

REGISTER_BODY = {
    "type": "object",
    "required": ["username", "password"],
    "additionalProperties": False,
    "properties": {
        "username": {
            "type": "string",
            "pattern": acc.USERNAME_PATTERN,
            "description": f"{acc.USERNAME_MIN} to {acc.USERNAME_MAX} characters from "
            f"{acc.USERNAME_CHARACTERS}; unique ignoring case",
        },
        "password": {
            "type": "string",
            "minLength": acc.PASSWORD_MIN,
            "maxLength": acc.PASSWORD_MAX,
            "description": "any characters",
        },
        "display_name": {
            "type": "string",
            "maxLength": 256,
            "description": f"1 to {acc.DISPLAY_NAME_MAX} printable characters after "
            "trimming; defaults to the username",
        },
    },
}
LOGIN_BODY = {
    "type": "object",
    "required": ["username", "password"],
    "additionalProperties": False,
    "properties": {
        "username": {"type": "string", "minLength": 1, "maxLength": 256},
        "password": {"type": "string", "minLength": 1, "maxLength": 1024},
    },
}
REFRESH_BODY = {
    "type": "object",
    "required": ["refresh_token"],
    "additionalProperties": False,
    "properties": {
        "refresh_token": {"type": "string", "minLength": 1, "maxLength": acc.REFRESH_TOKEN_MAX}
    },
}
PATCH_ME_BODY = {
    "type": "object",
    "required": ["display_name"],
    "additionalProperties": False,
    "properties": {
        "display_name": {
            "type": "string",
            "maxLength": 256,
            "description": f"1 to {acc.DISPLAY_NAME_MAX} printable characters after trimming",
        }
    },
}
CREATE_BODY = {
    "type": "object",
    "required": ["kind"],
    "additionalProperties": False,
    "properties": {
        "kind": {
            "type": "string",
            "maxLength": 64,
            "examples": list(rules.KINDS),
            "description": "asteroid, comet, moon, dwarf_planet, planet, gas_giant, star "
            "or black_hole (others: 422 WS_GAME_004)",
        },
        "position": _NULLABLE_VECTOR,
        "velocity": _NULLABLE_VECTOR,
        "name": {
            "type": ["string", "null"],
            "maxLength": 1024,
            "description": "1 to 64 printable characters (else 422 WS_GAME_011)",
        },
        "parent_id": {
            "type": ["integer", "null"],
            "minimum": 0,
            "maximum": INT64_MAX,
            "description": "moons only: the planet or gas giant it orbits",
        },
    },
}


class Api:
    """The handlers, bound to the daemon's services."""

    def __init__(
        self,
        accounts: acc.Accounts,
        persistence: Any,
        game: Any,
        document: Any,
    ) -> None:
        self.accounts = accounts
        self.persistence = persistence
        self.game = GameAccess(game)
        self._document = document  # callable -> the OpenAPI document

    # -- auth ---------------------------------------------------------------------------

    async def register(self, call: Call) -> Reply:
        body = call.body
        record = await self.accounts.register(
            body["username"], body["password"], body.get("display_name")
        )
        location = f"{PREFIX}/players/me".encode()
        return Reply(201, acc.account_json(record), {b"Location": location})

    async def login(self, call: Call) -> Reply:
        session = await self.accounts.login(call.body["username"], call.body["password"])
        return Reply(200, session.as_json())

    async def refresh(self, call: Call) -> Reply:
        session = await self.accounts.refresh(call.body["refresh_token"])
        return Reply(200, session.as_json())

    async def logout(self, call: Call) -> Reply:
        await self.accounts.logout(call.body["refresh_token"])
        return Reply(204)

    # -- players --------------------------------------------------------------------------

    async def _player(self, account: Any) -> dict[str, Any]:
        owned = await self.persistence.store.gardens_of(account.id)
        return {**acc.account_json(account), "garden_id": owned[0].id if owned else None}

    async def get_me(self, call: Call) -> Reply:
        return Reply(200, await self._player(call.account))

    async def patch_me(self, call: Call) -> Reply:
        record = await self.accounts.rename(call.account.id, call.body["display_name"])
        return Reply(200, await self._player(record))

    async def delete_me(self, call: Call) -> Reply:
        account = call.account
        owned = await self.persistence.store.gardens_of(account.id)
        # The store first (it cascades to gardens, bodies, tokens): if it fails,
        # nothing has changed.  Then the world forgets the gardens; a save that
        # races with this finds them missing and does not recreate them.
        await self.accounts.delete(account.id)
        await self.game.forget_gardens(account.id, [g.id for g in owned])
        try:
            await self.persistence.leaderboards.invalidate()
        except Exception as exc:  # the boards refresh at their TTL anyway
            log.warn("could not invalidate leaderboards: {error}", error=repr(exc))
        return Reply(204)

    # -- gardens and bodies -------------------------------------------------------------

    async def get_garden(self, call: Call) -> Reply:
        garden_id = call.path["garden_id"]
        viewer = call.account.id if call.account is not None else None
        world = self.game.world
        try:
            snapshot = await self.game.read(garden_id, lambda: world.snapshot(garden_id))
        except GardenNotFound:
            raise errors.not_found("no such garden") from None
        header = snapshot["garden"]
        if not header["public"] and header["owner_id"] != viewer:
            raise errors.not_found("no such garden")  # private: as if it did not exist
        return Reply(200, snapshot)

    async def list_bodies(self, call: Call) -> Reply:
        garden_id = await self.game.player_garden(call.account)
        limit, after = call.query["limit"], call.query["after"]
        world = self.game.world

        def page() -> dict[str, Any]:
            garden = world.garden(garden_id)
            ids = sorted(int(i) for i in world.bodies(garden)["ids"].tolist())
            chosen = [i for i in ids if i > after][: limit + 1]
            items = [world.body(garden, i) for i in chosen[:limit]]
            more = len(chosen) > limit
            return {
                "items": items,
                "total": len(ids),
                "limit": limit,
                "next_after": items[-1]["id"] if more and items else None,
            }

        return Reply(200, await self.game.read(garden_id, page))

    async def create_body(self, call: Call) -> Reply:
        garden_id = await self.game.player_garden(call.account)
        body = call.body

        def vector(name: str) -> tuple[float, float, float] | None:
            value = body.get(name)
            return None if value is None else tuple(float(v) for v in value)  # type: ignore

        command = CreateBody(
            garden_id,
            call.account.id,
            body["kind"],
            position=vector("position"),
            velocity=vector("velocity"),
            name=body.get("name"),
            parent_id=body.get("parent_id"),
        )
        result = await self.game.submit(garden_id, command)
        return Reply(201, result)

    # -- leaderboards and the document -----------------------------------------------------

    async def leaderboard(self, call: Call) -> Reply:
        kind, limit = call.path["kind"], call.query["limit"]
        rows = await self.persistence.leaderboards.top(kind, limit)
        entries = [
            {
                "rank": rank,
                "garden_id": row.garden_id,
                "owner_id": row.owner_id,
                "owner_name": row.owner_name,
                "score": row.score,
            }
            for rank, row in enumerate(rows, start=1)
        ]
        return Reply(200, {"kind": kind, "entries": entries})

    async def openapi(self, call: Call) -> Reply:
        return Reply(200, self._document())

    # -- the table ---------------------------------------------------------------------

    def routes(self) -> list[Route]:
        garden_id = Param(
            "garden_id",
            "path",
            {"type": "integer", "minimum": 1, "maximum": INT64_MAX},
            "the garden's id",
        )
        board = Param(
            "kind", "path", {"type": "string", "enum": list(LEADERBOARD_KINDS)}, "which board"
        )
        return [
            Route(
                "POST",
                f"{PREFIX}/auth/register",
                "register",
                "Create an account",
                self.register,
                "auth",
                description="Rate limited per client address. Log in afterwards.",
                rate_limited=True,
                body=REGISTER_BODY,
                status=201,
                response=ref("Account"),
                errors=(409, 503),
            ),
            Route(
                "POST",
                f"{PREFIX}/auth/login",
                "login",
                "Log in: an access token and a refresh token",
                self.login,
                "auth",
                description="Rate limited per client address (brute-force protection).",
                rate_limited=True,
                body=LOGIN_BODY,
                response=ref("Session"),
                errors=(401, 503),
            ),
            Route(
                "POST",
                f"{PREFIX}/auth/refresh",
                "refresh",
                "Trade a refresh token for a new pair (the old one is used up)",
                self.refresh,
                "auth",
                description="Presenting a used refresh token again revokes every token "
                "of its session (401 AUTH_REFRESH_REUSED).",
                rate_limited=True,
                body=REFRESH_BODY,
                response=ref("Session"),
                errors=(401, 503),
            ),
            Route(
                "POST",
                f"{PREFIX}/auth/logout",
                "logout",
                "Log out: revoke the session of this refresh token",
                self.logout,
                "auth",
                body=REFRESH_BODY,
                status=204,
                errors=(503,),
            ),
            Route(
                "GET",
                f"{PREFIX}/players/me",
                "getMe",
                "The logged-in player",
                self.get_me,
                "players",
                auth=AUTH_REQUIRED,
                response=ref("Player"),
            ),
            Route(
                "PATCH",
                f"{PREFIX}/players/me",
                "updateMe",
                "Change the display name",
                self.patch_me,
                "players",
                auth=AUTH_REQUIRED,
                body=PATCH_ME_BODY,
                response=ref("Player"),
            ),
            Route(
                "DELETE",
                f"{PREFIX}/players/me",
                "deleteMe",
                "Delete the account, its garden and its sessions",
                self.delete_me,
                "players",
                auth=AUTH_REQUIRED,
                status=204,
            ),
            Route(
                "GET",
                f"{PREFIX}/gardens/{{garden_id}}",
                "getGarden",
                "A garden's snapshot (public gardens, or your own)",
                self.get_garden,
                "gardens",
                description="A private garden that is not yours answers 404, like a "
                "garden that does not exist.",
                auth=AUTH_OPTIONAL,
                params=(garden_id,),
                response=ref("GardenSnapshot"),
                errors=(404, 503),
            ),
            Route(
                "GET",
                f"{PREFIX}/celestial-bodies",
                "listBodies",
                "Your garden's bodies, by id, a page at a time",
                self.list_bodies,
                "bodies",
                auth=AUTH_REQUIRED,
                params=(
                    Param(
                        "limit",
                        "query",
                        {"type": "integer", "minimum": 1, "maximum": BODY_PAGE_MAX, "default": 100},
                        "bodies per page",
                        required=False,
                    ),
                    Param(
                        "after",
                        "query",
                        {"type": "integer", "minimum": 0, "maximum": INT64_MAX, "default": 0},
                        "cursor: only bodies with a larger id (next_after of the last page)",
                        required=False,
                    ),
                ),
                response=ref("BodyPage"),
            ),
            Route(
                "POST",
                f"{PREFIX}/celestial-bodies",
                "createBody",
                "Create a body in your garden (the WebSocket CreateBody command)",
                self.create_body,
                "bodies",
                description="Same rules and error codes as the WebSocket command: 409 "
                "WS_GAME_001 (resources), WS_GAME_002 (cap), WS_GAME_005 (research); "
                "422 WS_GAME_003 (placement), WS_GAME_004 (kind), WS_GAME_006 (parent), "
                "WS_GAME_011 (name); 503 WS_RATE_002 when the game's queue is full.",
                auth=AUTH_REQUIRED,
                body=CREATE_BODY,
                status=201,
                response=ref("CreatedBody"),
                errors=(409,),
            ),
            Route(
                "GET",
                f"{PREFIX}/leaderboards/{{kind}}",
                "getLeaderboard",
                "The best gardens: total_mass, thought_points or transcendence",
                self.leaderboard,
                "leaderboards",
                params=(
                    board,
                    Param(
                        "limit",
                        "query",
                        {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": LEADERBOARD_MAX,
                            "default": 10,
                        },
                        "entries",
                        required=False,
                    ),
                ),
                response=ref("Leaderboard"),
                errors=(503,),
            ),
            Route(
                "GET",
                f"{PREFIX}/openapi.json",
                "getOpenApi",
                "This document",
                self.openapi,
                "meta",
                response=ref("OpenApiDocument"),
            ),
        ]
