#!/usr/bin/env bash
# What a user gets wrong, and what breaks under them: each case checks the exit code
# (1 failed, 2 bad usage) and that the message says what is wrong.
source "$(dirname "$0")/lib.sh"
need qemu-nbd qemu-img nbdkit python3

DS=$WORK/ds
new_datastore "$DS"
make_mixed_disk "$WORK/disk.raw" 32
URI=$(serve_nbd src "$WORK/disk.raw")
J=$(backup_json "$DS" web01 "vda=$URI")
SNAP=$(json_field "$J" 'j["snapshot"]')

# no snapshot, no staging, still verifies: after every failed backup
assert_untouched() {
  [ "$(snapshot_count "$DS")" -eq 1 ] || fail "$1: a failed backup added a snapshot"
  [ -z "$(staging_entries "$DS")" ] || fail "$1: staging left in $DS/tmp: $(staging_entries "$DS")"
  run_expect 0 "$OFFHOST" verify --datastore "$DS"
}

# --- source URIs ---------------------------------------------------------------------------------
run_expect 2 "$OFFHOST" backup --datastore "$DS" --vm web01 --disk vda=http://x
expect_output "'http://x' is not an NBD URI"
expect_output "disk vda"
assert_untouched "malformed URI"

run_expect 1 "$OFFHOST" backup --datastore "$DS" --vm web01 --disk "vda=nbd+unix:///?socket=$WORK/nothing-here.sock"
expect_output "cannot open NBD export nbd+unix:///?socket=$WORK/nothing-here.sock"
expect_output "disk vda"
assert_untouched "unreachable URI"

# the second disk is unreachable: nothing is committed for the first either
run_expect 1 "$OFFHOST" backup --datastore "$DS" --vm web01 --disk "vda=$URI" \
  --disk "vdb=nbd+unix:///?socket=$WORK/nothing-here.sock"
expect_output "disk vdb"
assert_untouched "second disk unreachable"

# a URI without NAME= (it still contains '=' in ?socket=) is recognised as a missing name
run_expect 2 "$OFFHOST" backup --datastore "$DS" --vm web01 --disk "$URI"
expect_output "must be NAME=SOURCE"
run_expect 2 "$OFFHOST" backup --datastore "$DS" --vm web01 --disk vda
expect_output "must be NAME=SOURCE"
run_expect 2 "$OFFHOST" backup --datastore "$DS" --vm web01 --disk "=$URI"
expect_output "must be NAME=SOURCE"
run_expect 2 "$OFFHOST" backup --datastore "$DS" --vm web01 --disk "v/da=$URI"
expect_output "disk name 'v/da' is invalid"
run_expect 2 "$OFFHOST" backup --datastore "$DS" --vm ../evil --disk "vda=$URI"
expect_output "VM name '../evil' is invalid"
run_expect 2 "$OFFHOST" backup --datastore "$DS" --vm web01
expect_output "--disk"

# a password in the URI is never printed
run_expect 1 "$OFFHOST" backup --datastore "$DS" --vm web01 --disk "vda=nbd://alice:s3cr3t@127.0.0.1:1/vda"
expect_output "nbd://alice:***@127.0.0.1:1/vda"
grep -q s3cr3t <<<"$OUT" && fail "the password was printed: $OUT"
assert_untouched "password URI"

# --- an export that disconnects mid-read ----------------------------------------------------------
head -c 64M /dev/urandom >"$WORK/big.raw"
SLOW=$(serve_nbdkit slow -t 1 --readonly --filter=delay file "$WORK/big.raw" rdelay=250ms)  # 16 reads of 4 MiB: about 4 s
"$OFFHOST" backup --datastore "$DS" --vm flaky --disk "vda=$SLOW" >"$WORK/flaky.log" 2>&1 &
bpid=$!
sleep 0.8
pid_alive "$bpid" || fail "backup finished before the export was killed: $(cat "$WORK/flaky.log")"
kill -9 "$(server_pid slow)"
rc=0
timeout 60 tail --pid="$bpid" -f /dev/null || fail "backup did not stop within 60 s of the export dying"
wait "$bpid" || rc=$?
OUT=$(cat "$WORK/flaky.log")
[ "$rc" -eq 1 ] || fail "backup from a dying export: expected exit 1, got $rc: $OUT"
expect_output "NBD export $SLOW"
expect_output "no snapshot was created"
[ "$(snapshot_count "$DS" flaky)" -eq 0 ] || fail "a failed backup left a snapshot of flaky"
assert_untouched "export died mid-read"

