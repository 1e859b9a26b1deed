#!/usr/bin/env bash
# The offhost CLI against offhostd (--server): an ext4 disk exported by qemu-nbd on a unix
# socket is VM web01 of the daemon's inventory. Over the unix socket with an operator token:
# backup (a job, watched to its end), snapshots (table and --json), ls, find, history,
# restore-file (byte-identical), jobs (the backup succeeded), verify, hosts and vms (aligned
# tables, --json; --disks asks the drivers, and a host that does not answer is shown with its
# error), restore of the whole disk to a file under restore_roots and to an allowed NBD export
# (cmp-identical; an existing file, a target outside the roots and an unknown snapshot exit 1),
# snapshots --config of an image-driver VM (the same text as the local mode), datastore status
# (chunk space counted by the daemon equals the chunk files'); over TLS on
# 127.0.0.1 with a client certificate: snapshots. A wrong token exits 4 with the daemon's reason; no token over
# TLS exits 4 saying how to give one; --datastore with --server is a usage error (2).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/daemon/lib.sh"
need qemu-nbd qemu-img qemu-io mkfs.ext4 openssl python3

SOCK=$WORK/run/offhostd.sock
SERVER=unix:$SOCK

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
# deeper than the catalog walks: the daemon's backup result says so, as a local backup would
(cd "$WORK/tree" && for i in $(seq 1 205); do mkdir d && cd d; done)
mkfs.ext4 -q -F -d "$WORK/tree" "$WORK/web01.raw" 32M >/dev/null
URI=$(serve_nbd web01 "$WORK/web01.raw")
# A powered-off VM's qcow2 image (the image driver keeps its configuration with the backup),
# and a writable export of the same size as web01's disk to restore into.
qemu-img create -q -f qcow2 "$WORK/web05.qcow2" 8M
qemu-io -f qcow2 -c "write -q -P 0x33 0 1M" "$WORK/web05.qcow2" >/dev/null
truncate -s 32M "$WORK/target.raw"
TARGET=$(serve_nbd_writable target "$WORK/target.raw")
mkdir -p "$WORK/restore"
new_datastore "$WORK/ds"
make_pki
PORT=$(free_port)
echo "not-a-configured-token" >"$WORK/wrong.token"
SERVER_EXTRA='listen = ["127.0.0.1:'$PORT'"]
restore_roots = ["'$WORK/restore'"]
restore_nbd_targets = ["'$TARGET'"]

[server.tls]
certificate = "pki/server.crt"
private_key = "pki/server.key"
client_ca = "pki/ca.crt"'
write_daemon_config
cat >>"$WORK/offhostd.toml" <<EOF2

[[host]]
name = "kvm1"
driver = "nbd"
datastore = "main"

[[vm]]
name = "web01"
host = "kvm1"
settings = { disks = { vda = "$URI" } }

[[host]]
name = "images"
driver = "image"
description = "powered-off VMs"

[[vm]]
name = "web05"
host = "images"
settings = { disks = { vda = "$WORK/web05.qcow2" } }

[[host]]
name = "down"
driver = "nbd"

[[vm]]
name = "ghost"
host = "down"
settings = { disks = { vda = "nbd+unix:///vda?socket=$WORK/nobody-serves-this.sock" } }
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
expect_output "not cataloged: the entries of 1 folders"
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
run_expect 1 "$OFFHOST" restore-file "${D[@]}" "$SNAP:/$VOL/etc/app" --to "$WORK/out"
expect_output "restore a folder with --datastore DIR"
echo "ok: restore-file gives identical bytes and does not overwrite; a folder needs local mode"

run_expect 0 "$OFFHOST" jobs "${D[@]}"
grep -E "backup +succeeded +$SNAP" <<<"$OUT" >/dev/null || fail "jobs: $OUT"
run_expect 0 "$OFFHOST" jobs "${D[@]}" --json
[ "$(json_field "$OUT" 'j[0]["state"]')" = JOB_STATE_SUCCEEDED ] || fail "jobs --json: $OUT"
echo "ok: jobs lists the backup as succeeded"

run_expect 0 "$OFFHOST" verify "${D[@]}"
expect_output "verify main: "
expect_output "all good"
echo "ok: verify through the daemon: $OUT"

