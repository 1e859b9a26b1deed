# Shared helpers of the integration tests. Source it first; it makes $WORK (removed at exit),
# stops every server the test started, and gives small assertion helpers.
set -euo pipefail

: "${OFFHOST:?OFFHOST must point at the offhost binary (ctest sets it)}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/offhost-it.XXXXXX")
PIDS=()

# Servers started inside $(...) (serve_nbd and friends) run in a subshell, where PIDS+= is
# lost; they also append their PID to $WORK/.pids, which cleanup reads.
cleanup() {
  local pid
  for pid in "${PIDS[@]:-}" $(cat "$WORK/.pids" 2>/dev/null); do
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
  done
}

fail() { echo "FAIL: $*" >&2; exit 1; }

# wait_for_socket PATH: waits up to 10 s for a server's unix socket.
wait_for_socket() {
  local i
  for i in $(seq 1 100); do
    [ -S "$1" ] && return 0
    sleep 0.1
  done
  fail "socket $1 did not appear"
}

# track_server NAME PID: remembers a server's PID (for cleanup and server_pid/stop_server).
track_server() {
  PIDS+=("$2")
  echo "$2" >>"$WORK/.pids"
  echo "$2" >"$WORK/$1.pid"
}

# pid_alive PID: true while PID runs (a zombie nobody reaped yet counts as gone).
pid_alive() {
  local st
  st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ $st != Z* ]]
}

# server_pid NAME: the PID of the server started as NAME.
server_pid() { cat "$WORK/$1.pid"; }

# stop_server NAME [SIGNAL]: signals the server NAME (default TERM) and waits until it is gone,
# so a writable export has flushed and released its image lock.
stop_server() {
  local pid i
  pid=$(server_pid "$1")
  kill "-${2:-TERM}" "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do
    pid_alive "$pid" || { rm -f "$WORK/$1.sock"; return 0; }
    sleep 0.1
  done
  fail "server $1 (pid $pid) did not exit"
}

# serve_nbdkit NAME ARGS...: runs `nbdkit ARGS...` on $WORK/NAME.sock and prints the nbd+unix
# URI, e.g. serve_nbdkit slow --readonly --filter=delay file IMG rdelay=10ms. nbdkit runs as a
# daemon (its own parent-death handling kills a foreground nbdkit started inside $(...)); its
# pidfile, written once it accepts connections, gives the PID.
serve_nbdkit() {
  local name=$1 pid
  shift
  rm -f "$WORK/$name.ready"
  nbdkit --unix "$WORK/$name.sock" -P "$WORK/$name.ready" "$@" >"$WORK/$name.nbdkit.log" 2>&1 ||
    fail "nbdkit $name did not start: $(cat "$WORK/$name.nbdkit.log")"
  # the daemon writes the pidfile after its parent has returned
  local i
  for i in $(seq 1 100); do
    [ -s "$WORK/$name.ready" ] && grep -q . "$WORK/$name.ready" && break
    sleep 0.05
  done
  pid=$(cat "$WORK/$name.ready" 2>/dev/null) || true
  [[ $pid =~ ^[0-9]+$ ]] || fail "nbdkit $name wrote no pidfile: $(cat "$WORK/$name.nbdkit.log")"
  track_server "$name" "$pid"
  echo "nbd+unix:///?socket=$WORK/$name.sock"
}

# serve_nbd NAME IMAGE [FORMAT]: exports IMAGE read-only with qemu-nbd on $WORK/NAME.sock and
# prints the nbd+unix URI.
serve_nbd() {
  local name=$1 image=$2 format=${3:-raw}
  qemu-nbd --read-only -f "$format" --socket="$WORK/$name.sock" --persistent --shared=8 \
    "$image" >"$WORK/$name.qemu-nbd.log" 2>&1 &
  track_server "$name" $!
  wait_for_socket "$WORK/$name.sock"
  echo "nbd+unix:///?socket=$WORK/$name.sock"
}

# serve_nbd_writable NAME IMAGE [FORMAT]: same, writable (a restore target).
serve_nbd_writable() {
  local name=$1 image=$2 format=${3:-raw}
  qemu-nbd -f "$format" --socket="$WORK/$name.sock" --persistent --shared=8 \
    "$image" >"$WORK/$name.qemu-nbd.log" 2>&1 &
  track_server "$name" $!
  wait_for_socket "$WORK/$name.sock"
  echo "nbd+unix:///?socket=$WORK/$name.sock"
}

