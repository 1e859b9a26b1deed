#!/usr/bin/env bash
# A damaged chunk is repaired by the next backup of the same data: verify names it and moves
# it aside, the next backup stores it again, and the older snapshots that use it restore again.
source "$(dirname "$0")/lib.sh"
need qemu-nbd python3

make_mixed_disk "$WORK/disk.raw" 32
URI=$(serve_nbd src "$WORK/disk.raw")
DS=$WORK/ds
"$OFFHOST" datastore init "$DS" >/dev/null
run_expect 0 "$OFFHOST" backup --datastore "$DS" --vm vm --disk "vda=$URI"
FIRST=$(json_field "$("$OFFHOST" snapshots --datastore "$DS" --json)" 'j[0]["snapshot"]')
CHUNK=$(find "$DS/chunks" -type f -size +1M | head -1)
python3 -c 'import sys; f=open(sys.argv[1],"r+b"); f.seek(100); b=f.read(1); f.seek(100); f.write(bytes([b[0]^1]))' "$CHUNK"

run_expect 3 "$OFFHOST" verify --datastore "$DS"
expect_output "moved aside to $CHUNK.damaged"
[ -e "$CHUNK.damaged" ] && [ ! -e "$CHUNK" ] || fail "the damaged chunk was not moved aside"
run_expect 1 "$OFFHOST" restore --datastore "$DS" "vm@$FIRST" --to "$WORK/broken.raw"

J=$("$OFFHOST" backup --datastore "$DS" --vm vm --disk "vda=$URI" --json)
[ "$(json_field "$J" 'j["disks"][0]["new_chunks"]')" -ge 1 ] || fail "the lost chunk was not stored again: $J"
run_expect 0 "$OFFHOST" verify --datastore "$DS"
run_expect 0 "$OFFHOST" restore --datastore "$DS" "vm@$FIRST" --to "$WORK/repaired.raw"
expect_identical "$WORK/disk.raw" "$WORK/repaired.raw"
echo PASS
