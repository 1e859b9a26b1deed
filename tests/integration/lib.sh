# Shared helpers of the integration tests. Source it first; it makes $WORK (removed at exit),
# stops every server the test started, and gives small assertion helpers.
set -euo pipefail

: "${OFFHOST:?OFFHOST must point at the offhost binary (ctest sets it)}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/offhost-it.XXXXXX")
PIDS=()

# Servers started inside $(...) (serve_nbd and friends) run in a subshell, where PIDS+= is
# lost; they also append their PID to $WORK/.pids, which cleanup reads.
cleanup() {
  local pid
  for pid in "${PIDS[@]:-}" $(cat "$WORK/.pids" 2>/dev/null); do
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
  done
}

fail() { echo "FAIL: $*" >&2; exit 1; }

# wait_for_socket PATH: waits up to 10 s for a server's unix socket.
wait_for_socket() {
  local i
  for i in $(seq 1 100); do
    [ -S "$1" ] && return 0
    sleep 0.1
  done
  fail "socket $1 did not appear"
}

# track_server NAME PID: remembers a server's PID (for cleanup and server_pid/stop_server).
track_server() {
  PIDS+=("$2")
  echo "$2" >>"$WORK/.pids"
  echo "$2" >"$WORK/$1.pid"
}

# pid_alive PID: true while PID runs (a zombie nobody reaped yet counts as gone).
pid_alive() {
  local st
  st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ $st != Z* ]]
}

# server_pid NAME: the PID of the server started as NAME.
server_pid() { cat "$WORK/$1.pid"; }

# stop_server NAME [SIGNAL]: signals the server NAME (default TERM) and waits until it is gone,
# so a writable export has flushed and released its image lock.
stop_server() {
  local pid i
  pid=$(server_pid "$1")
  kill "-${2:-TERM}" "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do
    pid_alive "$pid" || { rm -f "$WORK/$1.sock"; return 0; }
    sleep 0.1
  done
  fail "server $1 (pid $pid) did not exit"
}

# serve_nbdkit NAME ARGS...: runs `nbdkit ARGS...` on $WORK/NAME.sock and prints the nbd+unix
# URI, e.g. serve_nbdkit slow --readonly --filter=delay file IMG rdelay=10ms. nbdkit runs as a
# daemon (its own parent-death handling kills a foreground nbdkit started inside $(...)); its
# pidfile, written once it accepts connections, gives the PID.
serve_nbdkit() {
  local name=$1 pid
  shift
  rm -f "$WORK/$name.ready"
  nbdkit --unix "$WORK/$name.sock" -P "$WORK/$name.ready" "$@" >"$WORK/$name.nbdkit.log" 2>&1 ||
    fail "nbdkit $name did not start: $(cat "$WORK/$name.nbdkit.log")"
  # the daemon writes the pidfile after its parent has returned
  local i
  for i in $(seq 1 100); do
    [ -s "$WORK/$name.ready" ] && grep -q . "$WORK/$name.ready" && break
    sleep 0.05
  done
  pid=$(cat "$WORK/$name.ready" 2>/dev/null) || true
  [[ $pid =~ ^[0-9]+$ ]] || fail "nbdkit $name wrote no pidfile: $(cat "$WORK/$name.nbdkit.log")"
  track_server "$name" "$pid"
  echo "nbd+unix:///?socket=$WORK/$name.sock"
}

# serve_nbd NAME IMAGE [FORMAT]: exports IMAGE read-only with qemu-nbd on $WORK/NAME.sock and
# prints the nbd+unix URI.
serve_nbd() {
  local name=$1 image=$2 format=${3:-raw}
  qemu-nbd --read-only -f "$format" --socket="$WORK/$name.sock" --persistent --shared=8 \
    "$image" >"$WORK/$name.qemu-nbd.log" 2>&1 &
  track_server "$name" $!
  wait_for_socket "$WORK/$name.sock"
  echo "nbd+unix:///?socket=$WORK/$name.sock"
}

