#!/usr/bin/env bash
# Files of a RHEL-like guest: GPT with XFS /boot and an LVM2 PV whose VG "rhel" holds an XFS
# root (in two segments, not contiguous on the disk) and an ext4 home. The backup is browsed
# and restored file by file through the real CLI; every restored file equals its source, with
# its mode and owner, links stay links, and mtimes are the guest's (XFS: mkfs's clock, which
# stamps every inode when it copies a tree; ext4: the source files' own).
source "$(dirname "$0")/lib.sh"
need qemu-nbd python3 diff

# --- the guest's files --------------------------------------------------------------------
T=$WORK/tree
mkdir -p "$T/boot/grub2/fonts" "$T/root/etc/ssh" "$T/root/usr/bin" "$T/root/usr/share/zoneinfo" \
  "$T/root/var/log/audit" "$T/root/opt/app/lib/deep/nested/dir" "$T/root/srv/data" "$T/root/home" \
  "$T/home/alice/docs"
K=vmlinuz-5.14.0-362.el9.x86_64
head -c 3M /dev/urandom >"$T/boot/$K"
chmod 755 "$T/boot/$K"
printf 'CONFIG_XFS_FS=m\nCONFIG_EXT4_FS=y\n' >"$T/boot/config-5.14.0-362.el9.x86_64"
ln -s "$K" "$T/boot/vmlinuz"
echo 'set default=0' >"$T/boot/grub2/grub.cfg"
chmod 600 "$T/boot/grub2/grub.cfg"
chmod 700 "$T/boot/grub2"
head -c 40K /dev/urandom >"$T/boot/grub2/fonts/unicode.pf2"

head -c 12M /dev/urandom >"$T/root/bigdata.bin"  # in AG 0, so across root's two segments
echo '/dev/mapper/rhel-root / xfs defaults 0 0' >"$T/root/etc/fstab"
echo 'PermitRootLogin no' >"$T/root/etc/ssh/sshd_config"
chmod 600 "$T/root/etc/ssh/sshd_config"
echo 'root ALL=(ALL) ALL' >"$T/root/etc/sudoers"
chmod 440 "$T/root/etc/sudoers"
head -c 100K /dev/urandom >"$T/root/usr/share/zoneinfo/UTC"
ln -s ../usr/share/zoneinfo/UTC "$T/root/etc/localtime"
head -c 150K /dev/urandom >"$T/root/usr/bin/sudo"
chmod 4755 "$T/root/usr/bin/sudo"
for i in $(seq 1 150); do echo "type=LOGIN msg=audit($i)" >"$T/root/var/log/audit/audit.log.$i"; done
echo leaf >"$T/root/opt/app/lib/deep/nested/dir/leaf.conf"
: >"$T/root/opt/app/empty"
echo owned >"$T/root/srv/data/owned.txt"
chown 1000:1001 "$T/root/srv/data/owned.txt" "$T/root/srv/data"
chmod 640 "$T/root/srv/data/owned.txt"

echo 'export EDITOR=vi' >"$T/home/alice/.bashrc"
echo 'notes' >"$T/home/alice/notes.txt"
head -c 2M /dev/urandom >"$T/home/alice/docs/report.bin"
ln -s docs/report.bin "$T/home/alice/report"
chown -R 1000:1000 "$T/home/alice"
chmod 700 "$T/home/alice"
touch -h -d "2021-06-01 08:00:00" "$T/home/alice/docs/report.bin" "$T/home/alice/notes.txt" \
  "$T/home/alice/.bashrc" "$T/home/alice/docs"

XFS_T0=$(date +%s)
make_rhel_disk "$WORK/rhel.raw" "$T"
XFS_T1=$(date +%s)

# --- backup and browse --------------------------------------------------------------------
DS=$WORK/ds
new_datastore "$DS"
URI=$(serve_nbd rhel "$WORK/rhel.raw")
J=$(backup_json "$DS" rhel9 "vda=$URI")
SNAP=$(json_field "$J" 'j["snapshot"]')

run_expect 0 "$OFFHOST" ls --datastore "$DS" "rhel9@latest:/"
for want in "vda1" "rhel-root" "rhel-home" "LVM2 physical volume of volume group rhel"; do
  expect_output "$want"
done
[ "$(grep -c xfs <<<"$OUT")" -eq 2 ] || fail "vda1 and rhel-root should both be XFS: $OUT"
grep -q "^rhel-home.*ext4" <<<"$OUT" || fail "rhel-home should be ext4: $OUT"
grep -q "^rhel-root.80.00 MiB" <<<"$OUT" || fail "rhel-root should be 80 MiB: $OUT"

# ls_json PATH: the JSON listing of PATH in the snapshot.
ls_json() {
  run_expect 0 "$OFFHOST" ls --datastore "$DS" "rhel9@$SNAP:$1" --json
  printf '%s\n' "$OUT"
}
# expect_entry JSON NAME TYPE SIZE MODE [UID GID]: one entry of an ls --json listing.
expect_entry() {
  local got
  got=$(json_field "$1" "[(e['type'], e['size'], oct(e['mode']), e['uid'], e['gid']) for e in j if e['name'] == '$2']")
  local want="[('$3', $4, '$5', ${6:-0}, ${7:-0})]"
  [ "$got" = "$want" ] || fail "ls entry $2: got $got, want $want"
}

L=$(ls_json /vda1)
expect_entry "$L" "$K" - $((3 << 20)) 0o755
[ "$(json_field "$L" "[e['link_target'] for e in j if e['name'] == 'vmlinuz']")" = "['$K']" ] ||
  fail "vmlinuz symlink: $L"