# column_at HEADER ROW_START: the text of the row starting with ROW_START at the column of
# HEADER in $OUT's table (aligned tables: every row's field starts under its header).
column_at() {
  local header row pos
  header=$(grep -m1 -- "^VM \|^HOST \|^DATASTORE " <<<"$OUT")
  pos=$(awk -v h="$1" '{print index($0, h)}' <<<"$header")
  row=$(grep -m1 -- "^$2 " <<<"$OUT")
  [ "$pos" -gt 0 ] && [ -n "$row" ] || fail "no column $1 or row $2 in: $OUT"
  awk '{print $1}' <<<"${row:pos-1}"
}

# The inventory: hosts and VMs of the daemon's configuration.
run_expect 0 "$OFFHOST" hosts "${D[@]}"
[ "$(column_at DRIVER kvm1)" = nbd ] && [ "$(column_at DRIVER images)" = image ] &&
  [ "$(column_at VMS down)" = 1 ] && [ "$(column_at DATASTORE images)" = main ] &&
  [ "$(column_at ADDRESS images)" = "$WORK" ] || fail "hosts table: $OUT"
run_expect 0 "$OFFHOST" hosts "${D[@]}" --check
[ "$(column_at STATUS kvm1)" = reachable ] && [ "$(column_at STATUS down)" = unreachable: ] ||
  fail "hosts --check: $OUT"
run_expect 0 "$OFFHOST" hosts "${D[@]}" --json
[ "$(json_field "$OUT" '[h["name"] for h in j]')" = "['hosts/down', 'hosts/images', 'hosts/kvm1']" ] &&
  [ "$(json_field "$OUT" 'j[1]["description"]')" = "powered-off VMs" ] || fail "hosts --json: $OUT"
echo "ok: hosts (table, --check, --json)"

run_expect 0 "$OFFHOST" vms "${D[@]}"
[ "$(column_at HOST web01)" = kvm1 ] && [ "$(column_at LATEST web01)" = "${SNAP#web01@}" ] &&
  [ "$(column_at LATEST web05)" = - ] && [ "$(column_at DRIVER web05)" = image ] ||
  fail "vms table: $OUT"
run_expect 0 "$OFFHOST" vms "${D[@]}" --disks
# SIZE is right-aligned: it ends under the end of its header.
size_end=$(awk '{print index($0, "SIZE") + 3}' <<<"$(grep -m1 "^VM " <<<"$OUT")")
row=$(grep -m1 "^web01 " <<<"$OUT")
[ "${row:size_end-9:9}" = "32.00 MiB" ] || fail "vms --disks: SIZE not aligned: $OUT"
[ "$(column_at DISK web01)" = vda ] &&
  [ "$(column_at FORMAT web05)" = qcow2 ] && [ "$(column_at POWER web05)" = stopped ] &&
  [ "$(column_at "NEXT BACKUP" web01)" = full ] || fail "vms --disks: $OUT"
grep -q "^ghost .*error: disk vda: cannot open NBD export" <<<"$OUT" || fail "vms --disks: $OUT"
expect_output "offhost: warning: VM ghost: disk vda: cannot open NBD export"
OUT=$("$OFFHOST" vms "${D[@]}" --disks --host images --json 2>/dev/null)
[ "$(json_field "$OUT" '[(d["name"], d["size_bytes"], d["format"]) for d in j[0]["disks"]]')" = \
  "[('vda', '8388608', 'qcow2')]" ] || fail "vms --disks --json: $OUT"
run_expect 0 "$OFFHOST" vms "${D[@]}" --name nobody
expect_output "no VMs"
run_expect 1 "$OFFHOST" vms "${D[@]}" --host nope
expect_output "HOST_NOT_FOUND"
echo "ok: vms (table, --disks with the unreachable host's error, --json, filters)"

