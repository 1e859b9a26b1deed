#!/usr/bin/env bash
# offhostd RestoreService restore jobs through the real daemon and the Python grpcio client
# (daemon/restore_client.py): a disk restored to a file under [server] restore_roots equals
# the backed-up image, a folder restored keeps its content and symlink, targets outside the
# roots (or escaping them with `..` or a symlink) are refused, a folder downloaded as a tar
# (and resumed) extracts with `tar -x`, and the audit log holds each restore with who asked
# and where it went.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/daemon/lib.sh"
need qemu-nbd mkfs.ext4 cmp tar

T=$WORK/tree
mkdir -p "$T/data/sub"
head -c 3M /dev/urandom >"$T/data/big.bin"
echo hello >"$T/data/sub/small.txt"
chmod 0640 "$T/data/sub/small.txt"
ln -s big.bin "$T/data/link"
truncate -s 16M "$WORK/disk.raw"
mkfs.ext4 -q -F -d "$T" "$WORK/disk.raw"
URI=$(serve_nbd disk "$WORK/disk.raw")
new_datastore "$WORK/ds"
run_expect 0 "$OFFHOST" backup --datastore "$WORK/ds" --vm web01 --disk "vda=$URI" --json

gen_stubs
SOCK=$WORK/run/offhostd.sock
ROOT=$WORK/restore
mkdir -p "$ROOT/files" "$WORK/elsewhere"
ln -s "$WORK/elsewhere" "$ROOT/escape"
cat >"$WORK/offhostd.toml" <<EOF2
[server]
unix_socket = "$SOCK"
audit_log = "$WORK/log/audit.log"
state_dir = "$WORK/state"
restore_roots = ["$ROOT"]

[[token]]
name = "backup-app"
sha256 = "$(token operator)"
role = "operator"

[[datastore]]
name = "main"
path = "$WORK/ds"
EOF2
"$OFFHOSTD" --config "$WORK/offhostd.toml" 2>"$WORK/offhostd.log" &
track_server offhostd $!
wait_for_socket "$SOCK"

SNAP=datastores/main/vms/web01/snapshots/latest
restore() { "$PYTHON" "$DAEMON_DIR/restore_client.py" "$WORK/gen" "$SOCK" "$WORK/operator.token" "$@"; }
expect_restore() {
  local pattern=$1 out
  shift
  out=$(restore "$@")
  [[ $out == $pattern ]] || fail "restore $*: got '$out', want '$pattern'"
  echo "ok: ${out:0:160}"
}

# a disk, to a new sparse file under the restore root: the same bytes as the source
expect_restore "OK job=jobs/* state=JOB_STATE_SUCCEEDED done=16777216 watched=16777216 disk=vda size=16777216 target=$ROOT/vda.img" \
  disk "$SNAP" "$ROOT/vda.img"
cmp "$WORK/disk.raw" "$ROOT/vda.img" || fail "the restored disk differs from the source"
[ ! -e "$ROOT/vda.img.partial" ] || fail "the .partial file was left behind"
expect_restore "FAILED_PRECONDITION reason=TARGET_EXISTS *" disk "$SNAP" "$ROOT/vda.img"

# targets outside the root, by name, by `..` and through a symlink, are refused
for target in "$WORK/elsewhere/vda.img" "$ROOT/../elsewhere/vda.img" "$ROOT/escape/vda.img"; do
  expect_restore "PERMISSION_DENIED reason=RESTORE_TARGET_NOT_ALLOWED *" disk "$SNAP" "$target"
done
expect_restore "PERMISSION_DENIED reason=RESTORE_TARGET_NOT_ALLOWED *" files "$SNAP" /vda/data "$ROOT/escape"
[ -z "$(ls -A "$WORK/elsewhere")" ] || fail "something was written outside the restore root"

# a folder, with its content, modes and symlink
expect_restore "OK job=jobs/* state=JOB_STATE_SUCCEEDED * files=2 dirs=2 symlinks=1" \
  files "$SNAP" /vda/data "$ROOT/files"
cmp "$T/data/big.bin" "$ROOT/files/data/big.bin" || fail "big.bin differs"
cmp "$T/data/sub/small.txt" "$ROOT/files/data/sub/small.txt" || fail "small.txt differs"
[ "$(stat -c %a "$ROOT/files/data/sub/small.txt")" = 640 ] || fail "small.txt lost its mode"
[ "$(readlink "$ROOT/files/data/link")" = big.bin ] || fail "the symlink was not restored as one"

# a folder as a tar stream, resumed mid-way; `tar -x` gives back the tree
OPERATOR=(--unix "$SOCK" --token-file "$WORK/operator.token" --snapshot "$SNAP" --path /vda/data)
expect "OK *format=DOWNLOAD_FORMAT_TAR *offset=0 *" "${OPERATOR[@]}" --out "$WORK/data.tar" download
tail -c +1000001 "$WORK/data.tar" >"$WORK/rest.want"
expect "OK *format=DOWNLOAD_FORMAT_TAR *offset=1000000 *" "${OPERATOR[@]}" --offset 1000000 \
  --out "$WORK/rest.tar" download
cmp "$WORK/rest.want" "$WORK/rest.tar" || fail "the resumed tar differs from the whole one"
mkdir -p "$WORK/untar"
tar -x -f "$WORK/data.tar" -C "$WORK/untar" || fail "tar -x failed"
cmp "$T/data/big.bin" "$WORK/untar/data/big.bin" || fail "big.bin from the tar differs"
[ "$(stat -c %a "$WORK/untar/data/sub/small.txt")" = 640 ] || fail "the tar lost small.txt's mode"
[ "$(readlink "$WORK/untar/data/link")" = big.bin ] || fail "the tar lost the symlink"

# the audit log: every restore call, with who, what and where
audit=$WORK/log/audit.log
[ "$(grep -c '"action":"restore-disk"' "$audit")" -eq 5 ] || fail "audit log: $(cat "$audit")"
grep '"who":"backup-app"' "$audit" | grep '"action":"restore-disk"' |
  grep '"what":"web01@[^"]* disk vda"' | grep -q "\"where\":\"$ROOT/vda.img: jobs/[^\"]* started\"" ||
  fail "no record of the disk restore: $(cat "$audit")"
grep '"action":"restore-disk"' "$audit" | grep -q "\"where\":\"$ROOT/escape/vda.img: .*outside" ||
  fail "no record of the refused restore: $(cat "$audit")"
grep '"who":"backup-app"' "$audit" | grep '"action":"restore-files"' |
  grep '"what":"web01@[^"]*:/vda/data"' | grep -q "\"where\":\"$ROOT/files: jobs/[^\"]* started\"" ||
  fail "no record of the file restore: $(cat "$audit")"
grep '"action":"download"' "$audit" | grep '"what":"web01@[^"]*:/vda/data"' |
  grep -q '"where":"caller, bytes 1000000-' || fail "no record of the tar download: $(cat "$audit")"

pid=$(server_pid offhostd)
kill -TERM "$pid"
wait "$pid" || fail "offhostd exited $? on SIGTERM"
echo PASS