L=$(ls_json /rhel-root/usr/bin)
expect_entry "$L" sudo - $((150 << 10)) 0o4755
L=$(ls_json /rhel-root/etc)
expect_entry "$L" sudoers - "$(stat -c %s "$T/root/etc/sudoers")" 0o440
expect_entry "$L" fstab - "$(stat -c %s "$T/root/etc/fstab")" 0o644
[ "$(json_field "$L" "[e['link_target'] for e in j if e['name'] == 'localtime']")" = "['../usr/share/zoneinfo/UTC']" ] ||
  fail "localtime symlink: $L"
L=$(ls_json /rhel-root/srv/data)
expect_entry "$L" owned.txt - 6 0o640 1000 1001
L=$(ls_json /rhel-root/var/log/audit)  # 150 entries: a block directory, not a short-form one
[ "$(json_field "$L" 'len(j)')" = 150 ] || fail "audit folder lists $(json_field "$L" 'len(j)') entries"
L=$(ls_json /rhel-home/alice)
expect_entry "$L" notes.txt - 6 0o644 1000 1000
[ "$(json_field "$L" "[e['mtime'] for e in j if e['name'] == 'notes.txt']")" = "[$(stat -c %Y "$T/home/alice/notes.txt")]" ] ||
  fail "ext4 mtime: $L"
[ "$(json_field "$L" "sorted(e['name'] for e in j)")" = "['.bashrc', 'docs', 'notes.txt', 'report']" ] ||
  fail "home listing: $L"
run_expect 0 "$OFFHOST" ls --datastore "$DS" "rhel9@$SNAP:/rhel-root/etc"
expect_output "localtime -> ../usr/share/zoneinfo/UTC"

# --- restore ------------------------------------------------------------------------------
# same_tree SRC DST: identical names, types, contents, link targets, modes and owners.
same_tree() {
  diff -r --no-dereference "$1" "$2" >/dev/null || fail "restored $2 differs from $1: $(diff -r --no-dereference "$1" "$2" 2>&1 | head -5)"
  local a b
  a=$(cd "$1" && find . -printf '%P %y %m %U %G\n' | sort)
  b=$(cd "$2" && find . -printf '%P %y %m %U %G\n' | sort)
  [ "$a" = "$b" ] || fail "modes or owners differ under $2: $(diff <(echo "$a") <(echo "$b") | head -5)"
}
# xfs_mtimes DIR: every mtime under DIR is mkfs's time (guards against misread timestamps).
xfs_mtimes() {
  local t
  for t in $(find "$1" -printf '%T@\n' | cut -d. -f1); do
    [ "$t" -ge "$XFS_T0" ] && [ "$t" -le "$XFS_T1" ] || fail "mtime $t under $1 is not mkfs's time ($XFS_T0..$XFS_T1)"
  done
}

OUTDIR=$WORK/out
mkdir -p "$OUTDIR/root" "$OUTDIR/boot" "$OUTDIR/home" "$OUTDIR/big"
for d in etc usr opt srv var; do
  run_expect 0 "$OFFHOST" restore-file --datastore "$DS" "rhel9@$SNAP:/rhel-root/$d" --to "$OUTDIR/root"
  same_tree "$T/root/$d" "$OUTDIR/root/$d"
  xfs_mtimes "$OUTDIR/root/$d"
done
[ -L "$OUTDIR/root/etc/localtime" ] || fail "localtime was not restored as a symlink"
run_expect 0 "$OFFHOST" restore-file --datastore "$DS" "rhel9@$SNAP:/rhel-root/bigdata.bin" --to "$OUTDIR/big"
expect_identical "$T/root/bigdata.bin" "$OUTDIR/big/bigdata.bin"

run_expect 0 "$OFFHOST" restore-file --datastore "$DS" "rhel9@$SNAP:/vda1/grub2" --to "$OUTDIR/boot"
same_tree "$T/boot/grub2" "$OUTDIR/boot/grub2"
run_expect 0 "$OFFHOST" restore-file --datastore "$DS" "rhel9@$SNAP:/vda1/$K" --to "$OUTDIR/boot"
expect_identical "$T/boot/$K" "$OUTDIR/boot/$K"
[ "$(stat -c %a "$OUTDIR/boot/$K")" = 755 ] || fail "kernel mode $(stat -c %a "$OUTDIR/boot/$K")"
run_expect 0 "$OFFHOST" restore-file --datastore "$DS" "rhel9@$SNAP:/vda1/vmlinuz" --to "$OUTDIR/boot"
[ "$(readlink "$OUTDIR/boot/vmlinuz")" = "$K" ] || fail "vmlinuz not restored as a link"
xfs_mtimes "$OUTDIR/boot/grub2"
xfs_mtimes "$OUTDIR/boot/$K"
xfs_mtimes "$OUTDIR/boot/vmlinuz"

run_expect 0 "$OFFHOST" restore-file --datastore "$DS" "rhel9@$SNAP:/rhel-home/alice" --to "$OUTDIR/home"
same_tree "$T/home/alice" "$OUTDIR/home/alice"
for f in docs/report.bin notes.txt .bashrc; do
  [ "$(stat -c %Y "$OUTDIR/home/alice/$f")" = "$(stat -c %Y "$T/home/alice/$f")" ] || fail "mtime of $f"
done

# --- what cannot be read says why ---------------------------------------------------------
run_expect 1 "$OFFHOST" ls --datastore "$DS" "rhel9@$SNAP:/vda2/etc"
expect_output "LVM2 physical volume of volume group rhel"
run_expect 1 "$OFFHOST" restore-file --datastore "$DS" "rhel9@$SNAP:/rhel-root/nope" --to "$OUTDIR"
expect_output "no such file"
echo PASS
