#!/usr/bin/env bash
# The file catalog: built during the backup, then `offhost find` (name and path globs, --vm,
# --since, -i) and `offhost history` answer from it without opening the backup. Two backups of
# the same disk with one file changed between them: find shows the changed file as two
# versions and an unchanged one as one version held by both snapshots; history marks the
# change. Hostile guest names are shown escaped.
source "$(dirname "$0")/lib.sh"
need qemu-nbd mkfs.ext4 sfdisk debugfs python3

DS=$WORK/ds
new_datastore "$DS"
T=$WORK/tree
mkdir -p "$T/etc/nginx/sites" "$T/srv/data"
echo "worker_processes 4;" >"$T/etc/nginx/nginx.conf"
echo "server {}" >"$T/etc/nginx/sites/default.conf"
echo "Upper" >"$T/etc/nginx/README.CONF"
for i in $(seq 1 300); do echo "row $i" >"$T/srv/data/file$i.txt"; done
head -c 2M /dev/urandom >"$T/srv/data/blob.bin"
printf 'x' >"$T/srv/evil"$'\n'"name.conf"
# 10,000 small files in 100 folders
python3 - "$T/srv/many" <<'PY'
import os, sys
for d in range(100):
    os.makedirs(f"{sys.argv[1]}/d{d:03d}")
    for f in range(100):
        with open(f"{sys.argv[1]}/d{d:03d}/f{f:03d}.txt", "w") as fh:
            fh.write(f"file {d}/{f}\n" * (1 + (d * f) % 7))
PY
touch -d "2024-01-02 03:04:05" "$T/etc/nginx/nginx.conf"

mkfs.ext4 -q -F -N 16384 -d "$T" "$WORK/p1.ext4" 64M
make_disk() {
  truncate -s 80M "$WORK/disk.raw"
  printf 'label: gpt\nstart=2048, size=%d, type=L\n' $((64 * 2048)) | sfdisk -q "$WORK/disk.raw"
  dd if="$WORK/p1.ext4" of="$WORK/disk.raw" bs=1M seek=1 conv=notrunc status=none
}
make_disk
URI=$(serve_nbd disk "$WORK/disk.raw")
run_expect 0 "$OFFHOST" backup --datastore "$DS" --vm web01 --disk "vda=$URI" --json
[ "$(json_field "$OUT" 'j["catalog"]["files"]')" -eq 10305 ] || fail "catalog file count: $OUT"
[ "$(json_field "$OUT" 'j["catalog"]["directories"]')" -eq 108 ] || fail "catalog folder count: $OUT"
FIRST=$(json_field "$OUT" 'j["snapshot"]')
stop_server disk

# Between the backups one file changes (as a guest would: new content, new mtime).
sleep 1
echo "worker_processes 8;" >"$WORK/new.conf"
debugfs -w -R "rm /etc/nginx/nginx.conf" "$WORK/p1.ext4" >/dev/null 2>&1
debugfs -w -R "write $WORK/new.conf /etc/nginx/nginx.conf" "$WORK/p1.ext4" >/dev/null 2>&1
make_disk
URI=$(serve_nbd disk "$WORK/disk.raw")
run_expect 0 "$OFFHOST" backup --datastore "$DS" --vm web01 --disk "vda=$URI" --json
SECOND=$(json_field "$OUT" 'j["snapshot"]')

# The second backup changed one file: only the trees on its path were added to the catalog.
NEW_CATALOG=$(json_field "$OUT" 'j["catalog"]["new_bytes"]')
[ "$NEW_CATALOG" -gt 0 ] && [ "$NEW_CATALOG" -lt 4096 ] || fail "catalog bytes added by one changed file: $NEW_CATALOG"

# Every one of the 10,000 files comes back from the backup, and find sees them all.
mkdir "$WORK/out"
run_expect 0 "$OFFHOST" restore-file --datastore "$DS" "web01@latest:/vda1/srv/many" --to "$WORK/out"
diff -r "$T/srv/many" "$WORK/out/many" >/dev/null || fail "restored folder of 10,000 files differs"
run_expect 0 "$OFFHOST" find 'f0[0-4]?.txt' --datastore "$DS" --vm web01 --limit 0 --json
[ "$(json_field "$OUT" 'len(j["hits"])')" -eq 5000 ] || fail "find in 10,000 files: $(json_field "$OUT" 'len(j["hits"])')"

