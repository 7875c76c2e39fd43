namespace AttestBroker.Storage.Migrations;

/// <summary>Versioned schema for PostgreSQL (tables live in the configured schema). Never edit a released migration.</summary>
internal static class PostgresMigrations
{
    public static readonly IReadOnlyList<Migration> All =
    [
        new(1, "initial", """
            CREATE TABLE used_nonces (
                nonce_id   TEXT   NOT NULL PRIMARY KEY,
                expires_ms BIGINT NOT NULL,
                used_ms    BIGINT NOT NULL
            );
            CREATE INDEX ix_used_nonces_expires ON used_nonces (expires_ms);

            CREATE TABLE audit_log (
                seq        BIGINT NOT NULL PRIMARY KEY,
                prev_hash  BYTEA  NOT NULL UNIQUE,
                hash       BYTEA  NOT NULL UNIQUE,
                kind       TEXT   NOT NULL,
                at_ms      BIGINT NOT NULL,
                event_json TEXT   NOT NULL
            );

            CREATE TABLE audit_heads (
                id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                seq       BIGINT NOT NULL,
                head_hash BYTEA  NOT NULL,
                signature BYTEA  NOT NULL,
                key_id    TEXT   NOT NULL,
                signed_ms BIGINT NOT NULL
            );

            CREATE TABLE policies (
                name       TEXT   NOT NULL,
                version    BIGINT NOT NULL,
                document   TEXT   NOT NULL,
                sha256     TEXT   NOT NULL,
                author     TEXT   NOT NULL,
                comment    TEXT,
                created_ms BIGINT NOT NULL,
                PRIMARY KEY (name, version)
            );

            CREATE TABLE key_records (
                key_id      TEXT   NOT NULL PRIMARY KEY,
                wrapped     BYTEA  NOT NULL,
                kek_id      TEXT   NOT NULL,
                kek_version BIGINT NOT NULL,
                state       TEXT   NOT NULL CHECK (state IN ('enabled', 'disabled')),
                backend     TEXT   NOT NULL,
                created_ms  BIGINT NOT NULL,
                rotated_ms  BIGINT,
                disabled_ms BIGINT
            );

            CREATE TABLE collateral (
                cache_key      TEXT   NOT NULL PRIMARY KEY,
                body           BYTEA  NOT NULL,
                body_sha256    BYTEA  NOT NULL,
                headers_json   TEXT   NOT NULL,
                fetched_ms     BIGINT NOT NULL,
                fresh_until_ms BIGINT NOT NULL
            );
            """),
    ];
}
