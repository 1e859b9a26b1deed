#!/usr/bin/env bash
# offhost gc on real backups (docs/gc.md):
# - prune then gc frees exactly the chunks of the removed snapshots (ids worked out here from
#   the disk images), kept snapshots restore byte-identical, verify is clean;
# - GC during a backup loses nothing: a backup held just before its commit has claimed chunks
#   that no snapshot uses and whose files were last written an hour ago; GC runs then, keeps
#   them and removes the unclaimed ones; the backup commits and restores byte-identical;
# - GC killed with -9 after its first delete leaves a datastore that verifies clean, and a
#   second GC removes the rest.
source "$(dirname "$0")/lib.sh"
need qemu-nbd python3 sha256sum

CS=262144  # 256 KiB chunks: enough chunks in small disks
DS=$WORK/ds
new_datastore "$DS" --chunk-size 256K

# chunk_ids IMAGE FROM_MIB COUNT_MIB: the ids of the chunks covering that range (the chunk id
# is the SHA-256 of the chunk's bytes; docs/datastore-format.md).
chunk_ids() {
  local n
  for n in $(seq 0 $(($3 * 1048576 / CS - 1))); do
    dd if="$1" bs=$CS skip=$(($2 * 1048576 / CS + n)) count=1 status=none | sha256sum | cut -c1-64
  done
}
chunk_file() { echo "$DS/chunks/${1:0:4}/$1"; }
files_of() { local id; for id in "$@"; do chunk_file "$id"; done; }
gc_json() {
  run_expect 0 "$OFFHOST" gc --datastore "$DS" --json "$@"
  printf '%s\n' "$OUT"
}
field() { json_field "$1" "j[\"$2\"]"; }
backup_of() {  # backup_of VM IMAGE: one full backup through qemu-nbd
  local uri
  uri=$(serve_nbd "$1" "$2")
  backup_json "$DS" "$1" "vda=$uri" >/dev/null
  stop_server "$1"
}

# --- prune then gc: exactly the removed snapshots' own chunks go ---------------------------------
make_mixed_disk "$WORK/web.raw" 24
for i in 1 2 3; do
  # each backup has its own 2 MiB of random data at 4 MiB; the rest is shared
  head -c 2M /dev/urandom | dd of="$WORK/web.raw" bs=1M seek=4 conv=notrunc status=none
  cp "$WORK/web.raw" "$WORK/web-$i.raw"
  backup_of web01 "$WORK/web.raw"
done
make_mixed_disk "$WORK/db.raw" 16
backup_of db01 "$WORK/db.raw"
mapfile -t GONE < <(chunk_ids "$WORK/web-1.raw" 4 2; chunk_ids "$WORK/web-2.raw" 4 2)
[ "${#GONE[@]}" -eq 16 ] || fail "expected 16 chunk ids"
for f in $(files_of "${GONE[@]}"); do [ -f "$f" ] || fail "backup did not store $f"; done
BEFORE=$(find "$DS/chunks" -type f | sort)

J=$(gc_json --min-age 0)
[ "$(field "$J" removed_chunks)" -eq 0 ] || fail "gc removed chunks snapshots use: $J"
run_expect 0 "$OFFHOST" prune --datastore "$DS" --vm web01 --keep-last 1
J=$(gc_json --dry-run --min-age 0)
[ "$(field "$J" removed_chunks)" -eq 16 ] || fail "dry run counts: $J"
[ "$(find "$DS/chunks" -type f | sort)" = "$BEFORE" ] || fail "--dry-run removed files"
J=$(gc_json)  # default --min-age 5m: the chunks are seconds old, so they stay
[ "$(field "$J" removed_chunks)" -eq 0 ] && [ "$(field "$J" kept_recent)" -eq 16 ] ||
  fail "chunks younger than --min-age were not kept: $J"

WANT=$(stat -c %s $(files_of "${GONE[@]}") | paste -sd+ | bc)
J=$(gc_json --min-age 0)
[ "$(field "$J" removed_chunks)" -eq 16 ] || fail "gc removed the wrong number: $J"
[ "$(field "$J" removed_bytes)" -eq "$WANT" ] || fail "gc freed $(field "$J" removed_bytes), want $WANT"
AFTER=$(find "$DS/chunks" -type f | sort)
[ "$(comm -23 <(echo "$BEFORE") <(echo "$AFTER"))" = "$(files_of "${GONE[@]}" | sort)" ] ||
  fail "gc removed other files than the pruned snapshots' own chunks"
run_expect 0 "$OFFHOST" gc --datastore "$DS" --min-age 0
expect_output "removed: 0 unused chunks"
run_expect 0 "$OFFHOST" verify --datastore "$DS"
run_expect 0 "$OFFHOST" restore --datastore "$DS" web01@latest --to "$WORK/r-web.raw"
expect_identical "$WORK/web-3.raw" "$WORK/r-web.raw"
run_expect 0 "$OFFHOST" restore --datastore "$DS" db01@latest --to "$WORK/r-db.raw"
expect_identical "$WORK/db.raw" "$WORK/r-db.raw"