# Exact name: the changed file is two versions, newest first.
run_expect 0 "$OFFHOST" find nginx.conf --datastore "$DS" --json
[ "$(json_field "$OUT" 'len(j["hits"])')" -eq 2 ] || fail "nginx.conf versions: $OUT"
[ "$(json_field "$OUT" 'j["hits"][0]["newest"]')" = "$SECOND" ] || fail "newest first: $OUT"
[ "$(json_field "$OUT" 'j["hits"][0]["size"]')" -eq 20 ] || fail "new version size: $OUT"
[ "$(json_field "$OUT" 'j["hits"][1]["newest"]')" = "$FIRST" ] || fail "older version: $OUT"
[ "$(json_field "$OUT" 'j["hits"][0]["path"]')" = /vda1/etc/nginx/nginx.conf ] || fail "path: $OUT"

# An unchanged file is one version held by both snapshots.
run_expect 0 "$OFFHOST" find default.conf --datastore "$DS" --json
[ "$(json_field "$OUT" 'len(j["hits"])')" -eq 1 ] || fail "default.conf: $OUT"
[ "$(json_field "$OUT" 'j["hits"][0]["snapshots"]')" -eq 2 ] || fail "default.conf snapshots: $OUT"
[ "$(json_field "$OUT" 'j["hits"][0]["oldest"]')" = "$FIRST" ] || fail "default.conf oldest: $OUT"

# Globs on names, case-insensitively, and on paths.
run_expect 0 "$OFFHOST" find '*.conf' --datastore "$DS" --vm web01 --json
[ "$(json_field "$OUT" 'len(j["hits"])')" -eq 4 ] || fail "*.conf: $OUT"  # 2 nginx + default + evil
run_expect 0 "$OFFHOST" find '*.conf' -i --datastore "$DS" --json
[ "$(json_field "$OUT" 'len(j["hits"])')" -eq 5 ] || fail "*.conf -i: $OUT"
run_expect 0 "$OFFHOST" find '/vda1/srv/data/file1*' --datastore "$DS" --json
[ "$(json_field "$OUT" 'len(j["hits"])')" -eq 111 ] || fail "path glob: $OUT"  # file1, 10-19, 100-199

# The table escapes control characters in guest names.
run_expect 0 "$OFFHOST" find 'evil*' --datastore "$DS"
expect_output 'evil\x0aname.conf'

# Filters and errors.
run_expect 1 "$OFFHOST" find nginx.conf --datastore "$DS" --since 2099-01-01
expect_output "0 matches"
run_expect 0 "$OFFHOST" find nginx.conf --datastore "$DS" --since 1d
run_expect 2 "$OFFHOST" find nginx.conf --datastore "$DS" --since yesterday-ish
expect_output "is not a date"
run_expect 1 "$OFFHOST" find nginx.conf --datastore "$DS" --vm nosuchvm
expect_output "no backups of VM 'nosuchvm'"

# History of one path.
run_expect 0 "$OFFHOST" history web01:/vda1/etc/nginx/nginx.conf --datastore "$DS" --json
[ "$(json_field "$OUT" 'j[0]["snapshot"]')" = "$SECOND" ] || fail "history order: $OUT"
[ "$(json_field "$OUT" 'j[0]["changed"]')" = True ] || fail "history change: $OUT"
[ "$(json_field "$OUT" 'j[1]["entry"]["size"]')" -eq 20 ] || fail "old size: $OUT"
run_expect 0 "$OFFHOST" history web01:/vda1/etc/nginx/sites/default.conf --datastore "$DS"
expect_output "same"
run_expect 1 "$OFFHOST" history web01:/vda1/no/such/file --datastore "$DS"
expect_output "is in none of the 2 snapshots"

# --no-catalog: the backup works, find says it was not searched.
run_expect 0 "$OFFHOST" backup --datastore "$DS" --vm web02 --disk "vda=$URI" --no-catalog
run_expect 1 "$OFFHOST" find nginx.conf --datastore "$DS" --vm web02
expect_output "1 without a catalog not searched"
[ -n "${SHOW:-}" ] && { "$OFFHOST" find "*.conf" -i --datastore "$DS"; "$OFFHOST" history web01:/vda1/etc/nginx/nginx.conf --datastore "$DS"; }
echo PASS
