#!/usr/bin/env python3
"""offhost.v1 restore calls for test_daemon_restore.sh: one call, one line of output.

    restore_client.py GEN_DIR SOCKET TOKEN_FILE disk SNAPSHOT TARGET_PATH
    restore_client.py GEN_DIR SOCKET TOKEN_FILE files SNAPSHOT GUEST_PATH TARGET_DIR

Starts the restore job and follows it with WatchJob to its end. Prints
"OK job=... state=... done=N watched=N <result>" (watched: the highest done_bytes of the
progress events received) or "<STATUS_CODE> reason=<ErrorInfo.reason> <message>" when
the start is refused, like client.py.
"""
import sys


def error_reason(err):
    from offhost.v1 import common_pb2
    for key, value in err.trailing_metadata() or ():
        if key == "offhost-error-bin":
            return common_pb2.ErrorInfo.FromString(value).reason
    return "-"


def start(ch, md, args):
    from offhost.v1 import restore_pb2, restore_pb2_grpc
    stub = restore_pb2_grpc.RestoreServiceStub(ch)
    if args[0] == "disk":
        req = restore_pb2.StartDiskRestoreRequest()
        req.spec.snapshot, req.spec.file.path = args[1], args[2]
        return stub.StartDiskRestore(req, metadata=md, timeout=10)
    req = restore_pb2.StartFileRestoreRequest()
    req.spec.snapshot, req.spec.path, req.spec.target_directory = args[1], args[2], args[3]
    return stub.StartFileRestore(req, metadata=md, timeout=10)


def result(job):
    if job.HasField("disk_restore_result"):
        r = job.disk_restore_result
        return f"disk={r.disk} size={r.size_bytes} target={r.target}"
    if job.HasField("file_restore_result"):
        r = job.file_restore_result
        return f"files={r.file_count} dirs={r.directory_count} symlinks={r.symlink_count}"
    return f"error={job.error.code}:{job.error.message}"


def call(ch, md, args):
    from offhost.v1 import jobs_pb2, jobs_pb2_grpc
    job = start(ch, md, args)
    jobs = jobs_pb2_grpc.JobsServiceStub(ch)
    progressed = 0
    for event in jobs.WatchJob(jobs_pb2.WatchJobRequest(name=job.name), metadata=md, timeout=120):
        if event.HasField("progress"):
            progressed = max(progressed, event.progress.done_bytes)
    job = jobs.GetJob(jobs_pb2.GetJobRequest(name=job.name), metadata=md, timeout=10)
    return (f"job={job.name} state={jobs_pb2.JobState.Name(job.state)} "
            f"done={job.progress.done_bytes} watched={progressed} {result(job)}")


def main():
    gen_dir, socket, token_file = sys.argv[1:4]
    sys.path.insert(0, gen_dir)
    import grpc
    with open(token_file) as f:
        md = (("authorization", "Bearer " + f.read().strip()),)
    ch = grpc.insecure_channel("unix:" + socket)
    try:
        print("OK", call(ch, md, sys.argv[4:]))
    except grpc.RpcError as err:
        print(err.code().name, f"reason={error_reason(err)}", err.details())


if __name__ == "__main__":
    main()
