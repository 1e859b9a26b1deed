#!/usr/bin/env bash
# `offhost mount`: a backup's files through FUSE, read-only. Every file, folder and symlink of
# a GPT + ext4 disk appears with its content, type, mode, owner, size and mtime; a multi-MiB
# file reads right at random and unaligned offsets; symlinks resolve; writes fail with EROFS;
# `fusermount3 -u`, SIGTERM and SIGINT unmount and leave the process exiting 0 and the folder
# empty; --background returns once mounted; a folder of the backup can be mounted alone; a
# missing or non-empty mount point is refused with exit code 2.
source "$(dirname "$0")/lib.sh"
need qemu-nbd mkfs.ext4 sfdisk fusermount3 python3
[ -e /dev/fuse ] || { echo "SKIP: /dev/fuse is missing (no FUSE in this kernel or container)"; exit 77; }

MNT=$WORK/mnt
mkdir "$MNT"
# Unmount before lib.sh's cleanup removes $WORK (a live mount would stop rm -rf).
trap 'fusermount3 -u -z "$MNT" 2>/dev/null || true; cleanup' EXIT

is_mounted() { awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/self/mounts; }

# start_mount ARGS...: runs `offhost mount ARGS...` in the foreground of a background job and
# waits until the mount is up; sets MOUNT_PID. Skips the test when this machine cannot mount
# FUSE at all (e.g. a container without CAP_SYS_ADMIN).
start_mount() {
  # (bash starts background jobs with SIGINT ignored, which libfuse respects; Ctrl-C must work)
  env --default-signal=INT "$OFFHOST" mount "$@" >"$WORK/mount.log" 2>&1 &
  MOUNT_PID=$!
  local i
  for i in $(seq 1 300); do
    is_mounted "$MNT" && return 0
    if ! pid_alive "$MOUNT_PID"; then
      local rc=0
      wait "$MOUNT_PID" || rc=$?
      if grep -qiE "fuse|fusermount|permission|not permitted" "$WORK/mount.log"; then
        echo "SKIP: FUSE mounts do not work here (exit $rc): $(cat "$WORK/mount.log")"
        exit 77
      fi
      fail "offhost mount exited $rc before mounting: $(cat "$WORK/mount.log")"
    fi
    sleep 0.1
  done
  fail "offhost mount did not mount $MNT within 30 s: $(cat "$WORK/mount.log")"
}

# stop_mount HOW: unmounts with fusermount3 -u (HOW=umount) or a signal (HOW=TERM, INT), then
# asserts the process exited 0 and left $MNT empty and unmounted.
stop_mount() {
  if [ "$1" = umount ]; then
    fusermount3 -u "$MNT" || fail "fusermount3 -u $MNT failed"
  else
    kill "-$1" "$MOUNT_PID"
  fi
  local rc=0 i
  for i in $(seq 1 300); do
    pid_alive "$MOUNT_PID" || break
    sleep 0.1
  done
  pid_alive "$MOUNT_PID" && fail "offhost mount did not exit after $1"
  wait "$MOUNT_PID" || rc=$?
  [ "$rc" -eq 0 ] || fail "offhost mount exited $rc after $1: $(cat "$WORK/mount.log")"
  ! is_mounted "$MNT" || fail "$MNT is still mounted after $1"
  [ -z "$(ls -A "$MNT")" ] || fail "$MNT is not empty after $1: $(ls -A "$MNT")"
  grep -qF "unmounted " "$WORK/mount.log" || fail "no 'unmounted' line: $(cat "$WORK/mount.log")"
}