# an export whose reads fail (EIO)
EIO=$(serve_nbdkit eio --readonly --filter=error file "$WORK/big.raw" error-pread=EIO error-pread-rate=100%)
run_expect 1 "$OFFHOST" backup --datastore "$DS" --vm flaky --disk "vda=$EIO"
expect_output "NBD export $EIO"
assert_untouched "export read error"

# --- datastores -------------------------------------------------------------------------------------
run_expect 1 "$OFFHOST" backup --datastore "$WORK/missing" --vm web01 --disk "vda=$URI"
expect_output "datastore '$WORK/missing' does not exist"
expect_output "offhost datastore init"
[ ! -e "$WORK/missing" ] || fail "backup created the missing datastore directory"
run_expect 1 "$OFFHOST" snapshots --datastore "$WORK/missing"
expect_output "does not exist"

mkdir "$WORK/plain"
echo hello >"$WORK/plain/file"
run_expect 1 "$OFFHOST" backup --datastore "$WORK/plain" --vm web01 --disk "vda=$URI"
expect_output "'$WORK/plain' is not an offhost datastore"
run_expect 1 "$OFFHOST" verify --datastore "$WORK/plain"
expect_output "is not an offhost datastore"
run_expect 1 "$OFFHOST" restore --datastore "$WORK/plain" web01@latest --to "$WORK/x.raw"
expect_output "is not an offhost datastore"
[ "$(ls -A "$WORK/plain")" = file ] || fail "offhost wrote into a directory that is not a datastore"

# datastore init on a non-empty directory / an existing datastore / a bad chunk size
run_expect 1 "$OFFHOST" datastore init "$WORK/plain"
expect_output "exists and is not an empty directory"
[ "$(ls -A "$WORK/plain")" = file ] || fail "init wrote into a non-empty directory"
run_expect 1 "$OFFHOST" datastore init "$DS"
expect_output "already an offhost datastore"
run_expect 2 "$OFFHOST" datastore init "$WORK/ds3m" --chunk-size 3M
expect_output "power of two"
[ ! -e "$WORK/ds3m" ] || fail "a refused init created $WORK/ds3m"

# a datastore this user may read but not write (run as nobody)
if command -v setpriv >/dev/null; then
  AS_NOBODY=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
elif command -v runuser >/dev/null; then
  AS_NOBODY=(runuser -u nobody --)
else
  echo "SKIP: neither setpriv nor runuser: not testing a read-only datastore"
  AS_NOBODY=()
fi
if [ "${#AS_NOBODY[@]}" -gt 0 ] && [ "$(id -u)" -eq 0 ]; then
  chmod 755 "$WORK"
  chmod 777 "$WORK/src.sock"  # so the failure is about the datastore, not the export
  "${AS_NOBODY[@]}" test -r "$DS/offhost-datastore.json" || fail "nobody cannot read $DS"
  "${AS_NOBODY[@]}" test -w "$DS" && fail "nobody can write $DS"
  run_expect 1 "${AS_NOBODY[@]}" "$OFFHOST" backup --datastore "$DS" --vm web01 --disk "vda=$URI"
  expect_output "is not writable by this user"
  # reading still works for that user
  run_expect 0 "${AS_NOBODY[@]}" "$OFFHOST" snapshots --datastore "$DS"
  expect_output "web01@$SNAP"
  mkdir "$WORK/nobody-out" && chown nobody "$WORK/nobody-out"
  run_expect 0 "${AS_NOBODY[@]}" "$OFFHOST" restore --datastore "$DS" "web01@$SNAP" --to "$WORK/nobody-out/r.raw"
  expect_identical "$WORK/disk.raw" "$WORK/nobody-out/r.raw"
  assert_untouched "read-only datastore"
