#!/usr/bin/env bash
# A datastore on a file system without O_DIRECT (ramfs creates the file, then refuses the
# flag): chunk files fall back to buffered writes, so backups, an incremental's packs,
# restores and verify work there as anywhere else.
source "$(dirname "$0")/lib.sh"
need qemu-nbd mount umount python3
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root to mount a ramfs"; exit 77; }

MNT=$WORK/mnt
mkdir "$MNT"
mount -t ramfs ramfs "$MNT" 2>/dev/null || { echo "SKIP: cannot mount a ramfs here"; exit 77; }
trap 'umount "$MNT" 2>/dev/null || true; cleanup' EXIT
if python3 -c 'import os,sys; os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY | os.O_DIRECT)' \
    "$MNT/probe" 2>/dev/null; then
  echo "SKIP: this kernel's ramfs accepts O_DIRECT, so the fallback is not reached"
  exit 77
fi
rm -f "$MNT/probe"

DS=$MNT/ds
new_datastore "$DS"
make_mixed_disk "$WORK/disk.raw" 32
URI=$(serve_nbd disk "$WORK/disk.raw")
backup_json "$DS" vm1 "vda=$URI" >/dev/null
stop_server disk
head -c 1M /dev/urandom | dd of="$WORK/disk.raw" bs=1M seek=9 conv=notrunc status=none
URI=$(serve_nbd disk "$WORK/disk.raw")
backup_json "$DS" vm1 "vda=$URI" >/dev/null
run_expect 0 "$OFFHOST" restore --datastore "$DS" vm1@latest --to "$WORK/restored.raw"
expect_identical "$WORK/disk.raw" "$WORK/restored.raw"
[ -z "$(find "$DS/chunks" -name '*.tmp.*')" ] || fail "temporary chunk files left behind"
run_expect 0 "$OFFHOST" verify --datastore "$DS"
echo "PASS"
