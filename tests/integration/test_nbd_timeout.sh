#!/usr/bin/env bash
# A source export that stops answering (nbdkit's delay filter holds every read, then every
# block-status request, for 60 s) does not hang the backup: with --nbd-timeout 2 it fails
# within seconds, naming the export and the timeout and saying what to do; no snapshot is
# committed and the datastore verifies clean. The same disk served promptly backs up.
source "$(dirname "$0")/lib.sh"
need nbdkit
nbdkit --dump-plugin file >/dev/null 2>&1 || { echo "SKIP: nbdkit's file plugin is missing"; exit 77; }
nbdkit --filter=delay null --dump-plugin >/dev/null 2>&1 || { echo "SKIP: nbdkit's delay filter is missing"; exit 77; }

make_mixed_disk "$WORK/disk.raw" 24
new_datastore "$WORK/ds"

# backup_hangs NAME REQUEST DELAY-ARG: the backup through an export that holds REQUEST
# ("read", "block status") fails in time.
backup_hangs() {
  local name=$1 what=$2 uri start rc=0 secs
  uri=$(serve_nbdkit "$name" --readonly --filter=delay file "$WORK/disk.raw" "$3")
  start=$(date +%s)
  OUT=$(timeout 50 "$OFFHOST" backup --datastore "$WORK/ds" --vm vm1 --disk "vda=$uri" \
    --nbd-timeout 2 2>&1) || rc=$?
  secs=$(($(date +%s) - start))
  [ "$rc" = 1 ] || fail "$name: the backup exited $rc after $secs s (124: it hung): $OUT"
  [ "$secs" -lt 30 ] || fail "$name: the backup took $secs s to give up"
  expect_output "NBD export nbd+unix:///?socket=$WORK/$name.sock did not answer a $what"
  expect_output "within 2 s"
  expect_output "raise the nbd-timeout setting"
  echo "ok: $name: failed after $secs s: $(grep -o 'did not answer[^:]*' <<<"$OUT" | head -1)"
  stop_server "$name" KILL
}
backup_hangs reads read delay-read=60
backup_hangs extents "block status" delay-extents=60
[ "$(snapshot_count "$WORK/ds" vm1)" = 0 ] || fail "a failed backup left a snapshot"
run_expect 0 "$OFFHOST" verify --datastore "$WORK/ds"

URI=$(serve_nbdkit prompt --readonly file "$WORK/disk.raw")
run_expect 0 "$OFFHOST" backup --datastore "$WORK/ds" --vm vm1 --disk "vda=$URI" --nbd-timeout 2
run_expect 0 "$OFFHOST" restore --datastore "$WORK/ds" vm1@latest --to "$WORK/restored.raw"
expect_identical "$WORK/disk.raw" "$WORK/restored.raw"
echo "PASS"
