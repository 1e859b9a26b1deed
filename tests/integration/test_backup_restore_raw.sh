#!/usr/bin/env bash
# Raw disks: backup → restore to a new file (byte-identical, sparse) and to a writable NBD
# export pre-filled with junk (zero regions must be actively zeroed). Sizes: a whole number of
# chunks, one that ends inside a chunk, and (through nbdkit, which does not round the size up to
# 512 like qemu-nbd) one that is not even a multiple of 512.
source "$(dirname "$0")/lib.sh"
need qemu-nbd qemu-img qemu-io nbdkit python3

DS=$WORK/ds
new_datastore "$DS"

# --- 64 MiB: a whole number of 4 MiB chunks --------------------------------------------------
make_mixed_disk "$WORK/a.raw" 64
URI_A=$(serve_nbd a "$WORK/a.raw")
J=$(backup_json "$DS" web01 "vda=$URI_A")
[ "$(json_field "$J" 'j["vm"]')" = web01 ] || fail "backup JSON names the wrong VM: $J"
[ "$(json_field "$J" 'j["disks"][0]["name"]')" = vda ] || fail "backup JSON disk name: $J"
[ "$(json_field "$J" 'j["logical_bytes"]')" -eq $((64 << 20)) ] || fail "logical_bytes: $J"
[ "$(json_field "$J" 'j["disks"][0]["size"]')" -eq $((64 << 20)) ] || fail "disk size: $J"
SNAP_A=$(json_field "$J" 'j["snapshot"]')

run_expect 0 "$OFFHOST" restore --datastore "$DS" "web01@$SNAP_A" --to "$WORK/a.restored"
expect_output "restored web01@$SNAP_A disk vda"
expect_identical "$WORK/a.raw" "$WORK/a.restored"
# The source has ~12 MiB of data and ~3 MiB of allocated zeroes in 64 MiB: the restore must
# leave the zero/unallocated chunks as holes.
alloc=$(allocated_bytes "$WORK/a.restored")
[ "$alloc" -lt $((32 << 20)) ] || fail "restored file is not sparse: $alloc bytes allocated of 64 MiB"

# latest + explicit --disk give the same thing
run_expect 0 "$OFFHOST" restore --datastore "$DS" web01@latest --disk vda --to "$WORK/a.latest"
expect_identical "$WORK/a.raw" "$WORK/a.latest"

# --- 37 MiB + 4 KiB: the last chunk is short -------------------------------------------------
make_mixed_disk "$WORK/b.raw" 37
truncate -s $(((37 << 20) + 4096)) "$WORK/b.raw"
head -c 4096 /dev/urandom | dd of="$WORK/b.raw" bs=4096 seek=$(((37 << 20) / 4096)) conv=notrunc status=none
URI_B=$(serve_nbd b "$WORK/b.raw")
J=$(backup_json "$DS" odd "vda=$URI_B")
[ "$(json_field "$J" 'j["disks"][0]["size"]')" -eq $(((37 << 20) + 4096)) ] || fail "odd disk size: $J"
run_expect 0 "$OFFHOST" restore --datastore "$DS" odd@latest --to "$WORK/b.restored"
[ "$(stat -c %s "$WORK/b.restored")" -eq $(((37 << 20) + 4096)) ] || fail "restored size differs"
expect_identical "$WORK/b.raw" "$WORK/b.restored"

# --- 37 MiB + 1000 bytes via nbdkit (exact, unaligned size) ----------------------------------
make_mixed_disk "$WORK/c.raw" 37
truncate -s $(((37 << 20) + 1000)) "$WORK/c.raw"
head -c 3000 /dev/urandom | dd of="$WORK/c.raw" bs=1 seek=$(((37 << 20) - 2000)) conv=notrunc status=none
URI_C=$(serve_nbdkit c --readonly file "$WORK/c.raw")
J=$(backup_json "$DS" unaligned "vda=$URI_C")
[ "$(json_field "$J" 'j["disks"][0]["size"]')" -eq $(((37 << 20) + 1000)) ] || fail "unaligned disk size: $J"
run_expect 0 "$OFFHOST" restore --datastore "$DS" unaligned@latest --to "$WORK/c.restored"
expect_identical "$WORK/c.raw" "$WORK/c.restored"

