#!/usr/bin/env bash
# Single files and folders from a backup, without staging the VM: GPT + ext4 (nested folders,
# symlinks, a hard link, a sparse file, non-ASCII names), MBR + FAT32, NTFS; every restored
# file equals its source with its metadata; links stay links (a hard link is restored as one)
# and nothing outside the target
# is touched; overwrites need --overwrite; a damaged file system is "not indexed" while the
# image backup still completes.
source "$(dirname "$0")/lib.sh"
need qemu-nbd mkfs.ext4 sfdisk python3

DS=$WORK/ds
"$OFFHOST" datastore init "$DS" >/dev/null

# --- GPT + ext4 ---------------------------------------------------------------------------
T=$WORK/tree
mkdir -p "$T/etc/app/conf.d" "$T/home/alice/docs/deep/deeper" "$T/var/log"
echo "UUID=1 / ext4 defaults 0 1" >"$T/etc/fstab"
chmod 600 "$T/etc/fstab"
for i in $(seq 1 50); do echo "key$i=$i" >"$T/etc/app/conf.d/$i.conf"; done
head -c 3M /dev/urandom >"$T/home/alice/docs/report.bin"
echo deep >"$T/home/alice/docs/deep/deeper/leaf.txt"
ln -s /etc/passwd "$T/home/alice/abs-link"
ln -s docs/deep "$T/home/alice/rel-link"
ln "$T/home/alice/docs/report.bin" "$T/home/alice/hardlink.bin"
truncate -s 20M "$T/var/log/sparse.db"
echo "end" >>"$T/var/log/sparse.db"
echo "grüße" >"$T/home/alice/docs/Grüße — résumé 日本.txt"
mkdir "$T/\$HOME"  # a guest's '$' name is a file like any other
# deeper than the catalog walks (200 levels): the backup says what find will not show
(cd "$T" && for i in $(seq 1 205); do mkdir d && cd d; done && echo bottom >bottom.txt)
echo "red" >"$T/$(printf 'evil\033[31mred')"
touch -d "2020-02-29 12:34:56" "$T/home/alice/docs/report.bin"
mkfs.ext4 -q -F -L root -d "$T" "$WORK/p1.ext4" 96M
truncate -s 128M "$WORK/gpt.raw"
printf 'label: gpt\nstart=2048, size=%d, type=L\n' $((96 * 2048)) | sfdisk -q "$WORK/gpt.raw"
dd if="$WORK/p1.ext4" of="$WORK/gpt.raw" bs=1M seek=1 conv=notrunc,sparse status=none
URI=$(serve_nbd gpt "$WORK/gpt.raw")
run_expect 0 "$OFFHOST" backup --datastore "$DS" --vm linux --disk "vda=$URI"
expect_output "not cataloged: the entries of 1 folders (damaged, or more than 200 levels deep)"

