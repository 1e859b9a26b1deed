#!/usr/bin/env python3
"""offhost.v1 client of bench/daemon: backups started at once, and catalog searches timed.

    daemon_client.py backup GEN SOCKET TOKEN DATASTORE VM[,VM...] OUT.json
                     [--search PATTERN SEARCH_DS SEARCH_OUT.json] [--pause SECONDS]
    daemon_client.py search GEN SOCKET TOKEN DATASTORE PATTERN OUT.json
                     (--seconds N | --stop-file PATH) [--pause SECONDS]

backup: starts one full backup of each VM (BackupService.StartBackup, one thread per VM, all
released by a barrier at the same instant) and follows each with JobsService.WatchJob until
its terminal event. Writes per-job times (client side: StartBackup sent -> terminal event
received; server side: Job.start_time -> Job.end_time), logical bytes and bytes read, and the
wall time from the first StartBackup to the last terminal event. With --search, a separate
process (this script, mode search) issues SearchFiles calls in a loop from just before the
backups start until they have all ended.

search: CatalogService.SearchFiles(parent=datastores/DATASTORE, pattern=PATTERN) in a loop,
one call at a time, PAUSE seconds between calls; writes every call's start (unix time) and
latency in seconds.
"""
import json
import os
import subprocess
import sys
import threading
import time
import uuid


def load(gen):
    sys.path.insert(0, gen)


def channel(socket):
    import grpc
    return grpc.insecure_channel("unix:" + socket)


def metadata(token_file):
    with open(token_file) as f:
        return (("authorization", "Bearer " + f.read().strip()),)


def ts(t):
    return t.seconds + t.nanos / 1e9


def run_backups(gen, socket, token, ds, vms, out, search=None, pause=0.1):
    from offhost.v1 import backup_pb2, backup_pb2_grpc, jobs_pb2, jobs_pb2_grpc
    ch = channel(socket)
    md = metadata(token)
    backup = backup_pb2_grpc.BackupServiceStub(ch)
    jobs = jobs_pb2_grpc.JobsServiceStub(ch)
    # Connect before timing anything.
    import grpc
    grpc.channel_ready_future(ch).result(timeout=10)
    results = {}
    barrier = threading.Barrier(len(vms))

    def one(vm):
        req = backup_pb2.StartBackupRequest(request_id=str(uuid.uuid4()))
        req.spec.vm = "hosts/-/vms/" + vm
        req.spec.datastore = "datastores/" + ds
        req.spec.full = True
        barrier.wait()
        t0 = time.time()
        try:
            job = backup.StartBackup(req, metadata=md, timeout=30)
            last = None
            for ev in jobs.WatchJob(jobs_pb2.WatchJobRequest(name=job.name), metadata=md,
                                    timeout=3600):
                if ev.HasField("state_change"):
                    last = ev.state_change
            t1 = time.time()
            j = last.job
            r = {"vm": vm, "job": j.name, "state": jobs_pb2.JobState.Name(j.state),
                 "client_start": t0, "client_end": t1,
                 "server_start": ts(j.start_time), "server_end": ts(j.end_time),
                 "error": j.error.message}
            if j.HasField("backup_result"):
                s = j.backup_result.snapshot
                r.update(logical_bytes=s.logical_bytes, bytes_read=s.bytes_read,
                         new_bytes=s.new_bytes, snapshot=s.name,
                         catalog_files=j.backup_result.catalog.file_count,
                         phases={jobs_pb2.JobPhase.Name(p.phase): ts(p.duration)
                                 for p in j.backup_result.phases})
        except grpc.RpcError as err:
            r = {"vm": vm, "state": "RPC_" + err.code().name, "error": err.details(),
                 "client_start": t0, "client_end": time.time()}
        results[vm] = r

    searcher = None
    stop_file = None
    if search:
        pattern, search_ds, search_out = search
        stop_file = search_out + ".stop"
        if os.path.exists(stop_file):
            os.unlink(stop_file)
        searcher = subprocess.Popen([sys.executable, os.path.abspath(__file__), "search", gen,
                                     socket, token, search_ds, pattern, search_out,
                                     "--stop-file", stop_file, "--pause", str(pause)])
        # Let it connect and make its first call before the backups start.
        time.sleep(1.0)
    threads = [threading.Thread(target=one, args=(vm,)) for vm in vms]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if searcher:
        open(stop_file, "w").close()
        searcher.wait(timeout=120)
    jobs_out = [results[vm] for vm in vms]
    first = min(r["client_start"] for r in jobs_out)
    last = max(r["client_end"] for r in jobs_out)
    summary = {"vms": vms, "datastore": ds, "wall": last - first,
               "first_start": first, "last_end": last, "jobs": jobs_out}
    with open(out, "w") as f:
        json.dump(summary, f, indent=1)
    bad = [r for r in jobs_out if r["state"] != "JOB_STATE_SUCCEEDED"]
    if bad:
        sys.exit("backup failed: " + json.dumps(bad))


def run_search(gen, socket, token, ds, pattern, out, seconds=None, stop_file=None, pause=0.1):
    import grpc
    from offhost.v1 import catalog_pb2, catalog_pb2_grpc
    ch = channel(socket)
    md = metadata(token)
    grpc.channel_ready_future(ch).result(timeout=10)
    cat = catalog_pb2_grpc.CatalogServiceStub(ch)
    req = catalog_pb2.SearchFilesRequest(parent="datastores/" + ds, pattern=pattern)
    lat, hits, errors = [], None, 0
    end = time.time() + seconds if seconds else None
    while True:
        if end is not None and time.time() >= end:
            break
        if stop_file is not None and os.path.exists(stop_file):
            break
        t0 = time.perf_counter()
        wall = time.time()
        try:
            r = cat.SearchFiles(req, metadata=md, timeout=120)
            lat.append((wall, time.perf_counter() - t0))
            hits = (len(r.hits), r.snapshots_searched, bool(r.next_page_token))
        except grpc.RpcError as err:
            errors += 1
            sys.stderr.write(f"SearchFiles: {err.code().name} {err.details()}\n")
        if pause:
            time.sleep(pause)
    with open(out, "w") as f:
        json.dump({"pattern": pattern, "datastore": ds, "latencies": lat, "errors": errors,
                   "hits": hits[0] if hits else 0,
                   "snapshots_searched": hits[1] if hits else 0,
                   "more_pages": hits[2] if hits else False}, f)


def opt(args, name, default=None):
    if name in args:
        i = args.index(name)
        return args[i + 1]
    return default


def main():
    mode, gen, socket, token = sys.argv[1:5]
    args = sys.argv[5:]
    load(gen)
    pause = float(opt(args, "--pause", "0.1"))
    if mode == "backup":
        ds, vms, out = args[0], args[1].split(","), args[2]
        search = None
        if "--search" in args:
            i = args.index("--search")
            search = tuple(args[i + 1:i + 4])
        run_backups(gen, socket, token, ds, vms, out, search, pause)
    elif mode == "search":
        ds, pattern, out = args[0], args[1], args[2]
        seconds = opt(args, "--seconds")
        run_search(gen, socket, token, ds, pattern, out,
                   seconds=float(seconds) if seconds else None,
                   stop_file=opt(args, "--stop-file"), pause=pause)
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