# A whole disk restored by the daemon, as a watched job: to a file under restore_roots (given
# relative: the CLI makes it absolute) and to an NBD export it may write.
run_expect 0 "$OFFHOST" restore "${D[@]}" "$SNAP" --disk vda --to "$WORK/restore/web01.raw"
expect_output "restored $SNAP disk vda to $WORK/restore/web01.raw: 32.00 MiB"
expect_identical "$WORK/web01.raw" "$WORK/restore/web01.raw"
run_expect 1 "$OFFHOST" restore "${D[@]}" web01@latest --to "$WORK/restore/web01.raw"
expect_output "TARGET_EXISTS"
expect_output "add --force to replace it"
echo garbage >"$WORK/restore/web01.raw"
(cd "$WORK/restore" && run_expect 0 "$OFFHOST" restore "${D[@]}" web01@latest --to web01.raw --force
  expect_output "to $WORK/restore/web01.raw: ") || exit 1
expect_identical "$WORK/web01.raw" "$WORK/restore/web01.raw"
run_expect 1 "$OFFHOST" restore "${D[@]}" web01@latest --to "$WORK/elsewhere.raw"
expect_output "RESTORE_TARGET_NOT_ALLOWED"
[ ! -e "$WORK/elsewhere.raw" ] || fail "a restore was written outside restore_roots"
run_expect 1 "$OFFHOST" restore "${D[@]}" web01@2000-01-01T00:00:00Z --to "$WORK/restore/x.raw"
expect_output "no snapshot web01@2000-01-01T00:00:00Z"
run_expect 0 "$OFFHOST" restore "${D[@]}" web01@latest --to "$TARGET"
expect_output "restored $SNAP disk vda to $TARGET: 32.00 MiB"
stop_server target
expect_identical "$WORK/web01.raw" "$WORK/target.raw"
run_expect 0 "$OFFHOST" jobs "${D[@]}"
grep -qE "restore +succeeded" <<<"$OUT" || fail "jobs after the restores: $OUT"
echo "ok: restore through the daemon: identical bytes in a file and an NBD export"

# The VM configuration stored with a snapshot, through the API (Snapshot.vm_config).
run_expect 0 "$OFFHOST" backup "${D[@]}" --vm web05
run_expect 0 "$OFFHOST" snapshots "${D[@]}" --config web05@latest
expect_output '"driver": "image"'
expect_output "$WORK/web05.qcow2"
DAEMON_CONFIG=$OUT
run_expect 0 "$OFFHOST" snapshots --datastore "$WORK/ds" --config web05@latest
[ "$OUT" = "$DAEMON_CONFIG" ] || fail "--config differs between the modes: $OUT"
run_expect 1 "$OFFHOST" snapshots "${D[@]}" --config web01@latest
expect_output "has no stored VM configuration (its driver, nbd, has none)"
run_expect 2 "$OFFHOST" snapshots "${D[@]}" --config web05
echo "ok: snapshots --config through the daemon"

# Space and deduplication: the daemon counts the chunk files in the background (the first
# status call starts it, --wait waits for it); checked against the chunk files themselves.
run_expect 0 "$OFFHOST" datastore status "${D[@]}" --wait --json
chunks=$(find "$WORK/ds" -type f -regextype egrep -regex '.*/[0-9a-f]{64}')
files=$(wc -l <<<"$chunks")
bytes=$(xargs stat -c %s <<<"$chunks" | awk '{s += $1} END {print s}')
[ "$(json_field "$OUT" 'j[0]["status"]["chunk_count"]')" = "$files" ] &&
  [ "$(json_field "$OUT" 'j[0]["status"]["stored_bytes"]')" = "$bytes" ] &&
  [ "$(json_field "$OUT" 'j[0]["status"].get("unreferenced_bytes", "0")')" = 0 ] &&
  [ "$(json_field "$OUT" 'j[0]["status"]["snapshot_count"]')" = 2 ] &&
  [ "$(json_field "$OUT" 'abs(int(j[0]["status"]["logical_bytes"]) / int(j[0]["status"]["unique_bytes"]) - j[0]["status"]["dedupe_ratio"]) < 1e-9')" = True ] ||
  fail "datastore status --json ($files chunk files, $bytes bytes): $OUT"
run_expect 0 "$OFFHOST" datastore status "${D[@]}"
[ "$(column_at DATASTORE main)" = main ] && [ "$(column_at SNAPSHOTS main)" = 2 ] &&
  [[ $(column_at DEDUPE main) == *x ]] && [ "$(column_at COUNTED main)" != counting ] ||
  fail "datastore status: $OUT"
echo "ok: datastore status: $(tail -1 <<<"$OUT")"

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
