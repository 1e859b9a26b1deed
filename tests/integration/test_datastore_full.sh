#!/usr/bin/env bash
# The datastore's file system fills up mid-backup (a 16 MiB tmpfs, a 64 MiB incompressible disk):
# the backup fails with exit 1 and says so, commits nothing, leaves no staging or partial chunk
# files, the datastore still verifies, and a backup that fits still works afterwards.
source "$(dirname "$0")/lib.sh"
need qemu-nbd mount umount python3
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root to mount a small tmpfs"; exit 77; }

MNT=$WORK/mnt
mkdir "$MNT"
mount -t tmpfs -o size=16M tmpfs "$MNT" 2>/dev/null || { echo "SKIP: cannot mount a tmpfs here"; exit 77; }
trap 'umount "$MNT" 2>/dev/null || true; cleanup' EXIT

DS=$MNT/ds
new_datastore "$DS"
head -c 64M /dev/urandom >"$WORK/big.raw"
URI=$(serve_nbd big "$WORK/big.raw")
run_expect 1 "$OFFHOST" backup --datastore "$DS" --vm big --disk "vda=$URI"
expect_output "No space left on device"
expect_output "no snapshot was created"
[ "$(snapshot_count "$DS")" -eq 0 ] || fail "a backup that ran out of space left a snapshot"
[ -z "$(staging_entries "$DS")" ] || fail "staging left in $DS/tmp: $(staging_entries "$DS")"
[ -z "$(find "$DS/chunks" -name '*.tmp.*')" ] || fail "partial chunk files left: $(find "$DS/chunks" -name '*.tmp.*')"
run_expect 0 "$OFFHOST" verify --datastore "$DS"

# a small disk still fits
truncate -s 16M "$WORK/small.raw"
head -c 1M /dev/urandom | dd of="$WORK/small.raw" bs=1M seek=5 conv=notrunc status=none
URI_S=$(serve_nbd small "$WORK/small.raw")
run_expect 0 "$OFFHOST" backup --datastore "$DS" --vm small --disk "vda=$URI_S"
run_expect 0 "$OFFHOST" restore --datastore "$DS" small@latest --to "$WORK/small.restored"
expect_identical "$WORK/small.raw" "$WORK/small.restored"
run_expect 0 "$OFFHOST" verify --datastore "$DS"
echo PASS
