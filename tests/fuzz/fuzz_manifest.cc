// libFuzzer target: manifest segments are read back from the index and (later) from tape.
// Decoding must never crash and must only return contiguous, non-empty entries.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "offhost/storage/manifest.h"

using namespace offhost::storage;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto entries = DecodeManifestSegment({reinterpret_cast<const char*>(data), size});
  if (!entries.ok()) return 0;
  for (size_t i = 0; i < entries->size(); ++i) {
    const auto& e = (*entries)[i];
    if (e.length == 0) std::abort();
    if (i > 0 && (*entries)[i - 1].offset + (*entries)[i - 1].length != e.offset) std::abort();
  }
  // Round trip: re-encoding gives back the input.
  std::string again;
  for (const auto& e : *entries) AppendManifestEntry(e, &again);
  if (again != std::string(reinterpret_cast<const char*>(data), size)) std::abort();
  return 0;
}
