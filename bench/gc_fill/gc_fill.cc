// offhost-gc-fill DIR CHUNKS SNAPSHOTS: makes a datastore in DIR (new or empty) holding CHUNKS
// small synthetic chunks and SNAPSHOTS committed snapshots of VM "bench", snapshot i using the
// chunks [i*CHUNKS/10, i*CHUNKS/10 + 3*CHUNKS/10) — neighbours share most of their chunks,
// as successive backups do. For bench/gc: a datastore of a million chunks in a minute or two,
// where backing up a million real 4 MiB chunks would take hours.
//
// Chunk files are encoded with the datastore's codec and named as the chunk store names them,
// but written without the store's fsync batches (durability is not what is measured);
// snapshots go through Datastore::BeginSnapshot / Commit like a backup's.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "offhost/storage/chunk_codec.h"
#include "offhost/storage/datastore.h"

using namespace offhost;
using namespace offhost::storage;

namespace {

std::string ChunkData(uint64_t i) {
  char buf[64];
  int n = std::snprintf(buf, sizeof buf, "offhost gc bench chunk %012llu",
                        static_cast<unsigned long long>(i));
  return std::string(buf, static_cast<size_t>(n));
}

int Die(const std::string& what) {
  std::fprintf(stderr, "offhost-gc-fill: %s\n", what.c_str());
  return 1;
}

Status WriteChunks(Datastore& ds, uint64_t count) {
  std::atomic<uint64_t> next{0};
  std::atomic<bool> failed{false};
  auto work = [&] {
    ChunkEncoder enc(1);
    for (uint64_t i; !failed && (i = next.fetch_add(1)) < count;) {
      std::string data = ChunkData(i);
      ChunkId id = ChunkId::Of(data);
      auto encoded = enc.Encode(id, data);
      if (!encoded.ok()) {
        failed = true;
        break;
      }
      std::span<const char> file = *encoded;
      std::string path = ds.chunks().Locate(id);
      std::string dir = path.substr(0, path.rfind('/'));
      ::mkdir(dir.c_str(), 0755);
      int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0 || ::write(fd, file.data(), file.size()) != static_cast<ssize_t>(file.size())) {
        failed = true;
      }
      if (fd >= 0) ::close(fd);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back(work);
  for (auto& t : threads) t.join();
  return failed ? Status::IOError("writing chunk files failed") : Status::OK();
}

Status CommitSnapshot(Datastore& ds, uint64_t first, uint64_t count) {
  OFFHOST_ASSIGN_OR_RETURN(auto writer, ds.BeginSnapshot("bench"));
  uint64_t size = 0;
  for (uint64_t i = first; i < first + count; ++i) size += ChunkData(i).size();
  OFFHOST_ASSIGN_OR_RETURN(DiskManifestWriter * disk, writer->AddDisk("vda", "synthetic", size));
  uint64_t at = 0;
  for (uint64_t i = first; i < first + count; ++i) {
    std::string data = ChunkData(i);
    OFFHOST_RETURN_IF_ERROR(
        disk->Add({at, data.size(), ManifestEntryKind::kChunk, ChunkId::Of(data)}));
    at += data.size();
  }
  OFFHOST_RETURN_IF_ERROR(disk->Finish({}));
  return writer->Commit().status();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) return Die("usage: offhost-gc-fill DIR CHUNKS SNAPSHOTS");
  const std::string dir = argv[1];
  const uint64_t chunks = std::strtoull(argv[2], nullptr, 10);
  const uint64_t snapshots = std::strtoull(argv[3], nullptr, 10);
  if (chunks < 10 || snapshots < 1 || snapshots > 8) {
    return Die("CHUNKS must be at least 10 and SNAPSHOTS 1-8 (the last one ends at CHUNKS)");
  }
  DatastoreConfig config;
  config.chunk_size = 64 * 1024;
  if (Status st = Datastore::Init(dir, config); !st.ok()) return Die(st.message());
  auto ds = Datastore::Open(dir, true);
  if (!ds.ok()) return Die(ds.status().message());
  if (Status st = WriteChunks(**ds, chunks); !st.ok()) return Die(st.message());
  const uint64_t step = chunks / 10, window = 3 * chunks / 10;
  for (uint64_t s = 0; s < snapshots; ++s) {
    uint64_t first = (s + 8 - snapshots) * step;  // the newest ends at the last chunk
    uint64_t count = s + 1 == snapshots ? chunks - first : window;
    if (Status st = CommitSnapshot(**ds, first, count); !st.ok()) return Die(st.message());
  }
  std::printf("%llu chunks, %llu snapshots\n", static_cast<unsigned long long>(chunks),
              static_cast<unsigned long long>(snapshots));
  return 0;
}
