#!/usr/bin/env bash
# kill -9 of a backup at several points (the source is slowed down by nbdkit's delay filter):
# no snapshot appears, the datastore verifies clean, and the next backup works, restores
# byte-identical and clears the staging the killed ones left in DIR/tmp.
source "$(dirname "$0")/lib.sh"
need nbdkit qemu-nbd python3

DS=$WORK/ds
new_datastore "$DS" --chunk-size 256K  # many chunks: a kill lands between chunk writes
head -c 64M /dev/urandom >"$WORK/disk.raw"
# 256 reads of 256 KiB, one at a time, 10 ms each: about 3 s per backup
SLOW=$(serve_nbdkit slow -t 1 --readonly --filter=delay file "$WORK/disk.raw" rdelay=10ms)

run_expect 0 "$OFFHOST" backup --datastore "$DS" --vm keep --disk "vda=$(serve_nbd fast "$WORK/disk.raw")"
KEEP=$("$OFFHOST" snapshots --datastore "$DS" --json)

kill_points=(0.05 0.3 1.0 2.0 "$(python3 -c 'import random; print(round(random.uniform(0.1, 2.5), 2))')")
echo "kill points: ${kill_points[*]}"
for t in "${kill_points[@]}"; do
  "$OFFHOST" backup --datastore "$DS" --vm victim --disk "vda=$SLOW" >"$WORK/victim.log" 2>&1 &
  pid=$!
  sleep "$t"
  pid_alive "$pid" || fail "the backup finished before the kill at ${t}s: $(cat "$WORK/victim.log")"
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true

  [ "$(snapshot_count "$DS" victim)" -eq 0 ] || fail "a backup killed at ${t}s left a snapshot"
  [ "$("$OFFHOST" snapshots --datastore "$DS" --json)" = "$KEEP" ] ||
    fail "the snapshot list changed after a kill at ${t}s"
  run_expect 0 "$OFFHOST" verify --datastore "$DS"
  expect_output "all good"
  # the earlier snapshot still restores
  run_expect 0 "$OFFHOST" restore --datastore "$DS" keep@latest --to "$WORK/keep.raw"
  expect_identical "$WORK/disk.raw" "$WORK/keep.raw"
  rm -f "$WORK/keep.raw"
done
echo "staging left by the killed backups: $(staging_entries "$DS" | tr '\n' ' ')"

# a new backup of the same VM works and cleans up after the killed ones
run_expect 0 "$OFFHOST" backup --datastore "$DS" --vm victim --disk "vda=$SLOW" --json
SNAP=$(json_field "$OUT" 'j["snapshot"]')
[ "$(snapshot_count "$DS" victim)" -eq 1 ] || fail "expected exactly one snapshot of victim"
[ -z "$(staging_entries "$DS")" ] || fail "staging left in $DS/tmp after a good backup: $(staging_entries "$DS")"
run_expect 0 "$OFFHOST" restore --datastore "$DS" "victim@$SNAP" --to "$WORK/victim.raw"
expect_identical "$WORK/disk.raw" "$WORK/victim.raw"
run_expect 0 "$OFFHOST" verify --datastore "$DS"
expect_output "all good"
leftover=$(find "$DS/chunks" -name '*.tmp.*' | wc -l)
echo "partial chunk files left by the kills: $leftover"

echo PASS
