#!/usr/bin/env python3
"""offhost.v1 backup and job calls for test_daemon_backup.sh: one call, one line of output.

    backup_client.py GEN_DIR SOCKET TOKEN_FILE start VM REQUEST_ID
    backup_client.py GEN_DIR SOCKET TOKEN_FILE get|cancel JOB
    backup_client.py GEN_DIR SOCKET TOKEN_FILE watch-reattach JOB
    backup_client.py GEN_DIR SOCKET TOKEN_FILE snapshots GROUP

Prints "OK <detail>" or "<STATUS_CODE> reason=<ErrorInfo.reason> <message>", like client.py.
watch-reattach reads the job's first events, drops the stream, re-attaches with
after_sequence and follows it to the end; then it asserts that every event the job's whole
log holds was received, in order and once.
"""
import sys


def error_reason(err):
    from offhost.v1 import common_pb2
    for key, value in err.trailing_metadata() or ():
        if key == "offhost-error-bin":
            return common_pb2.ErrorInfo.FromString(value).reason
    return "-"


def describe(job):
    from offhost.v1 import jobs_pb2
    snap = job.backup_result.snapshot.name if job.HasField("backup_result") else "-"
    return (f"job={job.name} state={jobs_pb2.JobState.Name(job.state)} snapshot={snap} "
            f"error={job.error.code}:{job.error.message or '-'}")


def watch_reattach(jobs, name, md):
    from offhost.v1 import jobs_pb2
    first = []
    stream = jobs.WatchJob(jobs_pb2.WatchJobRequest(name=name), metadata=md)
    for event in stream:
        first.append(event)
        if len(first) == 2:
            break
    stream.cancel()  # a client that lost its connection
    after = first[-1].sequence
    rest = list(jobs.WatchJob(jobs_pb2.WatchJobRequest(name=name, after_sequence=after),
                              metadata=md, timeout=120))
    seen = [e.sequence for e in first + rest]
    assert seen == sorted(set(seen)), f"sequences not strictly increasing: {seen}"
    whole = [e.sequence for e in jobs.WatchJob(jobs_pb2.WatchJobRequest(name=name),
                                               metadata=md, timeout=10)]
    missed = sorted(set(whole) - set(seen))
    assert not missed, f"re-attach missed events {missed} (got {seen})"
    last = (first + rest)[-1]
    assert last.HasField("state_change"), "the stream did not end with a state change"
    states = [jobs_pb2.JobState.Name(e.state_change.state) for e in first + rest
              if e.HasField("state_change")]
    return f"events={len(seen)} reattached_after={after} states={','.join(states)}"


def call(args, ch, md):
    from offhost.v1 import backup_pb2_grpc, catalog_pb2, catalog_pb2_grpc, jobs_pb2
    from offhost.v1 import jobs_pb2_grpc
    jobs = jobs_pb2_grpc.JobsServiceStub(ch)
    what = args[0]
    if what == "start":
        from offhost.v1 import backup_pb2
        req = backup_pb2.StartBackupRequest(request_id=args[2], labels={"vendor.job": "4711"})
        req.spec.vm = args[1]
        return describe(backup_pb2_grpc.BackupServiceStub(ch).StartBackup(req, metadata=md,
                                                                          timeout=10))
    if what == "get":
        return describe(jobs.GetJob(jobs_pb2.GetJobRequest(name=args[1]), metadata=md, timeout=10))
    if what == "cancel":
        return describe(jobs.CancelJob(jobs_pb2.CancelJobRequest(name=args[1]), metadata=md,
                                       timeout=10))
    if what == "watch-reattach":
        return watch_reattach(jobs, args[1], md)
    if what == "snapshots":
        r = catalog_pb2_grpc.CatalogServiceStub(ch).ListSnapshots(
            catalog_pb2.ListSnapshotsRequest(parent=args[1]), metadata=md, timeout=10)
        return "snapshots=" + ",".join(s.name for s in r.snapshots)
    raise SystemExit(f"unknown call {what}")


def main():
    gen_dir, socket, token_file = sys.argv[1:4]
    sys.path.insert(0, gen_dir)
    import grpc
    with open(token_file) as f:
        md = (("authorization", "Bearer " + f.read().strip()),)
    ch = grpc.insecure_channel("unix:" + socket)
    try:
        print("OK", call(sys.argv[4:], ch, md))
    except grpc.RpcError as err:
        print(err.code().name, f"reason={error_reason(err)}", err.details())


if __name__ == "__main__":
    main()