# run_expect CODE CMD...: runs CMD, captures stdout+stderr in $OUT, asserts its exit code.
run_expect() {
  local want=$1 rc=0
  shift
  OUT=$("$@" 2>&1) || rc=$?
  [ "$rc" -eq "$want" ] || fail "expected exit code $want, got $rc from: $*
$OUT"
}

# expect_output TEXT: asserts $OUT contains TEXT.
expect_output() {
  grep -qF -- "$1" <<<"$OUT" || fail "expected output to contain '$1', got:
$OUT"
}

# json_field JSON EXPR: evaluates a Python expression over the parsed JSON `j`.
json_field() {
  python3 -c 'import json,sys; j=json.load(sys.stdin); print(eval(sys.argv[1]))' "$2" <<<"$1"
}

# make_mixed_disk PATH SIZE_MIB: a sparse disk with random data, text, zeros and holes.
make_mixed_disk() {
  local path=$1 size=$2
  truncate -s "${size}M" "$path"
  head -c 6M /dev/urandom | dd of="$path" bs=1M seek=1 conv=notrunc status=none
  # (yes dies of SIGPIPE when head stops reading; under pipefail that must not fail the test)
  { yes "offhost integration test line of compressible text" || true; } | head -c 5M |
    dd of="$path" bs=1M seek=12 conv=notrunc status=none
  dd if=/dev/zero of="$path" bs=1M seek=20 count=3 conv=notrunc status=none  # allocated zeros
  head -c 1M /dev/urandom | dd of="$path" bs=1M seek=$((size - 2)) conv=notrunc status=none
}

# new_datastore DIR [ARGS...]: `offhost datastore init DIR ARGS...`, failing the test if it fails.
new_datastore() {
  run_expect 0 "$OFFHOST" datastore init "$@"
}

# backup_json DS VM DISK-SPEC...: runs a backup with --json, asserts exit 0, prints the JSON.
backup_json() {
  local ds=$1 vm=$2 spec args=()
  shift 2
  for spec in "$@"; do args+=(--disk "$spec"); done
  run_expect 0 "$OFFHOST" backup --datastore "$ds" --vm "$vm" "${args[@]}" --json
  printf '%s\n' "$OUT"
}

# snapshot_count DS [VM]: number of committed snapshots (of VM, or of all VMs).
snapshot_count() {
  local out
  if [ -n "${2:-}" ]; then
    out=$("$OFFHOST" snapshots --datastore "$1" --vm "$2" --json) || fail "snapshots failed: $out"
  else
    out=$("$OFFHOST" snapshots --datastore "$1" --json) || fail "snapshots failed: $out"
  fi
  json_field "$out" 'len(j)'
}

# expect_identical A B: byte-identical files of the same size.
expect_identical() {
  cmp -- "$1" "$2" >/dev/null || fail "$2 differs from $1: $(cmp -- "$1" "$2" 2>&1 | head -1)"
}

# allocated_bytes FILE: bytes the file system actually stores for FILE.
allocated_bytes() { echo $(( $(stat -c %b "$1") * $(stat -c %B "$1") )); }

# staging_entries DS: what is left in the datastore's staging directory.
staging_entries() { ls -A "$1/tmp" | grep '@' || true; }  # staging dirs are VM@ID

# xfs_proto DIR: prints an mkfs.xfs proto file (mkfs.xfs -p) that copies DIR's tree: names,
# modes (with setuid/setgid), owners, file contents and symlink targets. mkfs stamps every
# inode with its own time: mtimes are not copied.
xfs_proto() {
  python3 - "$1" <<'PY'
import os, stat, sys
root = sys.argv[1]
def mode(st):
    m = st.st_mode
    return ("u" if m & stat.S_ISUID else "-") + ("g" if m & stat.S_ISGID else "-") + "%03o" % (m & 0o777)
def walk(path, depth):
    for name in sorted(os.listdir(path)):
        p = os.path.join(path, name)
        st = os.lstat(p)
        pad = "  " * depth
        if stat.S_ISLNK(st.st_mode):
            print(f"{pad}{name} l{mode(st)} {st.st_uid} {st.st_gid} {os.readlink(p)}")
        elif stat.S_ISDIR(st.st_mode):
            print(f"{pad}{name} d{mode(st)} {st.st_uid} {st.st_gid}")
            walk(p, depth + 1)
            print(f"{pad}$")
        elif stat.S_ISREG(st.st_mode):
            print(f"{pad}{name} -{mode(st)} {st.st_uid} {st.st_gid} {os.path.abspath(p)}")
st = os.stat(root)
print("/dev/null\n0 0")
print(f"d{mode(st)} {st.st_uid} {st.st_gid}")
walk(root, 1)
print("$")
PY
}

