// ListedInodes: a file in a folder listed lately opens by its inode (mount/src/fs_reader.h).
#include "fs_reader.h"

#include <gtest/gtest.h>

namespace offhost::mount::internal {
namespace {

TEST(ListedInodesTest, FindsEntriesOfTheFoldersListedLately) {
  ListedInodes listed;
  listed.Remember("/", {{"etc", 12}, {"big", 13}});
  listed.Remember("/big", {{"sub", 20}, {"f1", 21}});
  listed.Remember("/big/sub", {{"deep.txt", 30}});
  // The catalog went down into /big/sub and comes back to /big's files: still found.
  EXPECT_EQ(listed.Find("/big/f1"), 21u);
  EXPECT_EQ(listed.Find("/big/sub/deep.txt"), 30u);
  EXPECT_EQ(listed.Find("/etc"), 12u);
  EXPECT_EQ(listed.Find("/big/missing"), std::nullopt);
  EXPECT_TRUE(listed.KnownAbsent("/big/missing"));  // no lookup needed to say so
  EXPECT_EQ(listed.Find("/other/f1"), std::nullopt);
  EXPECT_FALSE(listed.KnownAbsent("/other/f1"));  // not known: a lookup decides
  EXPECT_FALSE(listed.KnownAbsent("/big/f1"));
  EXPECT_EQ(listed.Find("relative"), std::nullopt);
  listed.Remember("/big", {{"f2", 22}});  // listed again: the new entries count
  EXPECT_EQ(listed.Find("/big/f1"), std::nullopt);
  EXPECT_EQ(listed.Find("/big/f2"), 22u);
}

TEST(ListedInodesTest, KeepsAFolderWhoseSubFoldersAreWalked) {
  ListedInodes listed;
  std::unordered_map<std::string, uint64_t> users;
  for (int i = 0; i < 100; ++i) users["u" + std::to_string(i)] = 500u + i;
  listed.Remember("/home", users);
  // The catalog's walk: each user's folder is found in /home, then listed itself.
  for (int i = 0; i < 100; ++i) {
    const std::string user = "/home/u" + std::to_string(i);
    ASSERT_EQ(listed.Find(user), 500u + i) << "after " << i << " sub-folders";
    listed.Remember(user, {{".profile", 1u}});
  }
}

TEST(ListedInodesTest, ForgetsTheOldestFolderBeyondItsLimit) {
  ListedInodes listed;
  for (int i = 0; i < 100; ++i) listed.Remember("/d" + std::to_string(i), {{"f", 1000u + i}});
  EXPECT_EQ(listed.Find("/d99/f"), 1099u);
  EXPECT_EQ(listed.Find("/d0/f"), std::nullopt);
}

}  // namespace
}  // namespace offhost::mount::internal
