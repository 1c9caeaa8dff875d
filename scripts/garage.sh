#!/usr/bin/env bash
# A throwaway single-node garage (crates.io, a real S3-compatible server) for the
# tests that write HLS objects through object_store's S3 client.
#
#   bash scripts/garage.sh install          # cargo install the pinned garage, if missing
#   bash scripts/garage.sh run -- CMD ...   # start garage, run CMD with ROSTRUM_TEST_S3_*, stop it
#
# Or source it and call garage_install, garage_start (exports ROSTRUM_TEST_S3_*) and
# garage_stop (safe to call twice, made for `trap garage_stop EXIT`).
#
# Each start gets its own temp dir (lmdb metadata, data, config, log), a random
# rpc_secret, and free loopback ports for rpc, s3 and admin (retried if a port is
# taken between the check and garage's bind).

GARAGE_VERSION="2.5.0"
GARAGE_FEATURES="lmdb,bundled-libs"
GARAGE_BIN="${CARGO_HOME:-$HOME/.cargo}/bin/garage"
GARAGE_REGION="garage"
GARAGE_BUCKET="rostrum-test"
GARAGE_KEY_NAME="rostrum-test"

GARAGE_DIR="${GARAGE_DIR:-}"
GARAGE_PID="${GARAGE_PID:-}"
GARAGE_S3_PORT=""
GARAGE_KEY_ID=""
GARAGE_SECRET=""

