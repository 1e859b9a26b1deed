#include "pagination.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <memory>

namespace offhost::grpcapi {
namespace {

constexpr int32_t kDefaultPageSize = 100;
constexpr int32_t kMaxPageSize = 1000;

const google::protobuf::FieldDescriptor* Field(const google::protobuf::Message& m,
                                               const char* name) {
  return m.GetDescriptor()->FindFieldByName(name);
}

// FNV-1a of the request without its paging fields: what a token is bound to.
uint64_t QueryHash(const google::protobuf::Message& request) {
  std::unique_ptr<google::protobuf::Message> query(request.New());
  query->CopyFrom(request);
  const auto* refl = query->GetReflection();
  refl->ClearField(query.get(), Field(*query, "page_size"));
  refl->ClearField(query.get(), Field(*query, "page_token"));
  std::string bytes;
  google::protobuf::io::StringOutputStream out(&bytes);
  google::protobuf::io::CodedOutputStream coded(&out);
  coded.SetSerializationDeterministic(true);
  query->SerializeToCodedStream(&coded);
  coded.Trim();
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
  return h;
}

}  // namespace

Result<Page> ReadPage(const google::protobuf::Message& request) {
  const auto* refl = request.GetReflection();
  int32_t size = refl->GetInt32(request, Field(request, "page_size"));
  if (size < 0) return Status::InvalidArgument("page_size must not be negative");
  Page page;
  page.size = static_cast<size_t>(size == 0 ? kDefaultPageSize : std::min(size, kMaxPageSize));
  std::string token = refl->GetString(request, Field(request, "page_token"));
  if (token.empty()) return page;
  uint64_t offset = 0, hash = 0;
  int used = 0;
  if (std::sscanf(token.c_str(), "%" SCNu64 ".%16" SCNx64 "%n", &offset, &hash, &used) != 2 ||
      static_cast<size_t>(used) != token.size() || hash != QueryHash(request)) {
    return Status::InvalidArgument(
        "page_token does not belong to this query: send the other fields unchanged with it, "
        "or leave it empty for the first page");
  }
  page.offset = offset;
  return page;
}

std::string NextPageToken(const google::protobuf::Message& request, const Page& page,
                          size_t total) {
  size_t next = page.offset + page.size;
  if (next >= total) return "";
  char token[64];
  std::snprintf(token, sizeof token, "%zu.%016" PRIx64, next, QueryHash(request));
  return token;
}

}  // namespace offhost::grpcapi
