// libFuzzer target: catalog trees are read back from the index, and their names came from
// guest file systems. Decoding must never crash, and must only return entries whose names are
// safe path components, in strictly increasing order.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "offhost/storage/catalog.h"

using namespace offhost::storage;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto entries = DecodeTree({reinterpret_cast<const char*>(data), size});
  if (!entries.ok()) return 0;
  for (size_t i = 0; i < entries->size(); ++i) {
    if (!IsCatalogName((*entries)[i].name)) std::abort();
    if (i > 0 && !((*entries)[i - 1].name < (*entries)[i].name)) std::abort();
  }
  // What decodes re-encodes to something that decodes to the same entries.
  std::string again = EncodeTree(*entries);
  auto back = DecodeTree(again);
  if (!back.ok() || *back != *entries) std::abort();
  return 0;
}
