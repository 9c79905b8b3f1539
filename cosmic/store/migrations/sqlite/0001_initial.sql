-- Cosmic Gardener schema, version 1 (SQLite).  Same tables and meaning as
-- migrations/postgresql/0001_initial.sql; times are REAL epoch seconds and
-- the garden state is JSON text.

CREATE TABLE accounts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT, -- ids are never reused
    username      TEXT NOT NULL,
    username_key  TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    REAL NOT NULL
);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    family_id  TEXT NOT NULL,
    issued_at  REAL NOT NULL,
    expires_at REAL NOT NULL,
    used_at    REAL,
    revoked    INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX refresh_tokens_account ON refresh_tokens (account_id);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE gardens (
    id             INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused
    owner_id       INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    public         INTEGER NOT NULL,
    created_at     REAL NOT NULL,
    saved_at       REAL NOT NULL,
    game_time      REAL NOT NULL,
    state          TEXT NOT NULL,
    total_mass     REAL NOT NULL DEFAULT 0,
    thought_points REAL NOT NULL DEFAULT 0,
    transcended_at REAL,
    version        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX gardens_owner ON gardens (owner_id, id);
CREATE INDEX gardens_total_mass ON gardens (total_mass DESC, id);
CREATE INDEX gardens_thought_points ON gardens (thought_points DESC, id);
CREATE INDEX gardens_transcended ON gardens (transcended_at, id) WHERE transcended_at IS NOT NULL;

CREATE TABLE bodies (
    garden_id     INTEGER NOT NULL REFERENCES gardens (id) ON DELETE CASCADE,
    body_id       INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    mass          REAL NOT NULL,
    radius        REAL NOT NULL,
    px            REAL NOT NULL,
    py            REAL NOT NULL,
    pz            REAL NOT NULL,
    vx            REAL NOT NULL,
    vy            REAL NOT NULL,
    vz            REAL NOT NULL,
    level         INTEGER NOT NULL,
    created_at    REAL NOT NULL,
    life_stage    TEXT,
    population    REAL NOT NULL DEFAULT 0,
    life_progress REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (garden_id, body_id)
) WITHOUT ROWID;
