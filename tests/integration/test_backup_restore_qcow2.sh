#!/usr/bin/env bash
# A qcow2 source (exported with -f qcow2): unallocated clusters, zero clusters and data must
# all come back as the raw disk the guest sees.
source "$(dirname "$0")/lib.sh"
need qemu-nbd qemu-img qemu-io python3

DS=$WORK/ds
new_datastore "$DS"

make_mixed_disk "$WORK/disk.raw" 48
# the qcow2 image is compact: holes and zero runs become unallocated clusters
qemu-img convert -q -f raw -O qcow2 "$WORK/disk.raw" "$WORK/disk.qcow2"
# plus explicit zero clusters over data (allocated-as-zero in the qcow2 metadata) and one
# unaligned data write, mirrored into the raw reference
qemu-io -f qcow2 -c "write -q -z 2M 1M" -c "write -q -P 0x6b 30000 70000" "$WORK/disk.qcow2" >/dev/null
dd if=/dev/zero of="$WORK/disk.raw" bs=1M seek=2 count=1 conv=notrunc status=none
python3 - "$WORK/disk.raw" <<'EOF'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(30000)
    f.write(b"\x6b" * 70000)
EOF
run_expect 0 qemu-img compare -f raw -F qcow2 "$WORK/disk.raw" "$WORK/disk.qcow2"

URI=$(serve_nbd src "$WORK/disk.qcow2" qcow2)
J=$(backup_json "$DS" db01 "sda=$URI")
[ "$(json_field "$J" 'j["disks"][0]["size"]')" -eq $((48 << 20)) ] || fail "disk size: $J"
# the qcow2's unallocated clusters are not read
[ "$(json_field "$J" 'j["disks"][0]["unallocated_bytes"] > 0')" = True ] ||
  fail "expected unallocated ranges in the qcow2: $J"
[ "$(json_field "$J" 'j["bytes_read"] < 24 << 20')" = True ] || fail "read too much of a compact qcow2: $J"

run_expect 0 "$OFFHOST" restore --datastore "$DS" db01@latest --to "$WORK/restored.raw"
expect_identical "$WORK/disk.raw" "$WORK/restored.raw"

# and the same disk restored into a qcow2 target through NBD compares equal too
qemu-img create -q -f qcow2 "$WORK/target.qcow2" 48M
qemu-io -f qcow2 -c "write -q -P 0xff 0 48M" "$WORK/target.qcow2" >/dev/null
URI_T=$(serve_nbd_writable target "$WORK/target.qcow2" qcow2)
run_expect 0 "$OFFHOST" restore --datastore "$DS" db01@latest --disk sda --to "$URI_T"
stop_server target
run_expect 0 qemu-img compare -f raw -F qcow2 "$WORK/disk.raw" "$WORK/target.qcow2"

run_expect 0 "$OFFHOST" verify --datastore "$DS"
echo PASS
