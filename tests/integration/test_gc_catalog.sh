#!/usr/bin/env bash
# offhost gc and the file catalog (docs/gc.md, "Catalog trees"): after a prune, gc removes
# exactly the folder trees only the pruned snapshots' catalogs reached, and the index gets
# smaller; the kept snapshot still lists every folder and verify reads its whole catalog.
# (Damaged catalogs, and backups running during gc: tests/unit/storage/catalog_gc_test.cc.)
source "$(dirname "$0")/lib.sh"
need qemu-nbd mkfs.ext4 sfdisk debugfs python3

DS=$WORK/ds
new_datastore "$DS"
T=$WORK/tree
# Folders a, b and c hold 3,000 files each, so that each folder's tree is tens of KB.
python3 - "$T" <<'PY'
import os, sys
for d in "abc":
    os.makedirs(f"{sys.argv[1]}/{d}")
    for f in range(3000):
        with open(f"{sys.argv[1]}/{d}/file-with-a-long-name-{f:05d}.txt", "w") as fh:
            fh.write(f"{d} {f}\n")
PY
mkfs.ext4 -q -F -b 4096 -N 16384 -d "$T" "$WORK/p1.ext4" 48M
echo new >"$WORK/new.txt"
backup() {
  truncate -s 64M "$WORK/disk.raw"
  printf 'label: gpt\nstart=2048, size=%d, type=L\n' $((48 * 2048)) | sfdisk -q "$WORK/disk.raw"
  dd if="$WORK/p1.ext4" of="$WORK/disk.raw" bs=1M seek=1 conv=notrunc status=none
  local uri
  uri=$(serve_nbd disk "$WORK/disk.raw")
  run_expect 0 "$OFFHOST" backup --datastore "$DS" --vm web01 --disk "vda=$uri" --json
  stop_server disk
  sleep 1  # snapshot ids are per second
}
gc_json() {
  run_expect 0 "$OFFHOST" gc --datastore "$DS" --min-age 0 --json "$@"
  printf '%s\n' "$OUT"
}
field() { json_field "$1" "j[\"$2\"]"; }
index_kib() { du -sk "$DS/index" | cut -f1; }

# Three backups; between them a file is added to a, then to b. Trees (one per folder): the
# first backup has root1 a1 b1 c1 lost+found; the second root2 a2 (b1 c1 lost+found shared);
# the third root3 b3 (a2 c1 lost+found shared): 9 trees. Keeping only the third leaves root3,
# a2, b3, c1 and lost+found: root1, root2, a1 and b1 are unused.
backup
debugfs -w -R "write $WORK/new.txt /a/added-in-2.txt" "$WORK/p1.ext4" >/dev/null 2>&1
backup
debugfs -w -R "write $WORK/new.txt /b/added-in-3.txt" "$WORK/p1.ext4" >/dev/null 2>&1
backup
J=$(gc_json)
[ "$(field "$J" catalog_trees)" -eq 9 ] || fail "catalog trees before the prune: $J"
[ "$(field "$J" removed_catalog_trees)" -eq 0 ] || fail "gc removed trees snapshots use: $J"

run_expect 0 "$OFFHOST" prune --datastore "$DS" --vm web01 --keep-last 1
J=$(gc_json --dry-run)
[ "$(field "$J" removed_catalog_trees)" -eq 4 ] || fail "dry run counts: $J"
WANT=$(field "$J" removed_catalog_tree_bytes)
[ "$WANT" -gt 100000 ] || fail "the four trees hold more than $WANT bytes: $J"
BEFORE=$(index_kib)
J=$(gc_json)
[ "$(field "$J" catalog_trees)" -eq 9 ] || fail "catalog trees: $J"
[ "$(field "$J" referenced_catalog_trees)" -eq 5 ] || fail "trees in use: $J"
[ "$(field "$J" removed_catalog_trees)" -eq 4 ] || fail "gc removed the wrong number of trees: $J"
[ "$(field "$J" removed_catalog_tree_bytes)" -eq "$WANT" ] || fail "gc removed other bytes than counted: $J"
AFTER=$(index_kib)
[ "$AFTER" -lt "$BEFORE" ] || fail "the index did not get smaller: $BEFORE KiB -> $AFTER KiB"
J=$(gc_json)
[ "$(field "$J" catalog_trees)" -eq 5 ] && [ "$(field "$J" removed_catalog_trees)" -eq 0 ] ||
  fail "a second gc: $J"

# The kept snapshot's catalog is whole: every folder lists, the added files are there.
for d in a b c; do
  run_expect 0 "$OFFHOST" ls --datastore "$DS" "web01@latest:/vda1/$d"
  [ "$(grep -c 'file-with-a-long-name-' <<<"$OUT")" -eq 3000 ] || fail "ls /vda1/$d after gc: $OUT"
done
run_expect 0 "$OFFHOST" ls --datastore "$DS" "web01@latest:/vda1/a"
grep -q "added-in-2.txt" <<<"$OUT" || fail "ls /vda1/a: $OUT"
run_expect 0 "$OFFHOST" ls --datastore "$DS" "web01@latest:/vda1/b"
grep -q "added-in-3.txt" <<<"$OUT" || fail "ls /vda1/b: $OUT"
run_expect 0 "$OFFHOST" verify --datastore "$DS" --json
[ "$(field "$OUT" catalog_trees_checked)" -eq 5 ] || fail "verify read: $OUT"