# garage_install: cargo install the pinned version unless that binary is there.
garage_install() {
  local have=""
  if [ -x "$GARAGE_BIN" ]; then have=$("$GARAGE_BIN" --version 2>/dev/null || true); fi
  # e.g. "garage cargo:2.5.0 [features: bundled-libs, lmdb]"
  if [[ " $have " =~ [^0-9.]${GARAGE_VERSION//./\\.}[^0-9.] ]]; then
    echo "garage $GARAGE_VERSION already installed: $GARAGE_BIN"
    return 0
  fi
  command -v cc >/dev/null 2>&1 || { echo "garage needs a C compiler (cc) to build" >&2; return 1; }
  echo "installing garage $GARAGE_VERSION from crates.io (6 to 14 minutes on 2 cores)"
  local t0=$SECONDS
  cargo install --locked --quiet garage --version "=$GARAGE_VERSION" \
    --no-default-features --features "$GARAGE_FEATURES" --force
  echo "garage $GARAGE_VERSION installed in $((SECONDS - t0))s: $GARAGE_BIN"
}

# garage reads GARAGE_RPC_HOST, GARAGE_RPC_SECRET, ... from the environment over
# its config file: run it without them, so it only ever talks to this instance.
_GARAGE_ENV=(env -u GARAGE_RPC_HOST -u GARAGE_RPC_SECRET -u GARAGE_RPC_SECRET_FILE
  -u GARAGE_ADMIN_TOKEN -u GARAGE_ADMIN_TOKEN_FILE -u GARAGE_METRICS_TOKEN
  -u GARAGE_METRICS_TOKEN_FILE -u GARAGE_CONFIG_FILE -u GARAGE_ALLOW_WORLD_READABLE_SECRETS)

# The garage CLI, pointed at this instance, in bounded time: it waits forever on
# a port that accepts but does not speak garage's RPC (seen here).
_garage() {
  timeout "${_GARAGE_TIMEOUT:-30}" "${_GARAGE_ENV[@]}" "$GARAGE_BIN" -c "$GARAGE_DIR/garage.toml" "$@"
}

_garage_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

# A loopback TCP port nobody listens on (below the ephemeral range, so outgoing
# connections don't take it meanwhile), not in "$@" already.
_garage_free_port() {
  local p taken i t
  for i in $(seq 1 200); do
    p=$((10000 + (RANDOM * 32768 + RANDOM) % 22000))
    taken=""
    for t in "$@"; do if [ "$t" = "$p" ]; then taken=1; fi; done
    if [ -n "$taken" ]; then continue; fi
    if command -v ss >/dev/null 2>&1 && [ -n "$(ss -Htan "sport = :$p" 2>/dev/null)" ]; then continue; fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then continue; fi
    echo "$p"
    return 0
  done
  echo "no free port found" >&2
  return 1
}

# _garage_boot: write a config with fresh ports and start the server; 0 once its
# RPC answers, 2 if a port was taken (retry), 1 on any other failure.
_garage_boot() {
  local rpc s3 admin i
  rpc=$(_garage_free_port) && s3=$(_garage_free_port "$rpc") && admin=$(_garage_free_port "$rpc" "$s3") || return 1
  GARAGE_S3_PORT=$s3
  GARAGE_ADMIN_PORT=$admin
  rm -rf "$GARAGE_DIR/meta" "$GARAGE_DIR/data"
  (
    umask 077
    cat >"$GARAGE_DIR/garage.toml" <<EOF
metadata_dir = "$GARAGE_DIR/meta"
data_dir = "$GARAGE_DIR/data"
db_engine = "lmdb"
lmdb_map_size = "1GiB"
replication_factor = 1
disable_scrub = true

rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$(_garage_hex 32)"

[s3_api]
s3_region = "$GARAGE_REGION"
api_bind_addr = "127.0.0.1:$s3"

[admin]
api_bind_addr = "127.0.0.1:$admin"
admin_token = "$(_garage_hex 32)"
EOF
  )
  # Not through the _garage function: `func &` forks a subshell, and $! would be
  # that shell, not garage (env execs garage, so here $! is garage itself). Its
  # output goes to the log only: a child holding our stdout would keep a CI
  # pipe open after we are done.
  "${_GARAGE_ENV[@]}" RUST_LOG="${GARAGE_LOG:-garage=warn}" "$GARAGE_BIN" -c "$GARAGE_DIR/garage.toml" server \
    </dev/null >"$GARAGE_DIR/garage.log" 2>&1 &
  GARAGE_PID=$!
  for i in $(seq 1 150); do
    if ! kill -0 "$GARAGE_PID" 2>/dev/null; then
      _garage_kill
      if _garage_port_taken; then return 2; fi
      return 1
    fi
    if _GARAGE_TIMEOUT=3 _garage status >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "garage did not answer on rpc port $rpc within 30s" >&2
  return 1
}

# A taken rpc port makes garage abort; a taken s3 or admin port only logs an
# error while garage runs on (and the tests would talk to whoever holds it).
_garage_port_taken() {
  if grep -qi "address already in use" "$GARAGE_DIR/garage.log" 2>/dev/null; then
    echo "garage: a port was taken meanwhile, retrying on others" >&2
    return 0
  fi
  return 1
}

# Whether garage itself answers HTTP on PORT (rather than whoever took the port
# between our check and its bind).
_garage_serves() {
  local reply
  reply=$(timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0" &&
    printf "GET $1 HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3 && cat <&3' "$1" "$2" 2>/dev/null) || true
  [[ "$reply" == *Garage* ]]
}

# Single-node layout, then a key and a bucket it may read, write and own.
_garage_setup() {
  local node
  node=$(_garage node id -q 2>/dev/null) && node=${node%%@*} && [ -n "$node" ] &&
    _garage layout assign -z dc1 -c 1G "$node" >/dev/null &&
    _garage layout apply --version 1 >/dev/null &&
    _garage_wait_healthy &&
    _garage key create "$GARAGE_KEY_NAME" >/dev/null &&
    GARAGE_KEY_ID=$(_garage key info "$GARAGE_KEY_NAME" --key-id) &&
    GARAGE_SECRET=$(_garage key info "$GARAGE_KEY_NAME" --secret-key) &&
    _garage bucket create "$GARAGE_BUCKET" >/dev/null &&
    _garage bucket allow --read --write --owner --key "$GARAGE_KEY_NAME" "$GARAGE_BUCKET" >/dev/null
}

_garage_wait_healthy() {
  local i
  for i in $(seq 1 100); do
    _GARAGE_TIMEOUT=3 _garage health -q >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "garage not healthy after its layout was applied" >&2
  return 1
}

# garage_start: start a fresh instance and export ROSTRUM_TEST_S3_*.
garage_start() {
  if [ -n "$GARAGE_PID" ]; then echo "garage already running (pid $GARAGE_PID)" >&2; return 1; fi
  [ -x "$GARAGE_BIN" ] || { echo "no garage at $GARAGE_BIN: run garage_install first" >&2; return 1; }
  GARAGE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/rostrum-garage.XXXXXX")
  local rc=2 tries=0
  while [ "$rc" = 2 ] && [ "$tries" -lt 5 ]; do
    tries=$((tries + 1))
    rc=0
    _garage_boot || rc=$?
    if [ "$rc" = 0 ]; then
      _garage_setup || rc=1
      # A taken s3 or admin port only shows in the log (the admin one not even
      # there): check that garage answers on both.
      if _garage_port_taken; then
        rc=2
      elif ! _garage_serves "$GARAGE_S3_PORT" / || ! _garage_serves "$GARAGE_ADMIN_PORT" /health; then
        echo "garage: its s3 or admin port answers with something else, retrying" >&2
        rc=2
      fi
      if [ "$rc" = 2 ]; then _garage_kill; fi
    fi
  done
  if [ "$rc" != 0 ]; then
    echo "garage failed to start or set up (tries: $tries); its log:" >&2
    tail -n 30 "$GARAGE_DIR/garage.log" >&2 || true
    garage_stop
    return 1
  fi
  export ROSTRUM_TEST_S3_ENDPOINT="http://127.0.0.1:$GARAGE_S3_PORT"
  export ROSTRUM_TEST_S3_BUCKET="$GARAGE_BUCKET"
  export ROSTRUM_TEST_S3_ACCESS_KEY="$GARAGE_KEY_ID"
  export ROSTRUM_TEST_S3_SECRET_KEY="$GARAGE_SECRET"
  export ROSTRUM_TEST_S3_REGION="$GARAGE_REGION"
  echo "garage $GARAGE_VERSION up (pid $GARAGE_PID): s3 $ROSTRUM_TEST_S3_ENDPOINT, bucket $GARAGE_BUCKET, dir $GARAGE_DIR"
}

# Stop the server (TERM, then KILL after 5 s), keep its dir.
_garage_kill() {
  local i
  [ -n "$GARAGE_PID" ] || return 0
  kill "$GARAGE_PID" 2>/dev/null || true
  for i in $(seq 1 50); do
    kill -0 "$GARAGE_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$GARAGE_PID" 2>/dev/null || true
  wait "$GARAGE_PID" 2>/dev/null || true
  GARAGE_PID=""
}

# garage_stop: stop the server, remove its dir, unset the env. Idempotent.
garage_stop() {
  _garage_kill
  if [ -n "$GARAGE_DIR" ]; then
    rm -rf "$GARAGE_DIR"
    GARAGE_DIR=""
  fi
  unset ROSTRUM_TEST_S3_ENDPOINT ROSTRUM_TEST_S3_BUCKET ROSTRUM_TEST_S3_ACCESS_KEY \
    ROSTRUM_TEST_S3_SECRET_KEY ROSTRUM_TEST_S3_REGION
}

_garage_main() {
  set -euo pipefail
  case "${1:-}" in
    install)
      garage_install
      ;;
    run)
      shift
      if [ "${1:-}" = "--" ]; then shift; fi
      [ "$#" -gt 0 ] || { echo "usage: $0 run -- COMMAND [ARG...]" >&2; return 2; }
      garage_install
      trap garage_stop EXIT
      trap 'exit 130' INT
      trap 'exit 143' TERM
      garage_start
      local rc=0
      "$@" || rc=$?
      return "$rc"
      ;;
    *)
      echo "usage: $0 install | run -- COMMAND [ARG...]   (or source it: garage_install, garage_start, garage_stop)" >&2
      return 2
      ;;
  esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  _garage_main "$@"
fi
