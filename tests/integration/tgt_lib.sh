# iSCSI targets for the integration tests: a private tgtd (user-space target) on 127.0.0.1.
# Source after lib.sh. Each tgtd gets its own portal port and its own management port (-C), so
# tests running in parallel (ctest -j) do not share a daemon.

# free_port: a TCP port nothing listens on right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_tgtd: starts tgtd on 127.0.0.1:$TGT_PORT, management port $TGT_CONTROL. tgtd ignores
# SIGTERM once it has targets, so cleanup (lib.sh) stops it with SIGKILL by its PID.
start_tgtd() {
  local i
  need tgtd tgtadm
  TGT_PORT=$(free_port)
  # The management "port" only names tgtd's control socket; derive one from the free TCP port.
  TGT_CONTROL=$(( (TGT_PORT % 12000) + 20001 ))  # tgtd takes at most 32767
  tgtd -f -C "$TGT_CONTROL" --iscsi "portal=127.0.0.1:$TGT_PORT" >"$WORK/tgtd.log" 2>&1 &
  track_server tgtd $!
  for i in $(seq 1 100); do
    tgtadm -C "$TGT_CONTROL" --lld iscsi --op show --mode target >/dev/null 2>&1 && return 0
    pid_alive "$(server_pid tgtd)" || fail "tgtd did not start: $(cat "$WORK/tgtd.log")"
    sleep 0.1
  done
  fail "tgtd did not answer on management port $TGT_CONTROL: $(cat "$WORK/tgtd.log")"
}

# tgt ARGS...: tgtadm against this test's tgtd.
tgt() { tgtadm -C "$TGT_CONTROL" --lld iscsi "$@" || fail "tgtadm $* failed"; }

# add_target TID IQN: a target that accepts connections from 127.0.0.1.
add_target() {
  tgt --op new --mode target --tid "$1" -T "$2"
  tgt --op bind --mode target --tid "$1" -I 127.0.0.1
}

# add_lun TID LUN FILE [thick]: FILE as a disk LUN, thin-provisioned (GET LBA STATUS answers
# holes) unless "thick" (then a backup's first command to it is a READ).
add_lun() {
  tgt --op new --mode logicalunit --tid "$1" --lun "$2" -b "$3" --bstype rdwr
  if [ "${4:-}" != thick ]; then
    tgt --op update --mode logicalunit --tid "$1" --lun "$2" --params thin_provisioning=1
  fi
}

# add_chap TID USER SECRET [--outgoing]: a CHAP account bound to the target; with --outgoing,
# the account the target answers mutual CHAP with.
add_chap() {
  tgt --op new --mode account --user "$2" --password "$3"
  tgt --op bind --mode account --tid "$1" --user "$2" ${4:-}
}

# allow_only_initiator TID IQN: only this initiator name may log in (LUN masking).
allow_only_initiator() {
  tgt --op unbind --mode target --tid "$1" -I 127.0.0.1
  tgt --op bind --mode target --tid "$1" -Q "$2"
}

# iscsi_uri TARGET LUN [USER]: the URI of a LUN of this test's tgtd.
iscsi_uri() { echo "iscsi://${3:+$3@}127.0.0.1:$TGT_PORT/$1/$2"; }
