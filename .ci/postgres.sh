#!/usr/bin/env bash
# Starts a throw-away PostgreSQL on 127.0.0.1 for the test suites and prints the Npgsql connection string.
# Usage: eval "$(.ci/postgres.sh start)"   ...   .ci/postgres.sh stop
set -euo pipefail
PORT="${ATTESTBROKER_PG_PORT:-55432}"
DATA="${ATTESTBROKER_PG_DATA:-/tmp/attestbroker-ci-pg}"
case "${1:-start}" in
  start)
    if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
      echo "== installing PostgreSQL (Debian packages)" >&2
      apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null 2>&1
    fi
    BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
    id postgres >/dev/null 2>&1 || useradd --system --home /var/lib/postgresql postgres
    if [ -f "$DATA/postmaster.pid" ]; then
      su postgres -s /bin/sh -c "$BIN/pg_ctl -D $DATA -m fast -w stop" >/dev/null 2>&1 || true
    fi
    rm -rf "$DATA" && mkdir -p "$DATA" && chown postgres "$DATA" && chmod 700 "$DATA"
    su postgres -s /bin/sh -c "$BIN/initdb -D $DATA -A trust -U postgres --no-sync" >/dev/null
    su postgres -s /bin/sh -c "$BIN/pg_ctl -D $DATA -l $DATA/server.log -o '-c listen_addresses=127.0.0.1 -p $PORT -k $DATA -c fsync=off' -w start" >/dev/null
    echo "export ATTESTBROKER_TEST_POSTGRES='Host=127.0.0.1;Port=$PORT;Username=postgres;Database=postgres;Pooling=true'"
    ;;
  stop)
    BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
    su postgres -s /bin/sh -c "$BIN/pg_ctl -D $DATA -m fast -w stop" >/dev/null 2>&1 || true
    ;;
esac
