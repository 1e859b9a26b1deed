// Garbage collection as the CLI runs it (offhost gc, offhost prune --gc): the test hook,
// progress, and the summary (text or JSON).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "offhost/common/status.h"
#include "offhost/storage/gc.h"

namespace offhost::cli {

// "300", "300s", "5m", "2h", "1d" → seconds.
Result<int64_t> ParseAge(const std::string& text);

// Runs GC on `ds` with a progress bar on a terminal. Test hook: with OFFHOST_TEST_GC_PAUSE=PATH
// set, GC creates PATH.ready when it has deleted one chunk and is about to delete the second
// (holding that chunk directory's lock); every sweep thread that comes to a delete then waits
// (up to 2 minutes) for PATH to appear, so exactly one chunk is gone meanwhile.
Result<storage::GcReport> RunGc(storage::Datastore& ds, storage::GcOptions options, bool quiet);

nlohmann::json GcJson(const storage::GcReport& r);
void PrintGcReport(const storage::GcReport& r);

}  // namespace offhost::cli