# --- a GPT disk with one ext4 partition, built from a folder --------------------------------
T=$WORK/tree
mkdir -p "$T/etc/app/conf.d" "$T/home/alice/docs/deep/deeper" "$T/var/log" "$T/empty-dir"
echo "UUID=1 / ext4 defaults 0 1" >"$T/etc/fstab"
chmod 600 "$T/etc/fstab"
for i in $(seq 1 50); do echo "key$i=$i" >"$T/etc/app/conf.d/$i.conf"; done
head -c $((9 * 1024 * 1024 + 12345)) /dev/urandom >"$T/home/alice/docs/big.bin"
echo deep >"$T/home/alice/docs/deep/deeper/leaf.txt"
ln -s /etc/passwd "$T/home/alice/abs-link"
ln -s docs/deep "$T/home/alice/rel-link"
truncate -s 20M "$T/var/log/sparse.db"
echo "end" >>"$T/var/log/sparse.db"
: >"$T/var/log/empty.log"
echo "grüße" >"$T/home/alice/docs/Grüße — résumé 日本.txt"
chmod 4755 "$T/home/alice/docs/deep/deeper/leaf.txt"
chown -R 1000:1001 "$T/home/alice"
chown -h 0:0 "$T/home/alice/abs-link"
touch -d "2020-02-29 12:34:56" "$T/home/alice/docs/big.bin"
touch -h -d "2019-01-01 00:00:01" "$T/home/alice/rel-link"
mkfs.ext4 -q -F -L root -d "$T" "$WORK/p1.ext4" 96M
truncate -s 128M "$WORK/gpt.raw"
printf 'label: gpt\nstart=2048, size=%d, type=L\n' $((96 * 2048)) | sfdisk -q "$WORK/gpt.raw"
dd if="$WORK/p1.ext4" of="$WORK/gpt.raw" bs=1M seek=1 conv=notrunc,sparse status=none
URI=$(serve_nbd gpt "$WORK/gpt.raw")
DS=$WORK/ds
new_datastore "$DS"
run_expect 0 "$OFFHOST" backup --datastore "$DS" --vm linux --disk "vda=$URI"
ID=$(json_field "$("$OFFHOST" snapshots --datastore "$DS" --vm linux --json)" 'j[-1]["snapshot"]')

# --- mount in the foreground; browse and read -----------------------------------------------
start_mount --datastore "$DS" linux@latest "$MNT"
grep -qF "mounted linux@$ID at $MNT; unmount with: fusermount3 -u $MNT" "$WORK/mount.log" ||
  fail "mount message: $(cat "$WORK/mount.log")"
[ "$(ls "$MNT")" = vda1 ] || fail "top level should list the volume vda1: $(ls -la "$MNT")"
V=$MNT/vda1

# the same names everywhere (lost+found is made by mkfs)
(cd "$T" && find . | sort) >"$WORK/names.src"
(cd "$V" && find . -path ./lost+found -prune -o -print | sort) >"$WORK/names.mnt"
diff "$WORK/names.src" "$WORK/names.mnt" || fail "the mounted tree lists other names than the source"
[ "$(ls "$V/etc/app/conf.d" | wc -l)" -eq 50 ] || fail "conf.d should hold 50 files"
ls -l "$V/home/alice" >"$WORK/ls.out" || fail "ls -l failed"
grep -q "abs-link -> /etc/passwd" "$WORK/ls.out" || fail "ls -l: $(cat "$WORK/ls.out")"

# type, permission bits, owner, size and mtime of every entry; content of every file and
# target of every link (diff -r compares both, without following links)
while IFS= read -r -d '' p; do
  src=$(stat -c '%F %a %u %g' "$T/$p")
  got=$(stat -c '%F %a %u %g' "$V/$p")
  [ "$src" = "$got" ] || fail "$p: source '$src', mounted '$got'"
  if [ ! -d "$T/$p" ]; then
    src=$(stat -c '%s %Y' "$T/$p")
    got=$(stat -c '%s %Y' "$V/$p")
    [ "$src" = "$got" ] || fail "$p: size/mtime source '$src', mounted '$got'"
  fi
done < <(cd "$T" && find . -mindepth 1 -print0)
diff -r --no-dereference "$T" "$V" -x lost+found >"$WORK/diff.out" 2>&1 ||
  fail "mounted files differ from the source: $(head -5 "$WORK/diff.out")"

# random access into a 9 MiB file: aligned, unaligned, across 1 MiB boundaries, backwards
BIG=home/alice/docs/big.bin
read_at() {  # read_at FILE OFFSET COUNT
  dd if="$1" iflag=skip_bytes,count_bytes skip="$2" count="$3" bs=64K status=none
}
for at in $((7 * 1024 * 1024)) $((3 * 1024 * 1024 - 5)) 1 $((9 * 1024 * 1024 + 12000)) \
  $((RANDOM * 250)) 0; do
  cmp <(read_at "$T/$BIG" "$at" 300000) <(read_at "$V/$BIG" "$at" 300000) ||
    fail "$BIG differs when read at offset $at"
done
python3 - "$T/$BIG" "$V/$BIG" <<'EOF' || fail "random reads of $BIG through one open handle differ"
import os, random, sys
a, b = (os.open(p, os.O_RDONLY) for p in sys.argv[1:3])
size = os.fstat(a).st_size
for _ in range(200):
    off, n = random.randrange(size), random.randrange(1, 300000)
    if os.pread(a, n, off) != os.pread(b, n, off):
        sys.exit(f"differ at {off}+{n}")
