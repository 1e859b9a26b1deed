// libFuzzer target: manifest segments are read back from the index and (later) from tape.
// Decoding must never crash and must only return contiguous, non-empty entries; a segment
// of either format has exactly one encoding, and what format 1 holds, format 2 holds too.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "offhost/storage/manifest.h"

using namespace offhost::storage;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  auto entries = DecodeManifestSegment(input);
  if (!entries.ok()) return 0;
  for (size_t i = 0; i < entries->size(); ++i) {
    const auto& e = (*entries)[i];
    if (e.length == 0) std::abort();
    if (i > 0 && (*entries)[i - 1].offset + (*entries)[i - 1].length != e.offset) std::abort();
  }
  // Round trip in the input's own format: re-encoding gives back the input.
  std::string again;
  if (size > 0 && data[0] == 0xF2) {
    again = EncodeManifestSegment(*entries);
  } else {
    for (const auto& e : *entries) AppendManifestEntryV1(e, &again);
  }
  if (again != input) std::abort();
  // Format 2 holds whatever decoded.
  if (entries->empty()) return 0;
  auto v2 = DecodeManifestSegment(EncodeManifestSegment(*entries));
  if (!v2.ok() || *v2 != *entries) std::abort();
  return 0;
}
