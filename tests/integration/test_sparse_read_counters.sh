#!/usr/bin/env bash
# A large, mostly sparse disk: the backup reads only what is allocated (bytes_read ≈ allocated
# bytes), reports the rest as unallocated, and the counters add up. Without an allocation map
# (nbdkit noextents filter) everything is read but zero chunks are still not stored.
source "$(dirname "$0")/lib.sh"
need qemu-nbd qemu-img qemu-io nbdkit python3

CHUNK=$((4 << 20))
DS=$WORK/ds
new_datastore "$DS"

SIZE=$((2 << 30))
IMG=$WORK/big.raw
truncate -s "$SIZE" "$IMG"
# ten 1 MiB random extents (10 MiB) spread over the disk; some straddle chunk boundaries
written=0
for mib in 0 3 100 511 700 1023 1024 1500 1800 2046; do
  head -c 1M /dev/urandom | dd of="$IMG" bs=1M seek="$mib" conv=notrunc status=none
  written=$((written + (1 << 20)))
done
# and a short odd write in the middle of a hole
head -c 5000 /dev/urandom | dd of="$IMG" bs=1 seek=$((1300 * (1 << 20) + 12345)) conv=notrunc status=none
written=$((written + 5000))
sync "$IMG"
allocated=$(allocated_bytes "$IMG")

URI=$(serve_nbd big "$IMG")
J=$(backup_json "$DS" sparse "vda=$URI")
read -r size bytes_read unalloc zero chunks new_chunks <<<"$(json_field "$J" \
  '" ".join(str(j["disks"][0][k]) for k in ("size","bytes_read","unallocated_bytes","zero_bytes","chunks","new_chunks"))')"
[ "$size" -eq "$SIZE" ] || fail "size $size != $SIZE"
[ "$(json_field "$J" 'j["bytes_read"]')" -eq "$bytes_read" ] || fail "top-level bytes_read differs from the disk's: $J"
[ "$bytes_read" -ge "$written" ] || fail "bytes_read $bytes_read < data written $written: $J"
[ "$bytes_read" -le $((allocated + CHUNK)) ] ||
  fail "bytes_read $bytes_read is more than the $allocated allocated bytes (+1 chunk): $J"
[ "$unalloc" -ge $((SIZE - 12 * CHUNK)) ] || fail "unallocated_bytes $unalloc too small: $J"
[ $((chunks * CHUNK + zero + unalloc)) -eq "$SIZE" ] ||
  fail "chunks*chunk_size + zero_bytes + unallocated_bytes != size: $J"
[ "$chunks" -ge 10 ] && [ "$chunks" -le 13 ] || fail "expected 10..13 data chunks, got $chunks: $J"
[ "$new_chunks" -eq "$chunks" ] || fail "first backup: new_chunks $new_chunks != chunks $chunks"

run_expect 0 "$OFFHOST" restore --datastore "$DS" sparse@latest --to "$WORK/big.restored"
expect_identical "$IMG" "$WORK/big.restored"
[ "$(allocated_bytes "$WORK/big.restored")" -le $((13 * CHUNK)) ] ||
  fail "restore of a sparse disk allocated $(allocated_bytes "$WORK/big.restored") bytes"

# --- no allocation map: everything is read, zero chunks are recognised, nothing new stored ----
SMALL=$WORK/small.raw
truncate -s 256M "$SMALL"
dd if="$IMG" of="$SMALL" bs=1M count=4 conv=notrunc status=none  # the data at MiB 0 and 3
URI_N=$(serve_nbdkit noext --readonly --filter=noextents file "$SMALL")
J=$(backup_json "$DS" noext "vda=$URI_N")
[ "$(json_field "$J" 'j["disks"][0]["bytes_read"]')" -eq $((256 << 20)) ] ||
  fail "without an allocation map every byte must be read: $J"
[ "$(json_field "$J" 'j["disks"][0]["zero_bytes"]')" -eq $(((256 << 20) - CHUNK)) ] ||
  fail "all-zero chunks must count as zero_bytes: $J"
[ "$(json_field "$J" 'j["disks"][0]["unallocated_bytes"]')" -eq 0 ] || fail "unallocated_bytes: $J"
# MiB 0 and 3 share the first chunk, which the first backup already stored
[ "$(json_field "$J" 'j["new_bytes"]')" -eq 0 ] || fail "chunks already stored were stored again: $J"
run_expect 0 "$OFFHOST" restore --datastore "$DS" noext@latest --to "$WORK/small.restored"
expect_identical "$SMALL" "$WORK/small.restored"

# --- past 4 GiB: offsets beyond 32 bits, data straddling the 1 GiB block-status windows, zero
#     runs longer than 1 GiB on an NBD target (compared with qemu-img compare, which skips holes)
HUGE=$WORK/huge.raw
truncate -s 6G "$HUGE"
head -c 3M /dev/urandom | dd of="$HUGE" bs=1M seek=1023 conv=notrunc status=none        # 1 GiB edge
head -c 3M /dev/urandom | dd of="$HUGE" bs=1M seek=$((4096 + 511)) conv=notrunc status=none
head -c 1M /dev/urandom | dd of="$HUGE" bs=1M seek=$((6144 - 1)) conv=notrunc status=none  # last MiB
URI_H=$(serve_nbd huge "$HUGE")
J=$(backup_json "$DS" huge "vda=$URI_H")
[ "$(json_field "$J" 'j["disks"][0]["size"]')" -eq $((6 << 30)) ] || fail "6 GiB disk size: $J"
[ "$(json_field "$J" 'j["bytes_read"]')" -eq $((7 << 20)) ] || fail "expected exactly 7 MiB read: $J"
run_expect 0 "$OFFHOST" restore --datastore "$DS" huge@latest --to "$WORK/huge.restored"
run_expect 0 qemu-img compare -f raw -F raw "$HUGE" "$WORK/huge.restored"
qemu-img create -q -f qcow2 "$WORK/huge.qcow2" 6G
qemu-io -f qcow2 -c "write -q -P 0x11 0 64M" -c "write -q -P 0x11 1000M 64M" -c "write -q -P 0x11 3G 64M" \
  -c "write -q -P 0x11 4600M 64M" -c "write -q -P 0x11 6000M 144M" "$WORK/huge.qcow2" >/dev/null
URI_T=$(serve_nbd_writable hugetarget "$WORK/huge.qcow2" qcow2)
run_expect 0 "$OFFHOST" restore --datastore "$DS" huge@latest --to "$URI_T"
stop_server hugetarget
run_expect 0 qemu-img compare -f raw -F qcow2 "$HUGE" "$WORK/huge.qcow2"

echo PASS
