#!/usr/bin/env bash
# Reading a datastore while backups write into it: `snapshots`, `restore` and `verify` of an
# existing snapshot must keep working (the datastore promises that any number of processes may
# back up at once and that readers never see a half snapshot). Two loops of small backups run for
# a few seconds while three loops of readers run; every single command must succeed.
source "$(dirname "$0")/lib.sh"
need qemu-nbd python3

DURATION=${DURATION:-8}
DS=$WORK/ds
new_datastore "$DS"
truncate -s 8M "$WORK/disk.raw"
head -c 1M /dev/urandom | dd of="$WORK/disk.raw" bs=1M seek=2 conv=notrunc status=none
URI=$(serve_nbd src "$WORK/disk.raw")
J=$(backup_json "$DS" base "vda=$URI")
BASE=$(json_field "$J" 'j["snapshot"]')

# loop NAME CMD...: runs CMD until the deadline; counts successes and failures in $WORK/NAME.*
loop() {
  local name=$1 ok=0 bad=0 n=0
  shift
  while [ "$SECONDS" -lt "$END" ]; do
    n=$((n + 1))
    if "$@" >"$WORK/$name.out" 2>&1; then
      ok=$((ok + 1))
    else
      bad=$((bad + 1))
      { echo "--- $name run $n:"; cat "$WORK/$name.out"; } >>"$WORK/$name.errors"
    fi
  done
  echo "$ok $bad" >"$WORK/$name.count"
}

restore_and_compare() {
  local out=$WORK/restore.$BASHPID.raw
  rm -f "$out"
  "$OFFHOST" restore --datastore "$DS" "base@$BASE" --to "$out" || return 1
  cmp "$WORK/disk.raw" "$out" || return 1
  rm -f "$out"
}

END=$((SECONDS + DURATION))
pids=()
loop writer1 "$OFFHOST" backup --datastore "$DS" --vm w1 --disk "vda=$URI" & pids+=($!)
loop writer2 "$OFFHOST" backup --datastore "$DS" --vm w2 --disk "vda=$URI" & pids+=($!)
loop snapshots "$OFFHOST" snapshots --datastore "$DS" & pids+=($!)
loop restore restore_and_compare & pids+=($!)
loop verify "$OFFHOST" verify --datastore "$DS" & pids+=($!)
for p in "${pids[@]}"; do wait "$p"; done

failed=0
for name in writer1 writer2 snapshots restore verify; do
  read -r ok bad <"$WORK/$name.count"
  echo "$name: $ok ok, $bad failed"
  [ "$ok" -gt 0 ] || fail "$name never succeeded"
  if [ "$bad" -gt 0 ]; then
    failed=1
    echo "first failures of $name:" >&2
    head -12 "$WORK/$name.errors" >&2
  fi
done
[ "$failed" -eq 0 ] || fail "commands failed while backups were writing to the datastore (see above)"

run_expect 0 "$OFFHOST" verify --datastore "$DS"
expect_output "all good"
echo PASS
