#include "offhost/storage/chunk_id.h"

#include <gtest/gtest.h>

namespace offhost::storage {
namespace {

TEST(ChunkId, Sha256OfKnownInput) {
  std::string abc = "abc";
  EXPECT_EQ(ChunkId::Of(abc).Hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(ChunkId, HexRoundTrip) {
  ChunkId id = ChunkId::Of(std::string("offhost"));
  auto back = ChunkId::FromHex(id.Hex());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, id);
  EXPECT_EQ(id.ShortHex(), id.Hex().substr(0, 12));
}

TEST(ChunkId, FromHexRejectsNonCanonicalNames) {
  std::string hex = ChunkId::Of(std::string("x")).Hex();
  EXPECT_FALSE(ChunkId::FromHex(hex.substr(1)).has_value());
  std::string upper = hex;
  upper[0] = 'A';
  EXPECT_FALSE(ChunkId::FromHex(upper).has_value());
  EXPECT_FALSE(ChunkId::FromHex(hex.substr(0, 63) + "g").has_value());
}

}  // namespace
}  // namespace offhost::storage
