// PEM files of the TLS setup (server certificate and key, client CA), read with OpenSSL so that
// a wrong file is reported at start, naming it, rather than as an opaque gRPC failure.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "offhost/common/status.h"

namespace offhost::daemon {

struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

// The whole file, or IOError "read PATH: <strerror>".
Result<std::string> ReadFileText(const std::string& path);

// Every certificate in `pem`, in order; InvalidArgument when there is none or one is damaged.
Result<std::vector<X509Ptr>> ParseCertificates(std::string_view pem);

// OK when `key_pem` holds a private key and it belongs to `cert`.
Status CheckPrivateKey(std::string_view key_pem, X509* cert);

// The certificate's subject, one line ("CN=backup01,O=Example").
std::string SubjectName(X509* cert);

// The most recent OpenSSL error as text (and clears the queue).
std::string OpenSslError();

}  // namespace offhost::daemon