# serve_nbd_writable NAME IMAGE [FORMAT]: same, writable (a restore target).
serve_nbd_writable() {
  local name=$1 image=$2 format=${3:-raw}
  qemu-nbd -f "$format" --socket="$WORK/$name.sock" --persistent --shared=8 \
    "$image" >"$WORK/$name.qemu-nbd.log" 2>&1 &
  track_server "$name" $!
  wait_for_socket "$WORK/$name.sock"
  echo "nbd+unix:///?socket=$WORK/$name.sock"
}

# run_expect CODE CMD...: runs CMD, captures stdout+stderr in $OUT, asserts its exit code.
run_expect() {
  local want=$1 rc=0
  shift
  OUT=$("$@" 2>&1) || rc=$?
  [ "$rc" -eq "$want" ] || fail "expected exit code $want, got $rc from: $*
$OUT"
}

# expect_output TEXT: asserts $OUT contains TEXT.
expect_output() {
  grep -qF -- "$1" <<<"$OUT" || fail "expected output to contain '$1', got:
$OUT"
}

# json_field JSON EXPR: evaluates a Python expression over the parsed JSON `j`.
json_field() {
  python3 -c 'import json,sys; j=json.load(sys.stdin); print(eval(sys.argv[1]))' "$2" <<<"$1"
}

# make_mixed_disk PATH SIZE_MIB: a sparse disk with random data, text, zeros and holes.
make_mixed_disk() {
  local path=$1 size=$2
  truncate -s "${size}M" "$path"
  head -c 6M /dev/urandom | dd of="$path" bs=1M seek=1 conv=notrunc status=none
  # (yes dies of SIGPIPE when head stops reading; under pipefail that must not fail the test)
  { yes "offhost integration test line of compressible text" || true; } | head -c 5M |
    dd of="$path" bs=1M seek=12 conv=notrunc status=none
  dd if=/dev/zero of="$path" bs=1M seek=20 count=3 conv=notrunc status=none  # allocated zeros
  head -c 1M /dev/urandom | dd of="$path" bs=1M seek=$((size - 2)) conv=notrunc status=none
}

# new_datastore DIR [ARGS...]: `offhost datastore init DIR ARGS...`, failing the test if it fails.
new_datastore() {
  run_expect 0 "$OFFHOST" datastore init "$@"
}

# backup_json DS VM DISK-SPEC...: runs a backup with --json, asserts exit 0, prints the JSON.
backup_json() {
  local ds=$1 vm=$2 spec args=()
  shift 2
  for spec in "$@"; do args+=(--disk "$spec"); done
  run_expect 0 "$OFFHOST" backup --datastore "$ds" --vm "$vm" "${args[@]}" --json
  printf '%s\n' "$OUT"
}

# snapshot_count DS [VM]: number of committed snapshots (of VM, or of all VMs).
snapshot_count() {
  local out
  if [ -n "${2:-}" ]; then
    out=$("$OFFHOST" snapshots --datastore "$1" --vm "$2" --json) || fail "snapshots failed: $out"
  else
    out=$("$OFFHOST" snapshots --datastore "$1" --json) || fail "snapshots failed: $out"
  fi
  json_field "$out" 'len(j)'
}

# expect_identical A B: byte-identical files of the same size.
expect_identical() {
  cmp -- "$1" "$2" >/dev/null || fail "$2 differs from $1: $(cmp -- "$1" "$2" 2>&1 | head -1)"
}

# allocated_bytes FILE: bytes the file system actually stores for FILE.
allocated_bytes() { echo $(( $(stat -c %b "$1") * $(stat -c %B "$1") )); }

# staging_entries DS: what is left in the datastore's staging directory.
staging_entries() { ls -A "$1/tmp" | grep '@' || true; }  # staging dirs are VM@ID
