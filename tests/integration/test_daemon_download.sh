#!/usr/bin/env bash
# offhostd RestoreService.DownloadFiles: a backup of a small ext4 disk with a 3 MiB random
# file, served by offhostd on a unix socket, streamed back with the Python grpcio client
# (daemon/client.py): the bytes equal the source, a resumed stream gives the rest, the audit
# log names who downloaded what, a read-only token is refused and a folder needs tar.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/daemon/lib.sh"
need qemu-nbd mkfs.ext4

T=$WORK/tree
mkdir -p "$T/data"
head -c 3M /dev/urandom >"$T/data/big.bin"
truncate -s 16M "$WORK/disk.raw"
mkfs.ext4 -q -F -d "$T" "$WORK/disk.raw"
URI=$(serve_nbd disk "$WORK/disk.raw")
new_datastore "$WORK/ds"
run_expect 0 "$OFFHOST" backup --datastore "$WORK/ds" --vm web01 --disk "vda=$URI" --json

gen_stubs
SOCK=$WORK/run/offhostd.sock
OPERATOR_HASH=$(token operator)
READER_HASH=$(token reader)
cat >"$WORK/offhostd.toml" <<EOF2
[server]
unix_socket = "$SOCK"
audit_log = "$WORK/log/audit.log"
state_dir = "$WORK/state"

[[token]]
name = "backup-app"
sha256 = "$OPERATOR_HASH"
role = "operator"

[[token]]
name = "auditor"
sha256 = "$READER_HASH"
role = "read-only"

[[datastore]]
name = "main"
path = "$WORK/ds"
EOF2
"$OFFHOSTD" --config "$WORK/offhostd.toml" 2>"$WORK/offhostd.log" &
track_server offhostd $!
wait_for_socket "$SOCK"

SNAP=datastores/main/vms/web01/snapshots/latest
OPERATOR=(--unix "$SOCK" --token-file "$WORK/operator.token")
SHA=$(sha256sum <"$T/data/big.bin" | cut -d' ' -f1)

# the whole file
expect "OK snapshot=datastores/main/vms/web01/snapshots/* format=DOWNLOAD_FORMAT_RAW content=3145728 offset=0 bytes=3145728 sha256=$SHA" \
  "${OPERATOR[@]}" --snapshot "$SNAP" --path /vda/data/big.bin --out "$WORK/got.bin" download
cmp "$T/data/big.bin" "$WORK/got.bin" || fail "the downloaded bytes differ from the source"

# resumed at an offset inside a chunk: the rest
tail -c +1234568 "$T/data/big.bin" >"$WORK/rest.want"
expect "OK *content=3145728 offset=1234567 bytes=$((3145728 - 1234567)) sha256=$(sha256sum <"$WORK/rest.want" | cut -d' ' -f1)" \
  "${OPERATOR[@]}" --snapshot "$SNAP" --path /vda/data/big.bin --offset 1234567 \
  --out "$WORK/rest.bin" download
cmp "$WORK/rest.want" "$WORK/rest.bin" || fail "the resumed bytes differ from the source"

# refusals and errors
expect "PERMISSION_DENIED reason=ROLE_TOO_LOW *read-only*operator*" --unix "$SOCK" \
  --token-file "$WORK/reader.token" --snapshot "$SNAP" --path /vda/data/big.bin \
  --out "$WORK/denied.bin" download
expect "NOT_FOUND reason=PATH_NOT_FOUND *" "${OPERATOR[@]}" --snapshot "$SNAP" \
  --path /vda/data/nope --out "$WORK/nope.bin" download
expect "OK *format=DOWNLOAD_FORMAT_TAR *" "${OPERATOR[@]}" --snapshot "$SNAP" --path /vda/data \
  --out "$WORK/folder.bin" download

# the audit log: one record per authorized download, with who and what
audit=$WORK/log/audit.log
[ "$(grep -c '"action":"download"' "$audit")" -eq 4 ] || fail "audit log: $(cat "$audit")"
grep '"who":"backup-app"' "$audit" | grep '"what":"web01@[^"]*:/vda/data/big.bin"' |
  grep -q '"where":"caller, bytes 0-3145728: OK"' || fail "no record of the download: $(cat "$audit")"
grep -q '"where":"caller, bytes 1234567-3145728: OK"' "$audit" || fail "no record of the resume"
grep -q '"who":"auditor"' "$audit" && fail "the refused call is in the audit log"
grep -q "^<4>offhostd: refused a call from unix:.*PERMISSION_DENIED ROLE_TOO_LOW" \
  "$WORK/offhostd.log" || fail "the refusal is not logged: $(cat "$WORK/offhostd.log")"

pid=$(server_pid offhostd)
kill -TERM "$pid"
wait "$pid" || fail "offhostd exited $? on SIGTERM"
echo PASS
