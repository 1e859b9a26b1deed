#!/usr/bin/env bash
# Restore onto a block device (a loop device; the test makes its own device node in $WORK so
# nothing under /dev is at stake): written in place, zero ranges actively zeroed, the bytes past
# the disk untouched. A restore that fails on a damaged chunk must leave the device node alone —
# "removing the incomplete restore target" is right for a new file, never for a device.
source "$(dirname "$0")/lib.sh"
need qemu-nbd losetup mknod python3
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root for a loop device"; exit 77; }

truncate -s 40M "$WORK/loop.img"
python3 - "$WORK/loop.img" <<'EOF'
import sys
with open(sys.argv[1], "r+b") as f:
    f.write(b"\xa5" * (40 << 20))  # junk: zero ranges of the disk must be written over
EOF
LOOP=$(losetup -f --show "$WORK/loop.img" 2>/dev/null) || { echo "SKIP: no loop device available"; exit 77; }
trap 'losetup -d "$LOOP" 2>/dev/null || true; cleanup' EXIT
BLK=$WORK/blk
mknod "$BLK" b $((0x$(stat -c %t "$LOOP"))) $((0x$(stat -c %T "$LOOP"))) 2>/dev/null && [ -b "$BLK" ] ||
  { echo "SKIP: cannot make a device node for $LOOP here"; exit 77; }

DS=$WORK/ds
new_datastore "$DS"
make_mixed_disk "$WORK/disk.raw" 32
URI=$(serve_nbd src "$WORK/disk.raw")
J=$(backup_json "$DS" web01 "vda=$URI")
SNAP=$(json_field "$J" 'j["snapshot"]')

# an existing device needs --force
run_expect 1 "$OFFHOST" restore --datastore "$DS" "web01@$SNAP" --to "$BLK"
expect_output "already exists"
run_expect 0 "$OFFHOST" restore --datastore "$DS" "web01@$SNAP" --to "$BLK" --force
[ -b "$BLK" ] || fail "the device node is gone after a good restore"
cmp -n $((32 << 20)) "$WORK/disk.raw" "$BLK" >/dev/null || fail "the device does not hold the disk"
python3 - "$BLK" <<'EOF' || fail "the restore wrote past the end of the disk"
import sys
with open(sys.argv[1], "rb") as f:
    f.seek(32 << 20)
    sys.exit(0 if f.read() == b"\xa5" * (8 << 20) else 1)
EOF

# a damaged chunk: the restore fails, the device node stays
HEX=$(python3 - "$WORK/disk.raw" <<'EOF'
import hashlib, sys
with open(sys.argv[1], "rb") as f:
    f.seek(4 << 20)
    print(hashlib.sha256(f.read(4 << 20)).hexdigest())
EOF
)
python3 - "$DS/chunks/${HEX:0:4}/$HEX" <<'EOF'
import os, sys
with open(sys.argv[1], "r+b") as f:
    f.seek(56 + (os.path.getsize(sys.argv[1]) - 56) // 2)
    b = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([b[0] ^ 0x01]))
EOF
run_expect 1 "$OFFHOST" restore --datastore "$DS" "web01@$SNAP" --to "$BLK" --force
expect_output "$HEX"
[ -b "$BLK" ] || fail "a failed restore deleted the block device node $BLK (offhost said: $OUT)"
echo PASS
