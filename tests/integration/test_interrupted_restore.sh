#!/usr/bin/env bash
# A restore to a new file that is interrupted (Ctrl-C = SIGINT, or SIGTERM from a service
# manager or `timeout`) must not leave a file at the target path that looks like a good restore:
# offhost removes "the incomplete restore target" when a restore fails, and an interrupted
# restore is just as incomplete. Either the file is gone, or it is the whole disk.
source "$(dirname "$0")/lib.sh"
need qemu-nbd python3

DS=$WORK/ds
new_datastore "$DS"
head -c 384M /dev/urandom >"$WORK/disk.raw"  # incompressible: the restore takes a moment
URI=$(serve_nbd src "$WORK/disk.raw")
run_expect 0 "$OFFHOST" backup --datastore "$DS" --vm web01 --disk "vda=$URI"
stop_server src

# interrupt SIGNAL SECONDS TARGET: runs the restore, sends SIGNAL after SECONDS (with SIGINT at
# its default action, as in a terminal), prints the exit status.
interrupt() {
  python3 - "$1" "$2" "$OFFHOST" restore --datastore "$DS" web01@latest --to "$3" <<'EOF'
import signal, subprocess, sys, time
sig, delay, cmd = getattr(signal, sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
time.sleep(delay)
p.send_signal(sig)
print(p.wait())
EOF
}

interrupted=0
for sig in SIGINT SIGTERM; do
  for t in 0.1 0.25; do
    target=$WORK/restore-$sig-$t.raw
    rc=$(interrupt "$sig" "$t" "$target")
    if [ "$rc" -eq 0 ]; then
      echo "$sig at ${t}s: the restore had already finished"
      expect_identical "$WORK/disk.raw" "$target"
      continue
    fi
    interrupted=$((interrupted + 1))
    if [ -e "$target" ] && ! cmp -s "$WORK/disk.raw" "$target"; then
      fail "a restore interrupted by $sig after ${t}s (exit $rc) left $target: $(stat -c %s "$target") bytes, the disk's full size, but not the disk (first difference: $(cmp "$WORK/disk.raw" "$target" 2>&1 | head -1))"
    fi
    # a clean stop (SIGINT/SIGTERM, not SIGKILL) leaves no temporary file either
    left=$(ls -d "$target".* 2>/dev/null || true)
    [ -z "$left" ] || fail "a restore interrupted by $sig left $left"
    echo "$sig at ${t}s: exit $rc, no misleading file"
  done
done
[ "$interrupted" -gt 0 ] || echo "note: every restore finished before its signal; nothing was interrupted"
echo PASS
