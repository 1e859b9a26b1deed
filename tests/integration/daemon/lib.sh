# Helpers of the offhostd tests (test_daemon_*.sh, test_cli_server.sh), sourced after
# ../lib.sh: the daemon binary, its configuration, tokens, starting it, and (after gen_stubs)
# a Python with grpcio, the offhost.v1 stubs and daemon/client.py.
: "${OFFHOSTD:=$(dirname "$OFFHOST")/daemon/offhostd}"
[ -x "$OFFHOSTD" ] || fail "no offhostd at $OFFHOSTD (set OFFHOSTD)"
DAEMON_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROTO_DIR=$DAEMON_DIR/../../../grpc/proto
PYTHON=

# gen_stubs: Python modules for offhost.v1 and the health/reflection subsets into $WORK/gen;
# sets $PYTHON. Skips the test when Python's grpcio is missing.
gen_stubs() {
  local gen=$WORK/gen plugin py
  need python3 protoc
  # Debian's python3-grpcio and python3-protobuf serve /usr/bin/python3, which need not be
  # the python3 first on PATH (pyenv, venvs).
  for py in python3 /usr/bin/python3; do
    if "$py" -c 'import grpc, google.protobuf' 2>/dev/null; then PYTHON=$py; break; fi
  done
  [ -n "$PYTHON" ] || { echo "SKIP: python3-grpcio or python3-protobuf is not installed"; exit 77; }
  mkdir -p "$gen"
  local protos=("$PROTO_DIR"/offhost/v1/*.proto)
  if "$PYTHON" -c 'import grpc_tools' 2>/dev/null; then
    "$PYTHON" -m grpc_tools.protoc -I "$PROTO_DIR" --python_out="$gen" --grpc_python_out="$gen" \
      "${protos[@]}"
    "$PYTHON" -m grpc_tools.protoc -I "$DAEMON_DIR" --python_out="$gen" \
      --grpc_python_out="$gen" health.proto reflection.proto
  else
    plugin=$(command -v grpc_python_plugin) ||
      { echo "SKIP: neither grpc_tools nor grpc_python_plugin is installed"; exit 77; }
    protoc -I "$PROTO_DIR" --python_out="$gen" --grpc_out="$gen" \
      --plugin=protoc-gen-grpc="$plugin" "${protos[@]}"
    protoc -I "$DAEMON_DIR" --python_out="$gen" --grpc_out="$gen" \
      --plugin=protoc-gen-grpc="$plugin" health.proto reflection.proto
  fi
}

# token NAME: makes a random token in $WORK/NAME.token and prints its sha256 line.
token() {
  head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$WORK/$1.token"
  "$OFFHOSTD" hash-token <"$WORK/$1.token"
}

# write_daemon_config [FILE:ROLE:NAME ...]: starts $WORK/offhostd.toml with what every daemon
# test needs: [server] on $SOCK (plus the lines of $SERVER_EXTRA, e.g. listen or a
# [server.tls] table), its audit log and state folder in $WORK, one [[token]] per
# FILE:ROLE:NAME (the token in $WORK/FILE.token, made here; default
# operator:operator:backup-app) and datastore "main" at $WORK/ds. Hosts and VMs are appended
# by the test (cat >>"$WORK/offhostd.toml").
write_daemon_config() {
  local spec file role name
  [ $# -gt 0 ] || set -- operator:operator:backup-app
  {
    echo "[server]"
    echo "unix_socket = \"$SOCK\""
    echo "audit_log = \"$WORK/log/audit.log\""
    echo "state_dir = \"$WORK/state\""
    [ -z "${SERVER_EXTRA:-}" ] || printf '%s\n' "$SERVER_EXTRA"
    for spec in "$@"; do
      IFS=: read -r file role name <<<"$spec"
      printf '\n[[token]]\nname = "%s"\nsha256 = "%s"\nrole = "%s"\n' "$name" "$(token "$file")" \
        "$role"
    done
    printf '\n[[datastore]]\nname = "main"\npath = "%s"\n' "$WORK/ds"
  } >"$WORK/offhostd.toml"
}

client() { "$PYTHON" "$DAEMON_DIR/client.py" "$WORK/gen" "$@"; }

# expect PATTERN ARGS...: runs the client with ARGS and checks its line against PATTERN.
expect() {
  local pattern=$1 out
  shift
  out=$(client "$@")
  [[ $out == $pattern ]] || fail "client $*: got '$out', want '$pattern'"
  echo "ok: ${out:0:140}"
}

# Backups through offhostd as jobs (test_daemon_backup.sh, test_daemon_sigterm.sh). They use
# $WORK/offhostd.toml, the daemon's socket $SOCK and the hold file $HOLD: while $HOLD is
# missing, every backup waits at its point-in-time view (OFFHOST_TEST_HOLD_VIEW).
# start_daemon: starts offhostd and waits for its socket. A killed daemon leaves its socket
# file: removed first, so wait_for_socket waits for the new one.
start_daemon() {
  rm -f "$SOCK"
  OFFHOST_TEST_HOLD_VIEW=$HOLD "$OFFHOSTD" --config "$WORK/offhostd.toml" \
    2>>"$WORK/offhostd.log" &
  track_server offhostd $!
  wait_for_socket "$SOCK"
}
# as TOKEN ARGS...: daemon/backup_client.py with $WORK/TOKEN.token; prints its one line.
as() { "$PYTHON" "$DAEMON_DIR/backup_client.py" "$WORK/gen" "$SOCK" "$WORK/$1.token" "${@:2}"; }
# field NAME: the value of NAME=... in $LINE.
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" <<<"$LINE"; }
# await_state JOB STATE: polls GetJob until the job is in STATE (60 s at most).
await_state() {
  for _ in $(seq 1 600); do
    LINE=$(as operator get "$1")
    [[ $LINE == *"state=$2 "* ]] && return 0
    sleep 0.1
  done
  fail "job $1 did not reach $2: $LINE"
}
