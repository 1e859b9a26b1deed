#!/usr/bin/env bash
# ext4 files and folders in many pieces (mount/src/ext4_raw.h): libtsk 4.12 cannot map an
# inode whose extent tree has more than one index entry, which on a real disk is any file or
# folder in more than 340 pieces (84 with 1 KiB blocks). On a 1 KiB-block ext4: a folder of
# 2,500 files (101 blocks), with a sub-folder reached through it, and a sparse file in 500
# pieces. The backup catalogs every file, ls lists the big folder, find finds a file in it,
# and restore-file brings back the file through the big folder and the sparse file, byte for
# byte.
source "$(dirname "$0")/lib.sh"
need qemu-nbd mkfs.ext4 sfdisk python3 cmp

DS=$WORK/ds
new_datastore "$DS"
T=$WORK/tree
python3 - "$T" <<'PY'
import os, sys
root = sys.argv[1]
os.makedirs(f"{root}/maildir/sub")
for f in range(2500):
    with open(f"{root}/maildir/message-with-a-long-name-{f:05d}.eml", "w") as fh:
        fh.write(f"message {f}\n")
with open(f"{root}/maildir/sub/deep.txt", "w") as fh:
    fh.write("reached through a folder libtsk cannot map\n")
os.makedirs(f"{root}/db")
with open(f"{root}/db/sparse.db", "wb") as fh:
    for i in range(500):  # 500 data pieces with holes between them: 500 extents
        fh.seek(i * 8192)
        fh.write(bytes([i % 251 + 1]) * 1024)
PY
mkfs.ext4 -q -F -b 1024 -N 8192 -d "$T" "$WORK/p1.ext4" 40M
truncate -s 48M "$WORK/disk.raw"
printf 'label: gpt\nstart=2048, size=%d, type=L\n' $((40 * 2048)) | sfdisk -q "$WORK/disk.raw"
dd if="$WORK/p1.ext4" of="$WORK/disk.raw" bs=1M seek=1 conv=notrunc status=none
URI=$(serve_nbd disk "$WORK/disk.raw")
run_expect 0 "$OFFHOST" backup --datastore "$DS" --vm mail01 --disk "vda=$URI" --json
stop_server disk
[ "$(json_field "$OUT" 'j["catalog"]["files"]')" -eq 2502 ] || fail "catalog file count: $OUT"
[ "$(json_field "$OUT" 'j["catalog"]["unreadable_folders"]')" -eq 0 ] || fail "folders not cataloged: $OUT"

run_expect 0 "$OFFHOST" ls --datastore "$DS" "mail01@latest:/vda1/maildir"
[ "$(grep -c 'message-with-a-long-name-' <<<"$OUT")" -eq 2500 ] || fail "ls of the big folder: $OUT"
run_expect 0 "$OFFHOST" find --datastore "$DS" "message-with-a-long-name-02499.eml"
grep -q "/vda1/maildir/message-with-a-long-name-02499.eml" <<<"$OUT" || fail "find: $OUT"

mkdir "$WORK/out"
run_expect 0 "$OFFHOST" restore-file --datastore "$DS" "mail01@latest:/vda1/maildir/sub/deep.txt" --to "$WORK/out"
cmp "$WORK/out/deep.txt" "$T/maildir/sub/deep.txt" || fail "deep.txt differs"
run_expect 0 "$OFFHOST" restore-file --datastore "$DS" "mail01@latest:/vda1/db/sparse.db" --to "$WORK/out"
cmp "$WORK/out/sparse.db" "$T/db/sparse.db" || fail "sparse.db differs"
echo "PASS"
