#!/usr/bin/env bash
# The offhost CLI against offhostd (--server): an ext4 disk exported by qemu-nbd on a unix
# socket is VM web01 of the daemon's inventory. Over the unix socket with an operator token:
# backup (a job, watched to its end), snapshots (table and --json), ls, find, history,
# restore-file (byte-identical), jobs (the backup succeeded), verify; over TLS on 127.0.0.1 with a
# client certificate: snapshots. A wrong token exits 4 with the daemon's reason; no token over
# TLS exits 4 saying how to give one; --datastore with --server is a usage error (2).
source "$(dirname "$0")/lib.sh"
need qemu-nbd mkfs.ext4 openssl python3

SOCK=$WORK/run/offhostd.sock
SERVER=unix:$SOCK

# token NAME: a random token in $WORK/NAME.token; prints its sha256 line for the config.
token() {
  head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$WORK/$1.token"
  "$OFFHOSTD" hash-token <"$WORK/$1.token"
}
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# make_pki: $WORK/pki/{ca,server,client}.{crt,key}; the server certificate is for 127.0.0.1.
make_pki() {
  local d=$WORK/pki ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  mkdir -p "$d"
  openssl req -x509 "${ec[@]}" -keyout "$d/ca.key" -out "$d/ca.crt" -days 2 \
    -subj "/CN=offhost test CA" 2>/dev/null
  openssl req "${ec[@]}" -keyout "$d/server.key" -out "$d/server.csr" -subj "/CN=localhost" \
    2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\n' >"$d/server.ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 2 -extfile "$d/server.ext" -out "$d/server.crt" 2>/dev/null
  openssl req "${ec[@]}" -keyout "$d/client.key" -out "$d/client.csr" -subj "/CN=backup-app" \
    2>/dev/null
  openssl x509 -req -in "$d/client.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 2 -out "$d/client.crt" 2>/dev/null
}

# An unpartitioned ext4 disk with a file to find and restore.
mkdir -p "$WORK/tree/etc/app"
head -c 300000 /dev/urandom >"$WORK/tree/etc/app/data.bin"
echo "listen 8080" >"$WORK/tree/etc/app/app.conf"
mkfs.ext4 -q -F -d "$WORK/tree" "$WORK/web01.raw" 32M >/dev/null
URI=$(serve_nbd web01 "$WORK/web01.raw")
new_datastore "$WORK/ds"
make_pki
PORT=$(free_port)
OPERATOR_HASH=$(token operator)
echo "not-a-configured-token" >"$WORK/wrong.token"
cat >"$WORK/offhostd.toml" <<EOF2
[server]
unix_socket = "$SOCK"
listen = ["127.0.0.1:$PORT"]
audit_log = "$WORK/log/audit.log"
state_dir = "$WORK/state"

[server.tls]
certificate = "pki/server.crt"
private_key = "pki/server.key"
client_ca = "pki/ca.crt"

[[token]]
name = "backup-app"
sha256 = "$OPERATOR_HASH"
role = "operator"

[[datastore]]
name = "main"
path = "$WORK/ds"

[[host]]
name = "kvm1"
driver = "nbd"
datastore = "main"

[[vm]]
name = "web01"
host = "kvm1"
settings = { disks = { vda = "$URI" } }
EOF2
# The daemon's test hook holds each backup at its view until $HOLD exists: made now, backups
# run through; removed for the Ctrl-C test.
HOLD=$WORK/hold
touch "$HOLD"
OFFHOST_TEST_HOLD_VIEW=$HOLD "$OFFHOSTD" --config "$WORK/offhostd.toml" 2>"$WORK/offhostd.log" &
track_server offhostd $!
wait_for_socket "$SOCK"
for _ in $(seq 1 100); do
  python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' \
    "$PORT" 2>/dev/null && break
  sleep 0.1
done

D=(--server "$SERVER" --token-file "$WORK/operator.token")

run_expect 0 "$OFFHOST" backup "${D[@]}" --vm web01
expect_output "backup web01@"
expect_output "catalog: "
echo "ok: backup through the daemon: $(head -1 <<<"$OUT")"
SNAP=$(sed -n 's/^backup \(web01@[^ ]*\): .*/\1/p' <<<"$OUT")
[ -n "$SNAP" ] || fail "no snapshot in: $OUT"

run_expect 0 "$OFFHOST" snapshots "${D[@]}"
expect_output "SNAPSHOT"
expect_output "$SNAP"
run_expect 0 "$OFFHOST" snapshots "${D[@]}" --vm web01 --json
[ "$(json_field "$OUT" 'j[0]["vm"] + "@" + j[0]["snapshot"]')" = "$SNAP" ] ||
  fail "snapshots --json: $OUT"
echo "ok: snapshots (table and --json)"

