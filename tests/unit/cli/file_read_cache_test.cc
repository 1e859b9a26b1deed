// FileReadCache: random reads over a stream-from-the-start API, bounded in memory.
#include "file_read_cache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

#include "test_util.h"

namespace offhost::cli {
namespace {

// Files in memory, streamed in pieces of an awkward size, like GuestFiles::ReadFile.
struct FakeFiles {
  std::map<std::string, std::string> content;
  size_t piece = 777 * 1024 + 13;
  int streams = 0;
  std::string fail_path;  // streaming this file fails after its first piece

  FileReadCache::StreamFn Fn() {
    return [this](const std::string& path,
                  const std::function<Status(uint64_t, std::span<const char>)>& sink) -> Status {
      ++streams;
      auto it = content.find(path);
      if (it == content.end()) return Status::NotFound(path + ": no such file");
      const std::string& c = it->second;
      for (size_t off = 0; off < c.size(); off += piece) {
        if (path == fail_path && off > 0) return Status::IOError("chunk 3fa2 damaged");
        OFFHOST_RETURN_IF_ERROR(sink(off, {c.data() + off, std::min(piece, c.size() - off)}));
      }
      return Status::OK();
    };
  }
};

FileReadCacheOptions SmallOptions() {
  FileReadCacheOptions o;
  o.block_size = 64 * 1024;
  o.budget = 1024 * 1024;
  o.min_readahead = 128 * 1024;
  o.max_readahead = 512 * 1024;
  return o;
}

std::string ReadAll(FileReadCache& cache, const std::string& path, uint64_t size, size_t step) {
  std::string out;
  std::string buf(step, '\0');
  for (uint64_t off = 0;; off += step) {
    auto n = cache.Read(path, size, off, {buf.data(), buf.size()});
    EXPECT_TRUE(n.ok()) << n.status().message();
    if (!n.ok() || *n == 0) break;
    out.append(buf.data(), *n);
  }
  return out;
}

TEST(FileReadCacheTest, RandomReadsReturnTheFileBytes) {
  FakeFiles files;
  const std::string data = testing::RandomBytes(3 * 1024 * 1024 + 4321, 1);
  files.content["/vda1/big"] = data;
  FileReadCache cache(files.Fn(), SmallOptions());
  std::mt19937 rng(7);
  std::string buf(200 * 1024, '\0');
  for (int i = 0; i < 300; ++i) {
    uint64_t off = rng() % (data.size() + 1000);  // some past the end
    size_t len = 1 + rng() % buf.size();
    auto n = cache.Read("/vda1/big", data.size(), off, {buf.data(), len});
    ASSERT_TRUE(n.ok()) << n.status().message();
    size_t want = off >= data.size() ? 0 : std::min<uint64_t>(len, data.size() - off);
    ASSERT_EQ(*n, want) << "offset " << off;
    ASSERT_EQ(std::string(buf.data(), *n), data.substr(std::min<uint64_t>(off, data.size()), want))
        << "offset " << off << " length " << len;
    ASSERT_LE(cache.stats().cached_bytes, SmallOptions().budget + 512 * 1024);
  }
}

TEST(FileReadCacheTest, SequentialReadRestartsTheStreamRarely) {
  FakeFiles files;
  const std::string data = testing::RandomBytes(4 * 1024 * 1024, 2);
  files.content["/f"] = data;
  FileReadCache cache(files.Fn(), SmallOptions());
  EXPECT_EQ(ReadAll(cache, "/f", data.size(), 128 * 1024), data);
  // 128 KiB, then 256 KiB, then 512 KiB windows: 2 + 3968 / 512 streams, not one per read
  EXPECT_LE(files.streams, 12);
  EXPECT_LE(cache.stats().cached_bytes, SmallOptions().budget);
  // everything read is cached only while the budget allows; re-reading the tail needs no stream
  int before = files.streams;
  std::string buf(1000, '\0');
  ASSERT_TRUE(cache.Read("/f", data.size(), data.size() - 1000, {buf.data(), buf.size()}).ok());
  EXPECT_EQ(files.streams, before);
  EXPECT_EQ(buf, data.substr(data.size() - 1000));
}

TEST(FileReadCacheTest, SeveralFilesShareTheBudgetAndForgetDropsOne) {
  FakeFiles files;
  files.content["/a"] = testing::RandomBytes(900 * 1024, 3);
  files.content["/b"] = testing::RandomBytes(900 * 1024, 4);
  FileReadCache cache(files.Fn(), SmallOptions());
  EXPECT_EQ(ReadAll(cache, "/a", 900 * 1024, 100 * 1024), files.content["/a"]);
  EXPECT_EQ(ReadAll(cache, "/b", 900 * 1024, 100 * 1024), files.content["/b"]);
  EXPECT_LE(cache.stats().cached_bytes, SmallOptions().budget);
  cache.Forget("/b");
  cache.Forget("/a");
  EXPECT_EQ(cache.stats().cached_bytes, 0u);
  EXPECT_EQ(ReadAll(cache, "/a", 900 * 1024, 64 * 1024), files.content["/a"]);
}

TEST(FileReadCacheTest, EmptyFileNeverStreams) {
  FakeFiles files;
  files.content["/empty"] = "";
  FileReadCache cache(files.Fn(), SmallOptions());
  char c;
  auto n = cache.Read("/empty", 0, 0, {&c, 1});
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0u);
  EXPECT_EQ(files.streams, 0);
}

TEST(FileReadCacheTest, StreamErrorsAndShortFilesAreErrors) {
  FakeFiles files;
  files.content["/bad"] = testing::RandomBytes(2 * 1024 * 1024, 5);
  files.content["/short"] = "abc";
  files.fail_path = "/bad";
  FileReadCache cache(files.Fn(), SmallOptions());
  std::string buf(4096, '\0');
  auto n = cache.Read("/bad", 2 * 1024 * 1024, 1024 * 1024, {buf.data(), buf.size()});
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), StatusCode::kIOError);
  EXPECT_NE(n.status().message().find("chunk 3fa2 damaged"), std::string::npos);
  // the first piece still reads: it is all the stream gives before failing
  n = cache.Read("/bad", 2 * 1024 * 1024, 10, {buf.data(), 100});
  ASSERT_TRUE(n.ok()) << n.status().message();
  EXPECT_EQ(std::string(buf.data(), 100), files.content["/bad"].substr(10, 100));

  n = cache.Read("/short", 10, 0, {buf.data(), 10});  // the entry says 10 bytes, the file has 3
  ASSERT_FALSE(n.ok());
  EXPECT_NE(n.status().message().find("ended at 3 bytes"), std::string::npos);

  n = cache.Read("/missing", 10, 0, {buf.data(), 10});
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace offhost::cli