EOF
[ -z "$(cat "$V/var/log/empty.log")" ] || fail "empty file is not empty"

# symlinks: targets as stored, relative ones resolve inside the mount
[ "$(readlink "$V/home/alice/abs-link")" = /etc/passwd ] || fail "readlink abs-link"
[ "$(readlink "$V/home/alice/rel-link")" = docs/deep ] || fail "readlink rel-link"
[ "$(cat "$V/home/alice/rel-link/deeper/leaf.txt")" = deep ] || fail "read through a relative link"

# read-only: every change fails with EROFS
for cmd in "echo x >'$V/etc/fstab'" "touch '$V/etc/new'" "mkdir '$V/newdir'" "rm '$V/etc/fstab'" \
  "mv '$V/etc/fstab' '$V/etc/f2'" "chmod 777 '$V/etc/fstab'" "ln -s x '$V/etc/l'" \
  "truncate -s 0 '$V/home/alice/docs/big.bin'"; do
  OUT=$(bash -c "$cmd" 2>&1) && fail "'$cmd' succeeded on a read-only mount"
  expect_output "Read-only file system"
done
python3 - "$V/etc/fstab" <<'EOF' || fail "open for writing did not fail with EROFS"
import errno, os, sys
try:
    os.open(sys.argv[1], os.O_WRONLY)
except OSError as e:
    sys.exit(0 if e.errno == errno.EROFS else f"errno {e.errno}")
sys.exit("opened for writing")
EOF
cmp "$T/etc/fstab" "$V/etc/fstab" || fail "fstab changed"
grep -E "^offhost:linux@\S+ $MNT fuse.offhost ro," /proc/self/mounts >/dev/null ||
  fail "not a read-only fuse.offhost mount: $(grep "$MNT" /proc/self/mounts)"
stop_mount umount

# --- the same unmounted by SIGTERM and by SIGINT (Ctrl-C) ------------------------------------
start_mount --datastore "$DS" linux@latest "$MNT"
cmp "$T/etc/fstab" "$V/etc/fstab" || fail "second mount: fstab differs"
stop_mount TERM
start_mount --datastore "$DS" linux@latest "$MNT"
stop_mount INT

# --- one folder of the backup, in the background ---------------------------------------------
run_expect 0 "$OFFHOST" mount --datastore "$DS" "linux@latest:/vda1/home/alice" "$MNT" --background
expect_output "mounted linux@$ID:/vda1/home/alice at $MNT in the background (pid "
BG_PID=$(sed -n 's/.*(pid \([0-9]*\)).*/\1/p' <<<"$OUT")
track_server mount-bg "$BG_PID"
is_mounted "$MNT" || fail "--background returned before mounting"
cmp "$T/home/alice/docs/big.bin" "$MNT/docs/big.bin" || fail "background mount: big.bin differs"
[ "$(stat -c %u:%g "$MNT")" = 1000:1001 ] || fail "mounted folder's owner: $(stat -c %u:%g "$MNT")"
fusermount3 -u "$MNT" || fail "fusermount3 -u (background) failed"
for i in $(seq 1 100); do pid_alive "$BG_PID" || break; sleep 0.1; done
pid_alive "$BG_PID" && fail "background offhost mount did not exit after fusermount3 -u"
[ -z "$(ls -A "$MNT")" ] || fail "$MNT is not empty after the background mount"

# --- refused mount points and sources -------------------------------------------------------
mkdir "$WORK/full"
echo keep >"$WORK/full/file"
run_expect 2 "$OFFHOST" mount --datastore "$DS" linux@latest "$WORK/full"
expect_output "mount point $WORK/full is not empty"
[ "$(cat "$WORK/full/file")" = keep ] || fail "the non-empty mount point was touched"
! is_mounted "$WORK/full" || fail "mounted onto a non-empty directory"
run_expect 2 "$OFFHOST" mount --datastore "$DS" linux@latest "$WORK/missing"
expect_output "mount point $WORK/missing does not exist"
run_expect 2 "$OFFHOST" mount --datastore "$DS" linux@latest "$WORK/full/file"
expect_output "is not a directory"
run_expect 2 "$OFFHOST" mount --datastore "$DS" "linux@latest:/vda1/etc/fstab" "$MNT"
expect_output "is not a folder"
run_expect 1 "$OFFHOST" mount --datastore "$DS" nosuchvm@latest "$MNT"
! is_mounted "$MNT" || fail "mounted a VM that has no backup"
[ -z "$(ls -A "$MNT")" ] || fail "$MNT is not empty after refused mounts"
echo PASS
