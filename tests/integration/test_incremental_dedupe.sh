#!/usr/bin/env bash
# Repeated backups: an unchanged disk adds nothing; 1 MiB changed adds about one chunk; every
# snapshot still restores its own contents; several disks in one backup.
source "$(dirname "$0")/lib.sh"
need qemu-nbd python3

CHUNK=$((4 << 20))
DS=$WORK/ds
new_datastore "$DS"

make_mixed_disk "$WORK/v1.raw" 64
make_mixed_disk "$WORK/data.raw" 32

# --- 1st backup: two disks in one snapshot ---------------------------------------------------
URI_V=$(serve_nbd v1 "$WORK/v1.raw")
URI_D=$(serve_nbd data "$WORK/data.raw")
J1=$(backup_json "$DS" app01 "vda=$URI_V" "vdb=$URI_D")
S1=$(json_field "$J1" 'j["snapshot"]')
[ "$(json_field "$J1" 'len(j["disks"])')" -eq 2 ] || fail "expected two disks: $J1"
[ "$(json_field "$J1" '",".join(d["name"] for d in j["disks"])')" = "vda,vdb" ] || fail "disk names: $J1"
[ "$(json_field "$J1" 'j["logical_bytes"]')" -eq $((96 << 20)) ] || fail "logical_bytes: $J1"
[ "$(json_field "$J1" 'j["new_bytes"] > 0')" = True ] || fail "first backup stored nothing: $J1"
cp --sparse=always "$WORK/v1.raw" "$WORK/v1.orig"

# a two-disk snapshot needs --disk to restore
run_expect 2 "$OFFHOST" restore --datastore "$DS" "app01@$S1" --to "$WORK/x.raw"
expect_output "has several disks (vda, vdb)"
[ ! -e "$WORK/x.raw" ] || fail "a refused restore created its target"
run_expect 0 "$OFFHOST" restore --datastore "$DS" "app01@$S1" --disk vda --to "$WORK/r1-vda.raw"
run_expect 0 "$OFFHOST" restore --datastore "$DS" "app01@$S1" --disk vdb --to "$WORK/r1-vdb.raw"
expect_identical "$WORK/v1.raw" "$WORK/r1-vda.raw"
expect_identical "$WORK/data.raw" "$WORK/r1-vdb.raw"

# --- 2nd backup, nothing changed: nothing new -------------------------------------------------
J2=$(backup_json "$DS" app01 "vda=$URI_V" "vdb=$URI_D")
S2=$(json_field "$J2" 'j["snapshot"]')
[ "$S2" != "$S1" ] || fail "second snapshot reused the id $S1"
[ "$(json_field "$J2" 'j["new_bytes"]')" -eq 0 ] || fail "unchanged disks added bytes: $J2"
[ "$(json_field "$J2" 'sum(d["new_chunks"] for d in j["disks"])')" -eq 0 ] || fail "new chunks: $J2"
[ "$(json_field "$J2" 'sum(d["chunks"] for d in j["disks"])')" -eq \
  "$(json_field "$J1" 'sum(d["chunks"] for d in j["disks"])')" ] || fail "chunk counts differ: $J1 $J2"

# --- change 1 MiB of vda (in the middle of a hole, inside one chunk) --------------------------
stop_server v1
head -c 1M /dev/urandom | dd of="$WORK/v1.raw" bs=1M seek=40 conv=notrunc status=none
URI_V=$(serve_nbd v1 "$WORK/v1.raw")
J3=$(backup_json "$DS" app01 "vda=$URI_V" "vdb=$URI_D")
S3=$(json_field "$J3" 'j["snapshot"]')
new3=$(json_field "$J3" 'j["new_bytes"]')
[ "$new3" -gt 0 ] || fail "the changed MiB was not stored: $J3"
[ "$new3" -le $((2 * CHUNK)) ] || fail "1 MiB changed but $new3 new bytes stored: $J3"
[ "$(json_field "$J3" 'j["disks"][0]["new_chunks"]')" -eq 1 ] || fail "expected one new chunk on vda: $J3"
[ "$(json_field "$J3" 'j["disks"][1]["new_chunks"]')" -eq 0 ] || fail "vdb did not change: $J3"

# --- listing -----------------------------------------------------------------------------------
[ "$(snapshot_count "$DS" app01)" -eq 3 ] || fail "expected 3 snapshots of app01"
L=$("$OFFHOST" snapshots --datastore "$DS" --vm app01 --json)
[ "$(json_field "$L" '",".join(s["snapshot"] for s in j)')" = "$S1,$S2,$S3" ] ||
  fail "snapshots not listed oldest first: $L"
[ "$(json_field "$L" 'all(s["vm"] == "app01" for s in j)')" = True ] || fail "vm field: $L"
run_expect 0 "$OFFHOST" snapshots --datastore "$DS" --vm app01
for s in "$S1" "$S2" "$S3"; do expect_output "app01@$s"; done
run_expect 0 "$OFFHOST" snapshots --datastore "$DS" --vm nobody-here
expect_output "no snapshots"

# --- every snapshot restores its own contents ------------------------------------------------
run_expect 0 "$OFFHOST" restore --datastore "$DS" "app01@$S2" --disk vda --to "$WORK/r2-vda.raw"
expect_identical "$WORK/v1.orig" "$WORK/r2-vda.raw"
run_expect 0 "$OFFHOST" restore --datastore "$DS" app01@latest --disk vda --to "$WORK/r3-vda.raw"
expect_identical "$WORK/v1.raw" "$WORK/r3-vda.raw"
run_expect 0 "$OFFHOST" restore --datastore "$DS" "app01@$S3" --disk vdb --to "$WORK/r3-vdb.raw"
expect_identical "$WORK/data.raw" "$WORK/r3-vdb.raw"

# --- the same disk given twice in one backup is refused, nothing is committed ----------------
run_expect 2 "$OFFHOST" backup --datastore "$DS" --vm app01 --disk "vda=$URI_V" --disk "vda=$URI_D"
expect_output "given twice"
[ "$(snapshot_count "$DS" app01)" -eq 3 ] || fail "a refused backup added a snapshot"
[ -z "$(staging_entries "$DS")" ] || fail "staging left in $DS/tmp: $(staging_entries "$DS")"

run_expect 0 "$OFFHOST" verify --datastore "$DS"
echo PASS