# make_small_xfs IMAGE SIZE_MIB DIR: an XFS file system holding DIR's tree, in a file. XFS
# refuses file systems under 300 MB unless it runs under fstests, which the three variables
# tell it; small test images are exactly what that exception is for.
make_small_xfs() {
  xfs_proto "$3" >"$1.proto"
  rm -f "$1"
  truncate -s "${2}M" "$1"
  TEST_DIR=1 TEST_DEV=1 QA_CHECK_FS=1 mkfs.xfs -q -f -p "$1.proto" "$1" >/dev/null
  rm -f "$1.proto"
}

# lvm_vg DISK PV_OFFSET PV_SIZE VG SEGMENT...: makes DISK bytes PV_OFFSET..+PV_SIZE an LVM2
# physical volume of volume group VG (4 MiB extents, pe_start 1 MiB) holding linear logical
# volumes, each SEGMENT "LV LV_EXTENT COUNT PV_EXTENT" (an LV's segments in order). Built
# without device-mapper and without mounting anything: labels are written through a loop
# device onto the disk file (pvcreate and vgcreate need a block device); the LVs' metadata is
# added with vgcfgrestore because lvcreate needs device-mapper. LVM runs with a private
# configuration that sees only that loop device and writes no backups to the host's /etc/lvm.
# Skips the test (exit 77) where losetup or LVM cannot run. Write LV bytes with lvm_put.
lvm_vg() {
  local disk=$1 offset=$2 size=$3 vg=$4 lvm_dir
  shift 4
  need losetup pvcreate vgcreate vgcfgbackup vgcfgrestore python3
  lvm_dir=$(mktemp -d "${WORK:-/tmp}/lvm.XXXXXX")
  cat >"$lvm_dir/lvm.conf" <<'CONF'
devices { obtain_device_list_from_udev = 0 external_device_info_source = "none" }
backup { backup = 0 archive = 0 }
activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }
global { use_lvmpolld = 0 }
CONF
  # A subshell, so the loop device is detached whatever fails.
  if ! (
    set -euo pipefail
    export LVM_SYSTEM_DIR=$lvm_dir LVM_SUPPRESS_FD_WARNINGS=1
    loop=$(losetup -f --show -o "$offset" --sizelimit "$size" "$disk" 2>"$lvm_dir/losetup.err") || {
      echo "SKIP: no loop device to write LVM labels with (losetup: $(cat "$lvm_dir/losetup.err"))"
      exit 77
    }
    trap 'losetup -d "$loop"' EXIT
    only="devices { filter = [ \"a|^$loop\$|\", \"r|.*|\" ] }"
    # (vgcreate warns that the metadata is not backed up: backups are off on purpose)
    pvcreate -q --config "$only" "$loop" >/dev/null 2>"$lvm_dir/pvcreate.err" ||
      { cat "$lvm_dir/pvcreate.err" >&2; exit 1; }
    vgcreate -q -s 4M --config "$only" "$vg" "$loop" >/dev/null 2>"$lvm_dir/vgcreate.err" ||
      { cat "$lvm_dir/vgcreate.err" >&2; exit 1; }
    pe_start=$(pvs --config "$only" --noheadings --nosuffix --units b -o pe_start "$loop" | tr -d ' ')
    [ "$pe_start" = 1048576 ] || { echo "pe_start is $pe_start, expected 1 MiB" >&2; exit 1; }
    vgcfgbackup -q --config "$only" -f "$lvm_dir/meta" "$vg" >/dev/null
    python3 - "$lvm_dir/meta" "$@" <<'PY'
import random, string, sys
path, specs = sys.argv[1], [s.split() for s in sys.argv[2:]]
def lvm_id():
    s = "".join(random.choice(string.ascii_letters + string.digits) for _ in range(32))
    return "-".join([s[0:6], s[6:10], s[10:14], s[14:18], s[18:22], s[22:26], s[26:32]])
def lv(name, segments):  # segments: (LV start extent, count, PV start extent)
    out = f'\t\t{name} {{\n\t\t\tid = "{lvm_id()}"\n\t\t\tstatus = ["READ", "WRITE", "VISIBLE"]\n'
    out += f"\t\t\tflags = []\n\t\t\tsegment_count = {len(segments)}\n"
    for i, (start, count, pe) in enumerate(segments, 1):
        out += (f"\t\t\tsegment{i} {{\n\t\t\t\tstart_extent = {start}\n\t\t\t\textent_count = {count}\n"
                f'\t\t\t\ttype = "striped"\n\t\t\t\tstripe_count = 1\n'
                f'\t\t\t\tstripes = [\n\t\t\t\t\t"pv0", {pe}\n\t\t\t\t]\n\t\t\t}}\n')
    return out + "\t\t}\n"
lvs = {}
for name, start, count, pe in specs:
    lvs.setdefault(name, []).append((int(start), int(count), int(pe)))
text = open(path).read()
end = text.rstrip().rfind("}")
body = "".join(lv(name, segs) for name, segs in lvs.items())
open(path, "w").write(text[:end] + "\tlogical_volumes {\n" + body + "\t}\n}\n")
PY
    # vgcfgrestore warns that it cannot check for active LVs without device-mapper: expected.
    vgcfgrestore -q --config "$only" -f "$lvm_dir/meta" "$vg" >/dev/null 2>"$lvm_dir/restore.err" || {
      cat "$lvm_dir/restore.err" >&2
      exit 1
    }
  ); then
    local rc=$?
    rm -rf "$lvm_dir"
    [ "$rc" -eq 77 ] && exit 77
    fail "lvm_vg: writing the LVM labels of $vg on $disk failed"
  fi
  rm -rf "$lvm_dir"
}