fi

# --- restore targets -------------------------------------------------------------------------------
echo "precious" >"$WORK/exists.raw"
run_expect 1 "$OFFHOST" restore --datastore "$DS" "web01@$SNAP" --to "$WORK/exists.raw"
expect_output "already exists"
expect_output "--force"
[ "$(cat "$WORK/exists.raw")" = precious ] || fail "a refused restore changed the existing file"
run_expect 0 "$OFFHOST" restore --datastore "$DS" "web01@$SNAP" --to "$WORK/exists.raw" --force
expect_identical "$WORK/disk.raw" "$WORK/exists.raw"
# --force over a larger file: the result is exactly the disk, not the disk plus old tail
head -c 40M /dev/urandom >"$WORK/larger.raw"
run_expect 0 "$OFFHOST" restore --datastore "$DS" "web01@$SNAP" --to "$WORK/larger.raw" --force
expect_identical "$WORK/disk.raw" "$WORK/larger.raw"

mkdir "$WORK/adir"
run_expect 2 "$OFFHOST" restore --datastore "$DS" "web01@$SNAP" --to "$WORK/adir" --force
expect_output "is a directory"
run_expect 1 "$OFFHOST" restore --datastore "$DS" "web01@$SNAP" --to "$WORK/no/such/dir/r.raw"
expect_output "$WORK/no/such/dir/r.raw"

# an NBD target that is too small / read-only
qemu-img create -q -f raw "$WORK/small.raw" 16M
SMALL=$(serve_nbd_writable small "$WORK/small.raw")
run_expect 2 "$OFFHOST" restore --datastore "$DS" "web01@$SNAP" --to "$SMALL"
expect_output "needs $((32 << 20))"
expect_output "the NBD target was not written"  # refused before any write: not "partial"
RO=$(serve_nbd ro "$WORK/small.raw")
run_expect 1 "$OFFHOST" restore --datastore "$DS" "web01@$SNAP" --to "$RO"
expect_output "read-only"

# --- unknown snapshot / VM / disk: exit 1, no target created ----------------------------------------
run_expect 1 "$OFFHOST" restore --datastore "$DS" web01@2001-01-01T00:00:00Z --to "$WORK/r.raw"
expect_output "snapshot 'web01@2001-01-01T00:00:00Z' not found"
expect_output "latest is web01@$SNAP"
run_expect 1 "$OFFHOST" restore --datastore "$DS" nosuchvm@latest --to "$WORK/r.raw"
expect_output "VM 'nosuchvm' has no snapshots"
run_expect 1 "$OFFHOST" restore --datastore "$DS" "web01@$SNAP" --disk vdz --to "$WORK/r.raw"
expect_output "has no disk 'vdz' (it has: vda)"
run_expect 2 "$OFFHOST" restore --datastore "$DS" web01 --to "$WORK/r.raw"
expect_output "is not VM@SNAPSHOT"
run_expect 2 "$OFFHOST" restore --datastore "$DS" "web01@" --to "$WORK/r.raw"
expect_output "is not VM@SNAPSHOT"
[ ! -e "$WORK/r.raw" ] || fail "a failed restore created its target"
# an existing file is left alone when the snapshot does not exist, even with --force
echo "precious" >"$WORK/keep.raw"
run_expect 1 "$OFFHOST" restore --datastore "$DS" nosuchvm@latest --to "$WORK/keep.raw" --force
[ "$(cat "$WORK/keep.raw")" = precious ] || fail "a restore of an unknown VM touched the target"

run_expect 2 "$OFFHOST" snapshots --datastore "$DS" --vm "bad/name"
expect_output "VM name 'bad/name' is invalid"
run_expect 2 "$OFFHOST" frobnicate
run_expect 2 "$OFFHOST" backup --datastore "$DS" --vm web01 --disk "vda=$URI" --no-such-flag

run_expect 0 "$OFFHOST" verify --datastore "$DS"
echo PASS
