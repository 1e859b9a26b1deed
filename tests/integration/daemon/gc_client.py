#!/usr/bin/env python3
"""offhost.v1 garbage collection calls for test_daemon_gc.sh: one call, one line of output.

    gc_client.py GEN_DIR SOCKET TOKEN_FILE status DS      (waits for the space accounting)
    gc_client.py GEN_DIR SOCKET TOKEN_FILE start-gc DS MIN_AGE_SECONDS
    gc_client.py GEN_DIR SOCKET TOKEN_FILE wait JOB       (until the job ends)

Prints "OK key=value ..." or "<STATUS_CODE> <message>".
"""
import sys
import time


def call(args, ch, md):
    from offhost.v1 import datastore_pb2, datastore_pb2_grpc, jobs_pb2, jobs_pb2_grpc
    ds = datastore_pb2_grpc.DatastoreServiceStub(ch)
    if args[0] == "status":
        for _ in range(600):
            st = ds.GetDatastoreStatus(
                datastore_pb2.GetDatastoreStatusRequest(name="datastores/" + args[1]), metadata=md)
            if st.HasField("accounting_time"):
                return (f"unreferenced={st.unreferenced_bytes} "
                        f"gc_reclaimable={st.gc_reclaimable_bytes} stored={st.stored_bytes}")
            time.sleep(0.1)
        return "accounting never came"
    if args[0] == "start-gc":
        spec = jobs_pb2.GcSpec(datastore="datastores/" + args[1], min_age_seconds=int(args[2]))
        job = ds.StartGc(datastore_pb2.StartGcRequest(spec=spec), metadata=md)
        return f"job={job.name} type={jobs_pb2.JobType.Name(job.type)}"
    if args[0] == "wait":
        jobs = jobs_pb2_grpc.JobsServiceStub(ch)
        for _ in range(600):
            job = jobs.GetJob(jobs_pb2.GetJobRequest(name=args[1]), metadata=md)
            if job.state in (jobs_pb2.JOB_STATE_SUCCEEDED, jobs_pb2.JOB_STATE_FAILED,
                             jobs_pb2.JOB_STATE_CANCELLED):
                r = job.gc_result
                return (f"state={jobs_pb2.JobState.Name(job.state)} "
                        f"removed={r.removed_chunk_count} removed_bytes={r.removed_bytes} "
                        f"kept_recent={r.kept_recent_chunk_count} chunks={r.chunk_count}")
            time.sleep(0.1)
        return "job never ended"
    raise SystemExit("unknown call " + args[0])


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
        print(err.code().name, err.details())


if __name__ == "__main__":
    main()
