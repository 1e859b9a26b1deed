#!/usr/bin/env bash
# Backups running at the same time into one datastore: two VM names, then the same VM name
# (snapshot ids must not collide). Both succeed, both restore byte-identical, verify is clean.
source "$(dirname "$0")/lib.sh"
need qemu-nbd nbdkit python3

DS=$WORK/ds
new_datastore "$DS" --chunk-size 1M
make_mixed_disk "$WORK/disk.raw" 64
head -c 16M /dev/urandom | dd of="$WORK/disk.raw" bs=1M seek=30 conv=notrunc status=none
# slowed a little so the two backups really overlap (and race on the same new chunks)
URI=$(serve_nbdkit src --readonly --filter=delay file "$WORK/disk.raw" rdelay=15ms)

# run_pair VM_A VM_B: starts two backups of the disk together; both must succeed.
run_pair() {
  local a=$1 b=$2 pa pb rc
  "$OFFHOST" backup --datastore "$DS" --vm "$a" --disk "vda=$URI" --json >"$WORK/a.json" 2>"$WORK/a.err" &
  pa=$!
  "$OFFHOST" backup --datastore "$DS" --vm "$b" --disk "vda=$URI" --json >"$WORK/b.json" 2>"$WORK/b.err" &
  pb=$!
  rc=0; wait "$pa" || rc=$?
  [ "$rc" -eq 0 ] || fail "concurrent backup of $a failed ($rc): $(cat "$WORK/a.err")"
  rc=0; wait "$pb" || rc=$?
  [ "$rc" -eq 0 ] || fail "concurrent backup of $b failed ($rc): $(cat "$WORK/b.err")"
}

# overlap check: each backup's [started, finished] from the index
overlapped() {
  local list
  list=$("$OFFHOST" snapshots --datastore "$DS" --json)
  json_field "$list" "(lambda a, b: a['started'] <= b['finished'] and b['started'] <= a['finished'])(*[s for s in j if s['snapshot'] in ('$1', '$2')])"
}

# --- two VM names --------------------------------------------------------------------------------
run_pair alpha beta
SA=$(json_field "$(cat "$WORK/a.json")" 'j["snapshot"]')
SB=$(json_field "$(cat "$WORK/b.json")" 'j["snapshot"]')
NEW=$(( $(json_field "$(cat "$WORK/a.json")" 'j["new_bytes"]') + $(json_field "$(cat "$WORK/b.json")" 'j["new_bytes"]') ))
echo "alpha@$SA beta@$SB, new bytes together: $NEW, overlapped: $(overlapped "$SA" "$SB")"
[ "$(snapshot_count "$DS" alpha)" -eq 1 ] && [ "$(snapshot_count "$DS" beta)" -eq 1 ] ||
  fail "expected one snapshot each of alpha and beta"
run_expect 0 "$OFFHOST" restore --datastore "$DS" "alpha@$SA" --to "$WORK/alpha.raw"
expect_identical "$WORK/disk.raw" "$WORK/alpha.raw"
run_expect 0 "$OFFHOST" restore --datastore "$DS" "beta@$SB" --to "$WORK/beta.raw"
expect_identical "$WORK/disk.raw" "$WORK/beta.raw"
run_expect 0 "$OFFHOST" verify --datastore "$DS"
expect_output "all good"

# --- the same VM name, twice at once -------------------------------------------------------------
run_pair gamma gamma
S1=$(json_field "$(cat "$WORK/a.json")" 'j["snapshot"]')
S2=$(json_field "$(cat "$WORK/b.json")" 'j["snapshot"]')
echo "gamma@$S1 gamma@$S2, overlapped: $(overlapped "$S1" "$S2")"
[ "$S1" != "$S2" ] || fail "two concurrent backups of gamma got the same snapshot id $S1"
[ "$(snapshot_count "$DS" gamma)" -eq 2 ] || fail "expected two snapshots of gamma"
for s in "$S1" "$S2"; do
  run_expect 0 "$OFFHOST" restore --datastore "$DS" "gamma@$s" --to "$WORK/gamma-$s.raw"
  expect_identical "$WORK/disk.raw" "$WORK/gamma-$s.raw"
done

# --- three at once (readers during backups: test_read_during_backup.sh) ----------------------------
pids=()
for vm in delta delta epsilon; do
  "$OFFHOST" backup --datastore "$DS" --vm "$vm" --disk "vda=$URI" >"$WORK/$vm.$RANDOM.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do
  wait "$p" || fail "one of three concurrent backups failed: $(cat "$WORK"/*.log)"
done
[ "$(snapshot_count "$DS" delta)" -eq 2 ] || fail "expected two snapshots of delta"
[ "$(snapshot_count "$DS")" -eq 7 ] || fail "expected 7 snapshots in all"
run_expect 0 "$OFFHOST" restore --datastore "$DS" epsilon@latest --to "$WORK/epsilon.raw"
expect_identical "$WORK/disk.raw" "$WORK/epsilon.raw"

run_expect 0 "$OFFHOST" verify --datastore "$DS"
expect_output "all good"
[ -z "$(staging_entries "$DS")" ] || fail "staging left in $DS/tmp: $(staging_entries "$DS")"
[ -z "$(find "$DS/chunks" -name '*.tmp.*')" ] || fail "temporary chunk files left: $(find "$DS/chunks" -name '*.tmp.*')"
echo PASS
