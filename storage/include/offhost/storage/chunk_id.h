// ChunkId: SHA-256 of a chunk's uncompressed bytes — its name in every chunk store.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace offhost::storage {

struct ChunkId {
  std::array<uint8_t, 32> bytes{};

  static ChunkId Of(std::span<const char> data);
  static std::optional<ChunkId> FromHex(std::string_view hex);
  std::string Hex() const;
  // First 12 hex digits: enough to name a chunk in messages.
  std::string ShortHex() const { return Hex().substr(0, 12); }

  auto operator<=>(const ChunkId&) const = default;
};

struct ChunkIdHash {
  size_t operator()(const ChunkId& id) const {
    size_t h;
    static_assert(sizeof(h) <= sizeof(id.bytes));
    __builtin_memcpy(&h, id.bytes.data(), sizeof(h));
    return h;
  }
};

}  // namespace offhost::storage
