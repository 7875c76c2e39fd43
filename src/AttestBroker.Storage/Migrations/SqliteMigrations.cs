namespace AttestBroker.Storage.Migrations;

/// <summary>Versioned schema for SQLite. Never edit a released migration; add a new version.</summary>
internal static class SqliteMigrations
{
    public static readonly IReadOnlyList<Migration> All =
    [
        new(1, "initial", """
            CREATE TABLE used_nonces (
                nonce_id   TEXT    NOT NULL PRIMARY KEY,
                expires_ms INTEGER NOT NULL,
                used_ms    INTEGER NOT NULL
            );
            CREATE INDEX ix_used_nonces_expires ON used_nonces (expires_ms);

            CREATE TABLE audit_log (
                seq        INTEGER NOT NULL PRIMARY KEY,
                prev_hash  BLOB    NOT NULL UNIQUE,
                hash       BLOB    NOT NULL UNIQUE,
                kind       TEXT    NOT NULL,
                at_ms      INTEGER NOT NULL,
                event_json TEXT    NOT NULL
            );

            CREATE TABLE audit_heads (
                id        INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
                seq       INTEGER NOT NULL,
                head_hash BLOB    NOT NULL,
                signature BLOB    NOT NULL,
                key_id    TEXT    NOT NULL,
                signed_ms INTEGER NOT NULL
            );

            CREATE TABLE policies (
                name       TEXT    NOT NULL,
                version    INTEGER NOT NULL,
                document   TEXT    NOT NULL,
                sha256     TEXT    NOT NULL,
                author     TEXT    NOT NULL,
                comment    TEXT,
                created_ms INTEGER NOT NULL,
                PRIMARY KEY (name, version)
            );

            CREATE TABLE key_records (
                key_id      TEXT    NOT NULL PRIMARY KEY,
                wrapped     BLOB    NOT NULL,
                kek_id      TEXT    NOT NULL,
                kek_version INTEGER NOT NULL,
                state       TEXT    NOT NULL CHECK (state IN ('enabled', 'disabled')),
                backend     TEXT    NOT NULL,
                created_ms  INTEGER NOT NULL,
                rotated_ms  INTEGER,
                disabled_ms INTEGER
            );

            CREATE TABLE collateral (
                cache_key      TEXT    NOT NULL PRIMARY KEY,
                body           BLOB    NOT NULL,
                body_sha256    BLOB    NOT NULL,
                headers_json   TEXT    NOT NULL,
                fetched_ms     INTEGER NOT NULL,
                fresh_until_ms INTEGER NOT NULL
            );
            """),
    ];
}
