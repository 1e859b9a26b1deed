#!/usr/bin/env bash
# `offhost mount --server`: a snapshot held by offhostd mounted through FUSE on this machine,
# folders listed with the daemon's catalog and files read with DownloadFiles (an operator
# token: downloads need that role) on the daemon's unix socket. Every name, type, mode, owner, size, mtime,
# file content and link target equals the source tree; a 3 MiB file reads right at random
# offsets; writes fail; the daemon's audit log records the downloads; `fusermount3 -u`
# unmounts and the command exits 0. A read-only token is refused before mounting.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/daemon/lib.sh"
need qemu-nbd mkfs.ext4 fusermount3
[ -e /dev/fuse ] || { echo "SKIP: /dev/fuse is missing (no FUSE in this kernel or container)"; exit 77; }
MNT=$WORK/mnt
mkdir "$MNT"
trap 'fusermount3 -u -z "$MNT" 2>/dev/null || true; cleanup' EXIT
is_mounted() { awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/self/mounts; }

# A whole-disk ext4 file system built from a folder, backed up locally into datastore "main".
T=$WORK/tree
mkdir -p "$T/etc/app" "$T/home/bob/docs" "$T/empty"
echo "listen 8080" >"$T/etc/app/app.conf"
chmod 640 "$T/etc/app/app.conf"
head -c $((3 * 1024 * 1024 + 777)) /dev/urandom >"$T/home/bob/docs/big.bin"
echo "notes" >"$T/home/bob/docs/notes.txt"
ln -s docs/notes.txt "$T/home/bob/link"
chown -R 1000:1000 "$T/home/bob"
touch -d "2021-06-01 08:00:00" "$T/home/bob/docs/big.bin"
mkfs.ext4 -q -F -d "$T" "$WORK/disk.raw" 32M >/dev/null
URI=$(serve_nbd disk "$WORK/disk.raw")
new_datastore "$WORK/ds"
run_expect 0 "$OFFHOST" backup --datastore "$WORK/ds" --vm web09 --disk "vda=$URI"

SOCK=$WORK/run/offhostd.sock
HOLD=$WORK/hold
write_daemon_config operator:operator:backup-app reader:read-only:auditor
start_daemon

# A read-only token may browse (ls) but not read contents: mount says so before mounting.
run_expect 1 "$OFFHOST" mount --server "unix:$SOCK" --token-file "$WORK/reader.token" web09@latest "$MNT"
expect_output "needs the operator role; auditor is read-only"
! is_mounted "$MNT" || fail "mounted with a read-only token"

env --default-signal=INT "$OFFHOST" mount --server "unix:$SOCK" --token-file "$WORK/operator.token" \
  web09@latest "$MNT" >"$WORK/mount.log" 2>&1 &
MOUNT_PID=$!
for _ in $(seq 1 100); do
  is_mounted "$MNT" && break
  if ! pid_alive "$MOUNT_PID"; then
    rc=0
    wait "$MOUNT_PID" || rc=$?
    if grep -qiE "fusermount|permission|not permitted" "$WORK/mount.log"; then
      echo "SKIP: FUSE mounts do not work here (exit $rc): $(cat "$WORK/mount.log")"
      exit 77
    fi
    fail "offhost mount --server exited $rc before mounting: $(cat "$WORK/mount.log")"
  fi
  sleep 0.1
done
is_mounted "$MNT" || fail "not mounted within 10 s: $(cat "$WORK/mount.log")"
grep -q "^mounted web09@.* at $MNT" "$WORK/mount.log" || fail "mount message: $(cat "$WORK/mount.log")"
[ "$(ls "$MNT")" = vda ] || fail "the top level should list volume vda: $(ls -la "$MNT")"
V=$MNT/vda

(cd "$T" && find . | sort) >"$WORK/names.src"
(cd "$V" && find . -path ./lost+found -prune -o -print | sort) >"$WORK/names.mnt"
diff "$WORK/names.src" "$WORK/names.mnt" || fail "the mounted tree lists other names"
while IFS= read -r -d '' p; do
  src=$(stat -c '%F %a %u %g' "$T/$p")
  got=$(stat -c '%F %a %u %g' "$V/$p")
  [ "$src" = "$got" ] || fail "$p: source '$src', mounted '$got'"
  if [ ! -d "$T/$p" ]; then
    [ "$(stat -c '%s %Y' "$T/$p")" = "$(stat -c '%s %Y' "$V/$p")" ] ||
      fail "$p: size/mtime differ: $(stat -c '%s %Y' "$T/$p") vs $(stat -c '%s %Y' "$V/$p")"
  fi
done < <(cd "$T" && find . -mindepth 1 -print0)
diff -r --no-dereference "$T" "$V" -x lost+found >"$WORK/diff.out" 2>&1 ||
  fail "mounted files differ from the source: $(head -5 "$WORK/diff.out") $(tail -5 "$WORK/mount.log")"
cp "$V/home/bob/docs/big.bin" "$WORK/copy.bin"
expect_identical "$T/home/bob/docs/big.bin" "$WORK/copy.bin"
[ "$(cat "$V/home/bob/link")" = notes ] || fail "the symlink does not resolve"
python3 - "$T/home/bob/docs/big.bin" "$V/home/bob/docs/big.bin" <<'EOF2' || fail "random reads differ"
import os, random, sys
a, b = (os.open(p, os.O_RDONLY) for p in sys.argv[1:3])
size = os.fstat(a).st_size
for _ in range(100):
    off, n = random.randrange(size), random.randrange(1, 200000)
    if os.pread(a, n, off) != os.pread(b, n, off):
        sys.exit(f"differ at {off}+{n}")
EOF2
echo "ok: names, types, modes, owners, sizes, times and bytes equal the source"
! touch "$V/etc/new" 2>/dev/null || fail "a write into the mount succeeded"
grep -q "home/bob/docs/big.bin" "$WORK/log/audit.log" || fail "no download in the audit log"
grep -q '"backup-app"' "$WORK/log/audit.log" || fail "the audit log does not name the token: $(head -2 "$WORK/log/audit.log")"

fusermount3 -u "$MNT" || fail "fusermount3 -u failed"
for _ in $(seq 1 100); do pid_alive "$MOUNT_PID" || break; sleep 0.1; done
rc=0
wait "$MOUNT_PID" || rc=$?
[ "$rc" = 0 ] || fail "offhost mount exited $rc: $(cat "$WORK/mount.log")"
! is_mounted "$MNT" || fail "still mounted"
echo "PASS"
