// The parts of `offhost export` that decide before nbdkit runs: the listen address (never a
// wildcard) and where the plugin is found.
#include "offhost/proxy/nbd_export.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace offhost::proxy {
namespace {

TEST(NbdExport, ListenAddressIsHostAndPortOfOneNetwork) {
  std::string host, port;
  ASSERT_TRUE(ParseListenAddress("10.20.0.4:10809", &host, &port).ok());
  EXPECT_EQ(host, "10.20.0.4");
  EXPECT_EQ(port, "10809");
  ASSERT_TRUE(ParseListenAddress("[fd00::4]:10809", &host, &port).ok());
  EXPECT_EQ(host, "fd00::4");
  EXPECT_EQ(port, "10809");
  for (const char* wildcard : {"0.0.0.0:10809", "[::]:10809", "*:10809", ":10809"}) {
    Status st = ParseListenAddress(wildcard, &host, &port);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << wildcard;
    EXPECT_NE(st.message().find("every network"), std::string::npos) << st.message();
  }
  for (const char* bad : {"10.20.0.4", "10.20.0.4:", "10.20.0.4:nbd"}) {
    EXPECT_EQ(ParseListenAddress(bad, &host, &port).code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(NbdExport, PluginPathFromTheEnvironmentMustExist) {
  ::setenv("OFFHOST_NBDKIT_PLUGIN", "/nonexistent/nbdkit-offhost-plugin.so", 1);
  auto missing = FindNbdkitPlugin();
  ::unsetenv("OFFHOST_NBDKIT_PLUGIN");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("/nonexistent/nbdkit-offhost-plugin.so"),
            std::string::npos);
}

TEST(NbdExport, StartRefusesNeitherOrBothEndpoints) {
  ExportOptions o;
  o.datastore = "/nonexistent";
  o.vm = "web01";
  o.snapshot = "latest";
  EXPECT_EQ(NbdExport::Start(o).status().code(), StatusCode::kInvalidArgument);
  o.socket = "/tmp/x.sock";
  o.listen = "127.0.0.1:10809";
  EXPECT_EQ(NbdExport::Start(o).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace offhost::proxy