# lvm_put DISK PV_OFFSET SRC LV_EXTENT COUNT PV_EXTENT: copies COUNT 4 MiB extents of SRC from
# LV_EXTENT on into a PV made by lvm_vg at PV_OFFSET (extent 0 starts at pe_start, 1 MiB).
lvm_put() {
  local disk=$1 offset=$2 src=$3 le=$4 count=$5 pe=$6
  dd if="$src" of="$disk" bs=1M skip=$((le * 4)) count=$((count * 4)) \
    seek=$((offset / 1048576 + 1 + pe * 4)) conv=notrunc,sparse status=none
}

# make_rhel_disk DISK TREE: a raw disk laid out like a default RHEL install:
#   GPT; vda1 = XFS /boot from TREE/boot (1 MiB..33 MiB); vda2 = LVM2 PV of VG "rhel"
#   (33 MiB..137 MiB, 4 MiB extents, pe_start 1 MiB) with LVs
#     root: XFS from TREE/root, 80 MiB in two segments, LV extents 0-1 on PV extents 0-1 and
#           LV extents 2-19 on PV extents 6-23 (so its bytes are not contiguous on the disk)
#     home: ext4 from TREE/home, 16 MiB on PV extents 2-5 (between root's two segments)
# TREE/{boot,root,home} must exist. Skips the test (exit 77) where losetup or LVM cannot run.
make_rhel_disk() {
  local disk=$1 tree=$2 p2=$((33 << 20)) seg lv le count pe
  local segments=("root 0 2 0" "root 2 18 6" "home 0 4 2")
  need sfdisk mkfs.xfs mkfs.ext4
  make_small_xfs "$disk.boot" 32 "$tree/boot"
  make_small_xfs "$disk.root" 80 "$tree/root"
  rm -f "$disk.home"
  truncate -s 16M "$disk.home"
  mkfs.ext4 -q -F -L home -d "$tree/home" "$disk.home" >/dev/null
  rm -f "$disk"
  truncate -s 140M "$disk"
  printf 'label: gpt\nstart=2048, size=%d, type=L\nstart=%d, size=%d, type=E6D6D379-F507-44C2-A23C-238F2A3DF928\n' \
    $((32 * 2048)) $((33 * 2048)) $((104 * 2048)) | sfdisk -q "$disk"
  dd if="$disk.boot" of="$disk" bs=1M seek=1 conv=notrunc,sparse status=none
  lvm_vg "$disk" "$p2" $((104 << 20)) rhel "${segments[@]}"
  for seg in "${segments[@]}"; do
    read -r lv le count pe <<<"$seg"
    lvm_put "$disk" "$p2" "$disk.$lv" "$le" "$count" "$pe"
  done
  rm -f "$disk.boot" "$disk.root" "$disk.home"
}
