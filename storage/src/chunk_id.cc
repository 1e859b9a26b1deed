#include "offhost/storage/chunk_id.h"

#include <openssl/evp.h>

#include <stdexcept>

namespace offhost::storage {

ChunkId ChunkId::Of(std::span<const char> data) {
  ChunkId id;
  unsigned int len = 0;
  // EVP_Digest picks the SHA-NI / AVX2 implementation when the CPU has one.
  if (EVP_Digest(data.data(), data.size(), id.bytes.data(), &len, EVP_sha256(), nullptr) != 1 ||
      len != id.bytes.size()) {
    throw std::runtime_error("OpenSSL SHA-256 failed");  // only on OpenSSL misconfiguration
  }
  return id;
}

std::string ChunkId::Hex() const {
  static const char kDigits[] = "0123456789abcdef";
  std::string s(64, '0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    s[2 * i] = kDigits[bytes[i] >> 4];
    s[2 * i + 1] = kDigits[bytes[i] & 15];
  }
  return s;
}

static int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // upper case is not a valid chunk name: names are canonical
}

std::optional<ChunkId> ChunkId::FromHex(std::string_view hex) {
  if (hex.size() != 64) return std::nullopt;
  ChunkId id;
  for (size_t i = 0; i < 32; ++i) {
    int hi = HexValue(hex[2 * i]), lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    id.bytes[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return id;
}

}  // namespace offhost::storage