run_expect 0 "$OFFHOST" ls "${D[@]}" "web01@latest"
expect_output "ext4"
VOL=$(awk '{print $1; exit}' <<<"$OUT")
run_expect 0 "$OFFHOST" ls "${D[@]}" "web01@latest:/$VOL/etc/app"
expect_output "data.bin"
expect_output "300000"
echo "ok: ls /$VOL/etc/app"

run_expect 0 "$OFFHOST" find "${D[@]}" 'data.bin'
expect_output "/$VOL/etc/app/data.bin"
run_expect 0 "$OFFHOST" history "${D[@]}" "web01:/$VOL/etc/app/data.bin"
expect_output "appeared"
echo "ok: find and history"

mkdir "$WORK/out"
run_expect 0 "$OFFHOST" restore-file "${D[@]}" "$SNAP:/$VOL/etc/app/data.bin" --to "$WORK/out"
expect_identical "$WORK/tree/etc/app/data.bin" "$WORK/out/data.bin"
run_expect 1 "$OFFHOST" restore-file "${D[@]}" "$SNAP:/$VOL/etc/app/data.bin" --to "$WORK/out"
expect_output "--overwrite"
[ -z "$(ls -A "$WORK/out" | grep -v '^data.bin$')" ] || fail "leftovers in --to: $(ls -A "$WORK/out")"
echo "ok: restore-file gives identical bytes and does not overwrite"

run_expect 0 "$OFFHOST" jobs "${D[@]}"
grep -E "backup +succeeded +$SNAP" <<<"$OUT" >/dev/null || fail "jobs: $OUT"
run_expect 0 "$OFFHOST" jobs "${D[@]}" --json
[ "$(json_field "$OUT" 'j[0]["state"]')" = JOB_STATE_SUCCEEDED ] || fail "jobs --json: $OUT"
echo "ok: jobs lists the backup as succeeded"

run_expect 0 "$OFFHOST" verify "${D[@]}"
expect_output "verify main: "
expect_output "all good"
echo "ok: verify through the daemon: $OUT"

# Ctrl-C during a watched backup cancels the job: CANCELLED, exit 1, no new snapshot.
rm -f "$HOLD" "$HOLD.ready"
"$OFFHOST" backup "${D[@]}" --vm web01 >"$WORK/cancel.out" 2>&1 &
BACKUP_PID=$!
for _ in $(seq 1 300); do [ -e "$HOLD.ready" ] && break; sleep 0.1; done
[ -e "$HOLD.ready" ] || fail "the backup never took its view: $(cat "$WORK/cancel.out")"
kill -INT "$BACKUP_PID"
sleep 0.5
touch "$HOLD"
RC=0
wait "$BACKUP_PID" || RC=$?
[ "$RC" = 1 ] || fail "Ctrl-C'd backup exited $RC: $(cat "$WORK/cancel.out")"
grep -q "cancelled" "$WORK/cancel.out" || fail "no cancel message: $(cat "$WORK/cancel.out")"
[ "$(snapshot_count "$WORK/ds" web01)" = 1 ] || fail "a cancelled backup left a snapshot"
run_expect 0 "$OFFHOST" jobs "${D[@]}"
grep -qE "backup +cancelled" <<<"$OUT" || fail "jobs after the cancel: $OUT"
echo "ok: Ctrl-C cancels the backup job: $(tail -1 "$WORK/cancel.out")"
run_expect 1 "$OFFHOST" jobs cancel "${D[@]}" no-such-job
echo "ok: jobs cancel of an unknown job: $(head -1 <<<"$OUT")"

# TLS on 127.0.0.1 with a client certificate.
TLS=(--server "127.0.0.1:$PORT" --ca "$WORK/pki/ca.crt" --cert "$WORK/pki/client.crt"
  --key "$WORK/pki/client.key")
OFFHOST_TOKEN=$(cat "$WORK/operator.token") run_expect 0 "$OFFHOST" snapshots "${TLS[@]}"
expect_output "$SNAP"
echo "ok: snapshots over TLS with \$OFFHOST_TOKEN"

# Refusals: exit code 4 and a message that says what to do.
run_expect 4 "$OFFHOST" snapshots --server "$SERVER" --token-file "$WORK/wrong.token"
expect_output "TOKEN_INVALID"
expect_output "refused the token"
echo "ok: a wrong token: $(head -1 <<<"$OUT")"
run_expect 4 "$OFFHOST" snapshots "${TLS[@]}"
expect_output "TOKEN_MISSING"
expect_output "--token-file"
echo "ok: no token: $(tail -1 <<<"$OUT")"
run_expect 2 "$OFFHOST" snapshots "${D[@]}" --datastore "$WORK/ds"
run_expect 5 "$OFFHOST" snapshots --server "unix:$WORK/nothing.sock"
expect_output "is offhostd running"
echo "ok: usage and unreachable daemon"

# The local mode is unchanged: the same snapshot, read from the directory.
run_expect 0 "$OFFHOST" snapshots --datastore "$WORK/ds"
expect_output "$SNAP"
echo "PASS"