# --- tiny disks: empty, one byte -----------------------------------------------------------------
for spec in "empty:null size=0" "onebyte:data 0x41"; do
  vm=${spec%%:*}
  read -r -a plugin <<<"${spec#*:}"
  URI_T=$(serve_nbdkit "$vm" --readonly "${plugin[@]}")
  J=$(backup_json "$DS" "$vm" "vda=$URI_T")
  run_expect 0 "$OFFHOST" restore --datastore "$DS" "$vm@latest" --to "$WORK/$vm.restored"
done
[ "$(stat -c %s "$WORK/empty.restored")" -eq 0 ] || fail "the empty disk restored to a non-empty file"
[ "$(cat "$WORK/onebyte.restored")" = A ] || fail "the one-byte disk restored wrong: $(xxd "$WORK/onebyte.restored")"

# --- a server that accepts at most 64 KiB per request and 4 KiB alignment (errors otherwise) ----
POLICY=(blocksize-minimum=4096 blocksize-maximum=65536 blocksize-error-policy=error)
URI_P=$(serve_nbdkit policy --readonly --filter=blocksize-policy file "$WORK/a.raw" "${POLICY[@]}")
J=$(backup_json "$DS" policy "vda=$URI_P")
[ "$(json_field "$J" 'j["new_bytes"]')" -eq 0 ] || fail "the same disk through another server stored new data: $J"
run_expect 0 "$OFFHOST" restore --datastore "$DS" policy@latest --to "$WORK/policy.restored"
expect_identical "$WORK/a.raw" "$WORK/policy.restored"
if command -v nbdcopy >/dev/null; then
  # and as a restore target, pre-filled with junk
  python3 -c 'import sys; open(sys.argv[1], "wb").write(b"\xee" * (64 << 20))' "$WORK/junk.raw"
  URI_PW=$(serve_nbdkit policyw --filter=blocksize-policy memory 64M "${POLICY[@]}")
  nbdcopy --request-size=65536 "$WORK/junk.raw" "$URI_PW"
  run_expect 0 "$OFFHOST" restore --datastore "$DS" "web01@$SNAP_A" --to "$URI_PW"
  nbdcopy --request-size=65536 "$URI_PW" "$WORK/policyw.raw"
  expect_identical "$WORK/a.raw" "$WORK/policyw.raw"
fi

# --- restore into a writable NBD export (qcow2) full of junk ---------------------------------
TARGET=$WORK/target.qcow2
qemu-img create -q -f qcow2 "$TARGET" 64M
qemu-io -f qcow2 -c "write -q -P 0xa5 0 64M" "$TARGET" >/dev/null
URI_T=$(serve_nbd_writable target "$TARGET" qcow2)
run_expect 0 "$OFFHOST" restore --datastore "$DS" "web01@$SNAP_A" --to "$URI_T"
expect_output "restored web01@$SNAP_A disk vda"
stop_server target
run_expect 0 qemu-img compare -f raw -F qcow2 "$WORK/a.raw" "$TARGET"

# the short-tail disk into a larger junk-filled target: its bytes land, the rest is untouched
TARGET2=$WORK/target2.qcow2
qemu-img create -q -f qcow2 "$TARGET2" 40M
qemu-io -f qcow2 -c "write -q -P 0x5a 0 40M" "$TARGET2" >/dev/null
URI_T2=$(serve_nbd_writable target2 "$TARGET2" qcow2)
run_expect 0 "$OFFHOST" restore --datastore "$DS" odd@latest --to "$URI_T2"
stop_server target2
qemu-img convert -f qcow2 -O raw "$TARGET2" "$WORK/target2.raw"
cmp -n $(((37 << 20) + 4096)) "$WORK/b.raw" "$WORK/target2.raw" >/dev/null ||
  fail "NBD restore of the odd-sized disk differs from the source"

# the datastore is clean and holds six snapshots
run_expect 0 "$OFFHOST" verify --datastore "$DS"
expect_output "all good"
[ "$(snapshot_count "$DS")" -eq 6 ] || fail "expected 6 snapshots"
[ -z "$(staging_entries "$DS")" ] || fail "staging left in $DS/tmp: $(staging_entries "$DS")"

echo PASS