run_expect 0 "$OFFHOST" ls --datastore "$DS" linux@latest
expect_output "vda1"
expect_output "ext4"
run_expect 0 "$OFFHOST" ls --datastore "$DS" "linux@latest:/vda1/home/alice"
expect_output "abs-link -> /etc/passwd"
expect_output "rel-link -> docs/deep"
run_expect 0 "$OFFHOST" ls --datastore "$DS" "linux@latest:/vda1"
expect_output '$HOME'
expect_output 'evil\x1b[31mred'  # a guest's name cannot drive the operator's terminal
grep -q $'\033' <<<"$OUT" && fail "ls printed a raw escape character: $OUT"
run_expect 0 "$OFFHOST" ls --datastore "$DS" "linux@latest:/vda1/etc/fstab" --json
[ "$(json_field "$OUT" 'j[0]["mode"]')" = $((8#600)) ] || fail "fstab mode: $OUT"

OUTDIR=$WORK/out1
mkdir "$OUTDIR"
run_expect 0 "$OFFHOST" restore-file --datastore "$DS" "linux@latest:/vda1/home" --to "$OUTDIR"
expect_output "(1 files restored as hard links)"
# the guest's hard link stays one file under two names
[ "$(stat -c %i "$OUTDIR/home/alice/docs/report.bin")" = "$(stat -c %i "$OUTDIR/home/alice/hardlink.bin")" ] ||
  fail "hardlink.bin restored as a copy of report.bin"
[ "$(stat -c %h "$OUTDIR/home/alice/hardlink.bin")" = 2 ] || fail "link count of the restored hard link"
for f in docs/report.bin docs/deep/deeper/leaf.txt hardlink.bin "docs/Grüße — résumé 日本.txt"; do
  cmp "$T/home/alice/$f" "$OUTDIR/home/alice/$f" || fail "restored $f differs"
done
[ "$(readlink "$OUTDIR/home/alice/abs-link")" = /etc/passwd ] || fail "absolute symlink not restored as a link"
[ "$(readlink "$OUTDIR/home/alice/rel-link")" = docs/deep ] || fail "relative symlink"
[ "$(stat -c %Y "$OUTDIR/home/alice/docs/report.bin")" = "$(stat -c %Y "$T/home/alice/docs/report.bin")" ] ||
  fail "mtime not preserved"
run_expect 0 "$OFFHOST" restore-file --datastore "$DS" "linux@latest:/vda1/etc" --to "$OUTDIR"
[ "$(stat -c %a "$OUTDIR/etc/fstab")" = 600 ] || fail "mode not preserved: $(stat -c %a "$OUTDIR/etc/fstab")"
[ "$(ls "$OUTDIR/etc/app/conf.d" | wc -l)" -eq 50 ] || fail "folder incomplete"
run_expect 0 "$OFFHOST" restore-file --datastore "$DS" "linux@latest:/vda1/var/log/sparse.db" --to "$OUTDIR"
cmp "$T/var/log/sparse.db" "$OUTDIR/sparse.db" || fail "sparse file differs"
[ "$(allocated_bytes "$OUTDIR/sparse.db")" -lt $((1 << 20)) ] || fail "sparse file was not kept sparse"

# existing files: refused without --overwrite; with it, a symlink planted in the target is
# replaced, never followed
run_expect 1 "$OFFHOST" restore-file --datastore "$DS" "linux@latest:/vda1/etc/fstab" --to "$OUTDIR/etc"
expect_output "already exists; pass --overwrite"
mkdir -p "$WORK/outside"
echo "precious" >"$WORK/outside/fstab"
rm "$OUTDIR/etc/fstab"
ln -s "$WORK/outside/fstab" "$OUTDIR/etc/fstab"
run_expect 0 "$OFFHOST" restore-file --datastore "$DS" "linux@latest:/vda1/etc/fstab" --to "$OUTDIR/etc" --overwrite
[ "$(cat "$WORK/outside/fstab")" = precious ] || fail "a restore wrote through a symlink outside the target"
[ ! -L "$OUTDIR/etc/fstab" ] && cmp "$T/etc/fstab" "$OUTDIR/etc/fstab" || fail "overwrite did not replace the link"

# unknown path, unknown volume
run_expect 1 "$OFFHOST" restore-file --datastore "$DS" "linux@latest:/vda1/nope" --to "$OUTDIR"
expect_output "no such file"
run_expect 1 "$OFFHOST" ls --datastore "$DS" "linux@latest:/vdz9/etc"
expect_output "no volume 'vdz9' in this backup (it has: vda1)"

# --- MBR + FAT32, in a primary and in a logical partition -------------------------------
# Volumes are named as Linux names them: the first logical partition is hda5, whatever the
# slot of the extended one. The volume label is not a file.
if command -v mkfs.vfat >/dev/null && command -v mcopy >/dev/null; then
  mkfs.vfat -F 32 -n DOSLABEL -C "$WORK/p1.fat" $((64 * 1024)) >/dev/null
  echo "autoexec" >"$WORK/AUTOEXEC.BAT"
  head -c 1M /dev/urandom >"$WORK/data.bin"
  mmd -i "$WORK/p1.fat" ::/DOS
  mcopy -i "$WORK/p1.fat" "$WORK/AUTOEXEC.BAT" ::/
  mcopy -i "$WORK/p1.fat" "$WORK/data.bin" ::/DOS/data.bin
  truncate -s 150M "$WORK/mbr.raw"
  printf 'label: dos\nstart=2048, size=%d, type=c\nstart=%d, type=5\nstart=%d, size=%d, type=c\n' \
    $((64 * 2048)) $((66 * 2048)) $((67 * 2048)) $((64 * 2048)) | sfdisk -q "$WORK/mbr.raw"
  dd if="$WORK/p1.fat" of="$WORK/mbr.raw" bs=1M seek=1 conv=notrunc status=none
  dd if="$WORK/p1.fat" of="$WORK/mbr.raw" bs=1M seek=67 conv=notrunc status=none
  URI=$(serve_nbd mbr "$WORK/mbr.raw")
  run_expect 0 "$OFFHOST" backup --datastore "$DS" --vm dos --disk "hda=$URI"
  run_expect 0 "$OFFHOST" ls --datastore "$DS" dos@latest
  expect_output "fat32"
  expect_output "hda5"
  grep -q hda2 <<<"$OUT" && fail "the extended partition or a logical one is listed as hda2: $OUT"
  mkdir "$WORK/out2"
  run_expect 0 "$OFFHOST" restore-file --datastore "$DS" "dos@latest:/hda1/DOS/data.bin" --to "$WORK/out2"
  cmp "$WORK/data.bin" "$WORK/out2/data.bin" || fail "FAT32 file differs"
  run_expect 0 "$OFFHOST" restore-file --datastore "$DS" "dos@latest:/hda5" --to "$WORK/out2"
  cmp "$WORK/data.bin" "$WORK/out2/hda5/DOS/data.bin" || fail "FAT32 file in a logical partition differs"
  [ "$(ls "$WORK/out2/hda5")" = "$(printf 'AUTOEXEC.BAT\nDOS')" ] ||
    fail "restored FAT root holds more than its files: $(ls "$WORK/out2/hda5")"
fi

# --- NTFS (whole disk, no partition table) -------------------------------------------------
if command -v mkntfs >/dev/null && command -v ntfscp >/dev/null; then
  truncate -s 64M "$WORK/ntfs.raw"
  mkntfs -q -F -f "$WORK/ntfs.raw" >/dev/null 2>&1
  head -c 2M /dev/urandom >"$WORK/win.bin"
  ntfscp -f "$WORK/ntfs.raw" "$WORK/win.bin" win.bin >/dev/null 2>&1
  ntfscp -f "$WORK/ntfs.raw" "$WORK/win.bin" '$Win.bin' >/dev/null 2>&1
  URI=$(serve_nbd ntfs "$WORK/ntfs.raw")
  run_expect 0 "$OFFHOST" backup --datastore "$DS" --vm windows --disk "sda=$URI"
  run_expect 0 "$OFFHOST" ls --datastore "$DS" windows@latest
  expect_output "ntfs"
  # NTFS files belong to Windows SIDs: no Unix owner to give them on the host
  run_expect 0 "$OFFHOST" ls --datastore "$DS" "windows@latest:/sda" --json
  [ "$(json_field "$OUT" 'sorted(e["name"] for e in j if not e["name"].startswith("System"))')" = \
    "['\$Win.bin', 'win.bin']" ] || fail "NTFS root: expected \$Win.bin and win.bin only: $OUT"
  [ "$(json_field "$OUT" 'sorted(set((e["uid"], e["gid"]) for e in j))')" = "[(0, 0)]" ] ||
    fail "NTFS files listed with a Unix owner: $OUT"
  mkdir "$WORK/out3"
  run_expect 0 "$OFFHOST" restore-file --datastore "$DS" "windows@latest:/sda/win.bin" --to "$WORK/out3"
  cmp "$WORK/win.bin" "$WORK/out3/win.bin" || fail "NTFS file differs"
fi

# --- a missing chunk under a file is named, never taken for a missing file -----------------
# Only the chunk at disk offset 0 (GPT, superblock, inode tables) is kept: the file's data
# and folders further in are read from chunks that are gone.
DS3=$WORK/ds3
"$OFFHOST" datastore init "$DS3" >/dev/null
run_expect 0 "$OFFHOST" backup --datastore "$DS3" --vm linux --disk "vda=$(serve_nbd gpt3 "$WORK/gpt.raw")"
mkdir "$WORK/aside"
mv "$DS3"/chunks/*/* "$WORK/aside/"
run_expect 3 "$OFFHOST" verify --datastore "$DS3" --json
KEEP=$(json_field "$OUT" '[d["chunk"] for d in j["damaged"] if 0 in d["used_by"][0]["offsets"]][0]')
mv "$WORK/aside/$KEEP" "$DS3/chunks/${KEEP:0:4}/"
mkdir "$WORK/out4"
run_expect 1 "$OFFHOST" restore-file --datastore "$DS3" "linux@latest:/vda1/home/alice/docs/report.bin" \
  --to "$WORK/out4"
expect_output "is missing; run 'offhost verify"
[ -z "$(ls -A "$WORK/out4")" ] || fail "a restore from missing chunks left files: $(ls -A "$WORK/out4")"

# --- a damaged file system: not indexed, image backup still good --------------------------
cp "$WORK/gpt.raw" "$WORK/bad.raw"
dd if=/dev/zero of="$WORK/bad.raw" bs=1024 seek=$((1024 + 1)) count=2 conv=notrunc status=none  # superblock
URI=$(serve_nbd bad "$WORK/bad.raw")
run_expect 0 "$OFFHOST" backup --datastore "$DS" --vm broken --disk "vda=$URI"
run_expect 0 "$OFFHOST" ls --datastore "$DS" broken@latest
expect_output "not indexed:"
run_expect 0 "$OFFHOST" restore --datastore "$DS" broken@latest --to "$WORK/bad.restored"
expect_identical "$WORK/bad.raw" "$WORK/bad.restored"
echo PASS