# --- GC during a backup loses nothing -------------------------------------------------------------
# old01's first snapshot has random data in two places, A (1-3 MiB) and B (8-10 MiB). It is
# pruned, and every chunk file made an hour old. A backup of race01 — the same disk with B
# zeroed — then dedupes A's chunks against those unused files (its claim), and waits before
# its commit. GC runs in that window: A's chunks must stay, B's go.
truncate -s 16M "$WORK/old.raw"
head -c 2M /dev/urandom | dd of="$WORK/old.raw" bs=1M seek=1 conv=notrunc status=none
head -c 2M /dev/urandom | dd of="$WORK/old.raw" bs=1M seek=8 conv=notrunc status=none
cp "$WORK/old.raw" "$WORK/race.raw"
dd if=/dev/zero of="$WORK/race.raw" bs=1M seek=8 count=2 conv=notrunc status=none
backup_of old01 "$WORK/old.raw"
mapfile -t A < <(chunk_ids "$WORK/old.raw" 1 2)
mapfile -t B < <(chunk_ids "$WORK/old.raw" 8 2)
head -c 16M /dev/urandom >"$WORK/old.raw"
backup_of old01 "$WORK/old.raw"
run_expect 0 "$OFFHOST" prune --datastore "$DS" --vm old01 --keep-last 1
find "$DS/chunks" -type f -exec touch -d '1 hour ago' {} +

URI=$(serve_nbd race "$WORK/race.raw")
rm -f "$WORK/hold" "$WORK/hold.ready"
OFFHOST_TEST_HOLD_COMMIT=$WORK/hold "$OFFHOST" backup --datastore "$DS" --vm race01 \
  --disk "vda=$URI" --json >"$WORK/race.json" 2>"$WORK/race.err" &
RACE=$!
for _ in $(seq 1 300); do [ -e "$WORK/hold.ready" ] && break; sleep 0.1; done
[ -e "$WORK/hold.ready" ] || fail "the backup did not reach its commit: $(cat "$WORK/race.err")"
J=$(gc_json)
[ "$(field "$J" running_backups)" -eq 1 ] || fail "gc did not see the running backup: $J"
[ "$(field "$J" removed_chunks)" -eq 8 ] || fail "gc during the backup removed: $J"
for f in $(files_of "${A[@]}"); do [ -f "$f" ] || fail "gc removed $f, claimed by the running backup"; done
for f in $(files_of "${B[@]}"); do [ ! -e "$f" ] || fail "gc kept $f, which nothing uses"; done
touch "$WORK/hold"
wait "$RACE" || fail "the backup failed after gc: $(cat "$WORK/race.err")"
stop_server race
run_expect 0 "$OFFHOST" restore --datastore "$DS" race01@latest --to "$WORK/r-race.raw"
expect_identical "$WORK/race.raw" "$WORK/r-race.raw"
run_expect 0 "$OFFHOST" verify --datastore "$DS"

# --- GC killed with -9 midway --------------------------------------------------------------------
head -c 16M /dev/urandom >"$WORK/junk.raw"
backup_of junk01 "$WORK/junk.raw"
head -c 16M /dev/urandom >"$WORK/junk.raw"
backup_of junk01 "$WORK/junk.raw"
run_expect 0 "$OFFHOST" prune --datastore "$DS" --vm junk01 --keep-last 1  # 64 chunks unused
J=$(gc_json --dry-run --min-age 0)
[ "$(field "$J" removed_chunks)" -eq 64 ] || fail "before the killed gc: $J"
rm -f "$WORK/gcp" "$WORK/gcp.ready"
OFFHOST_TEST_GC_PAUSE=$WORK/gcp "$OFFHOST" gc --datastore "$DS" --min-age 0 >/dev/null 2>&1 &
GC=$!
for _ in $(seq 1 300); do [ -e "$WORK/gcp.ready" ] && break; sleep 0.1; done
[ -e "$WORK/gcp.ready" ] || fail "gc did not reach its second delete"
kill -9 "$GC"
wait "$GC" 2>/dev/null || true
run_expect 0 "$OFFHOST" verify --datastore "$DS"
J=$(gc_json --min-age 0)
[ "$(field "$J" removed_chunks)" -eq 63 ] || fail "the second gc removed: $J"
J=$(gc_json --min-age 0)
[ "$(field "$J" removed_chunks)" -eq 0 ] || fail "a third gc still found: $J"
run_expect 0 "$OFFHOST" verify --datastore "$DS"
for vm in web01 db01 race01 junk01; do
  run_expect 0 "$OFFHOST" restore --datastore "$DS" "$vm@latest" --to "$WORK/final-$vm.raw"
done
expect_identical "$WORK/web-3.raw" "$WORK/final-web01.raw"
expect_identical "$WORK/race.raw" "$WORK/final-race01.raw"
expect_identical "$WORK/junk.raw" "$WORK/final-junk01.raw"
echo PASS
