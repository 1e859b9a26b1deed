// Who may call what. Every offhost.v1 RPC except health and reflection needs a bearer token
// (`authorization: Bearer TOKEN`); the token's SHA-256 is compared in constant time against the
// configured hashes and gives the caller's name and role.
//
// A client certificate (mTLS, when [server.tls] client_ca is set) authenticates the
// connection, not the caller: it is required on TLS listeners in addition to the token, and
// the role always comes from the token. gRPC only asks for the certificate during the
// handshake; it is verified here, per call, against client_ca and the current time, so an
// expired or untrusted certificate is answered with UNAUTHENTICATED and a reason the client
// can show, not with a handshake failure it cannot explain.
//
// Callers on the unix socket need a token too, for now (docs/api.md plans a SO_PEERCRED
// mapping of local users to roles).
#pragma once

#include <openssl/x509_vfy.h>

#include <memory>
#include <vector>

#include "config.h"
#include "offhost/grpc/service_context.h"

namespace offhost::daemon {

struct X509StoreFree {
  void operator()(X509_STORE* store) const { X509_STORE_free(store); }
};
using X509StorePtr = std::unique_ptr<X509_STORE, X509StoreFree>;

class TokenAuthorizer : public grpcapi::Authorizer {
 public:
  // `client_ca_pem` empty: no client certificates are checked.
  static Result<std::unique_ptr<TokenAuthorizer>> Create(std::vector<TokenConfig> tokens,
                                                         const std::string& client_ca_pem);

  grpc::Status Check(grpc::ServerContext* context, grpcapi::Role needed,
                     grpcapi::Principal* caller) override;

 private:
  TokenAuthorizer(std::vector<TokenConfig> tokens, X509StorePtr client_ca)
      : tokens_(std::move(tokens)), client_ca_(std::move(client_ca)) {}

  // UNAUTHENTICATED unless the connection's client certificate is valid (TLS with client_ca);
  // then fills the certificate fields of `caller`.
  grpc::Status CheckClientCertificate(grpc::ServerContext* context, grpcapi::Principal* caller);
  // The configured token the call carries, or UNAUTHENTICATED.
  grpc::Status FindToken(grpc::ServerContext* context, const TokenConfig** token);

  std::vector<TokenConfig> tokens_;
  X509StorePtr client_ca_;  // null without client_ca
};

// Lower-case hex SHA-256 of `token`, as [[token]] sha256 stores it.
std::string HashToken(std::string_view token);

}  // namespace offhost::daemon
