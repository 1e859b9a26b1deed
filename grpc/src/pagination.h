// Pagination of List* and SearchFiles (docs/api.md "Conventions"): page_size 0 means 100, at
// most 1000; a page token is the offset of the next page plus a hash of the request it came
// with, so a token sent with a different query is refused instead of skipping silently.
//
// Each page is recomputed from the datastore and the first `offset` results skipped: simple
// and stateless, but a snapshot committed between two pages shifts the pages (a result may
// come twice or be missed), and a late page costs as much as all pages before it.
#pragma once

#include <google/protobuf/message.h>

#include <cstddef>
#include <string>

#include "offhost/common/status.h"

namespace offhost::grpcapi {

struct Page {
  size_t offset = 0;  // results to skip
  size_t size = 0;    // results to return

  // The results of `total` this page covers: [begin(total), end(total)).
  size_t begin(size_t total) const { return offset < total ? offset : total; }
  size_t end(size_t total) const { return offset + size < total ? offset + size : total; }
};

// The page `request` (which has page_size and page_token fields) asks for.
Result<Page> ReadPage(const google::protobuf::Message& request);

// The token for the page after `page`, when `total` results exist; empty on the last page.
std::string NextPageToken(const google::protobuf::Message& request, const Page& page, size_t total);

}  // namespace offhost::grpcapi
