// libFuzzer target: chunk files come from disk, tape or an object store and may be damaged
// or hostile. Decoding must never crash, and must accept only a file that proves itself.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "offhost/storage/chunk_codec.h"

using namespace offhost::storage;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const char> file(reinterpret_cast<const char*>(data), size);
  auto hdr = DecodeChunkHeader(file);
  if (!hdr.ok()) return 0;
  std::string out;
  if (DecodeChunk(hdr->id, file, &out).ok()) {
    // Accepted: it must really be the chunk its header names.
    if (ChunkId::Of(out) != hdr->id || out.size() != hdr->raw_size) std::abort();
  }
  return 0;
}
