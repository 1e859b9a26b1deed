#include "authorizer.h"

#include <grpc/grpc_security_constants.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <strings.h>

#include <ctime>
#include <map>

#include "log.h"
#include "offhost/v1/common.pb.h"
#include "pem.h"

namespace offhost::daemon {
namespace {

using grpcapi::Role;

std::array<uint8_t, 32> Sha256(std::string_view data) {
  std::array<uint8_t, 32> digest{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest.data(), &len, EVP_sha256(), nullptr);
  return digest;
}

std::string ToString(grpc::string_ref ref) { return std::string(ref.data(), ref.size()); }

// The one value of an auth-context property, or "" when it has none.
std::string Property(const grpc::AuthContext& auth, const char* name) {
  std::vector<grpc::string_ref> values = auth.FindPropertyValues(name);
  return values.empty() ? "" : ToString(values.front());
}

const char* CodeName(grpc::StatusCode code) {
  return code == grpc::StatusCode::PERMISSION_DENIED ? "PERMISSION_DENIED" : "UNAUTHENTICATED";
}

// Refuses the call: the status, the machine-readable offhost.v1.ErrorInfo in the trailing
// metadata docs/api.md promises, and a log line naming the peer.
grpc::Status Refuse(grpc::ServerContext* context, grpc::StatusCode code, const std::string& reason,
                    const std::string& message,
                    const std::map<std::string, std::string>& metadata = {}) {
  v1::ErrorInfo info;
  info.set_reason(reason);
  for (const auto& [key, value] : metadata) (*info.mutable_metadata())[key] = value;
  context->AddTrailingMetadata("offhost-error-bin", info.SerializeAsString());
  Log(LogLevel::kWarning, std::string("refused a call from ") + context->peer() + ": " +
                              CodeName(code) + " " + reason + ": " + message);
  return grpc::Status(code, message);
}

std::string NotAfter(X509* cert) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  ASN1_TIME_print(bio.get(), X509_get0_notAfter(cert));
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

// notAfter as unix seconds, for Principal::client_certificate_expires.
int64_t NotAfterUnix(X509* cert) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

// Verifies `leaf` (with the intermediates the client sent) against `store` for TLS client use.
// Returns the OpenSSL verdict, 0 when valid.
int VerifyCertificate(X509_STORE* store, X509* leaf, const std::vector<X509Ptr>& chain) {
  // The stack only borrows the certificates: freed without freeing them.
  auto free_stack = [](STACK_OF(X509) * stack) { sk_X509_free(stack); };
  std::unique_ptr<STACK_OF(X509), decltype(free_stack)> untrusted(sk_X509_new_null(), free_stack);
  for (const X509Ptr& cert : chain) sk_X509_push(untrusted.get(), cert.get());
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(X509_STORE_CTX_new(),
                                                                      X509_STORE_CTX_free);
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store, leaf, untrusted.get()) != 1) {
    return X509_V_ERR_OUT_OF_MEM;
  }
  X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_CLIENT);
  if (X509_verify_cert(ctx.get()) == 1) return X509_V_OK;
  int error = X509_STORE_CTX_get_error(ctx.get());
  return error == X509_V_OK ? X509_V_ERR_UNSPECIFIED : error;
}

}  // namespace

std::string HashToken(std::string_view token) {
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (uint8_t byte : Sha256(token)) {
    hex += kHex[byte >> 4];
    hex += kHex[byte & 0xf];
  }
  return hex;
}

Result<std::unique_ptr<TokenAuthorizer>> TokenAuthorizer::Create(std::vector<TokenConfig> tokens,
                                                                 const std::string& client_ca_pem) {
  X509StorePtr store;
  if (!client_ca_pem.empty()) {
    OFFHOST_ASSIGN_OR_RETURN(std::vector<X509Ptr> cas, ParseCertificates(client_ca_pem));
    store.reset(X509_STORE_new());
    for (const X509Ptr& ca : cas) {
      if (X509_STORE_add_cert(store.get(), ca.get()) != 1) {
        return Status::InvalidArgument("client CA " + SubjectName(ca.get()) + ": " +
                                       OpenSslError());
      }
    }
  }
  return std::unique_ptr<TokenAuthorizer>(new TokenAuthorizer(std::move(tokens), std::move(store)));
}

grpc::Status TokenAuthorizer::CheckClientCertificate(grpc::ServerContext* context,
                                                     grpcapi::Principal* caller) {
  std::shared_ptr<const grpc::AuthContext> auth = context->auth_context();
  // Only TLS listeners ask for certificates; the unix socket is plaintext by design.
  if (!client_ca_ || !auth ||
      Property(*auth, GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME) !=
          GRPC_SSL_TRANSPORT_SECURITY_TYPE) {
    return grpc::Status::OK;
  }
  std::string pem = Property(*auth, GRPC_X509_PEM_CERT_PROPERTY_NAME);
  if (pem.empty()) {
    return Refuse(context, grpc::StatusCode::UNAUTHENTICATED, "CLIENT_CERTIFICATE_REQUIRED",
                  "this address requires a client certificate signed by offhostd's client CA; "
                  "configure the client with its certificate and key");
  }
  Result<std::vector<X509Ptr>> leaf = ParseCertificates(pem);
  if (!leaf.ok()) {
    return Refuse(context, grpc::StatusCode::UNAUTHENTICATED, "CLIENT_CERTIFICATE_INVALID",
                  "the client certificate cannot be read: " + leaf.status().message());
  }
  // On the server side gRPC gives the chain without the leaf: the intermediates, if any.
  Result<std::vector<X509Ptr>> chain =
      ParseCertificates(Property(*auth, GRPC_X509_PEM_CERT_CHAIN_PROPERTY_NAME));
  std::vector<X509Ptr> intermediates;
  if (chain.ok()) intermediates = std::move(chain).value();
  X509* cert = leaf->front().get();
  int error = VerifyCertificate(client_ca_.get(), cert, intermediates);
  if (error == X509_V_OK) {
    caller->client_certificate_subject = SubjectName(cert);
    caller->client_certificate_expires = NotAfterUnix(cert);
    return grpc::Status::OK;
  }
  std::string message = "the client certificate " + SubjectName(cert) +
                        " is not valid: " + X509_verify_cert_error_string(error);
  if (error == X509_V_ERR_CERT_HAS_EXPIRED) {
    message += " (since " + NotAfter(cert) + "); renew it from the client CA";
  } else {
    message += "; use a certificate issued by the client CA offhostd is configured with";
  }
  return Refuse(context, grpc::StatusCode::UNAUTHENTICATED, "CLIENT_CERTIFICATE_INVALID", message);
}

grpc::Status TokenAuthorizer::FindToken(grpc::ServerContext* context, const TokenConfig** token) {
  const auto& metadata = context->client_metadata();
  auto it = metadata.find("authorization");
  std::string value = it == metadata.end() ? "" : ToString(it->second);
  static constexpr std::string_view kScheme = "bearer ";
  bool bearer = value.size() > kScheme.size() &&
                strncasecmp(value.c_str(), kScheme.data(), kScheme.size()) == 0;
  if (!bearer) {
    return Refuse(context, grpc::StatusCode::UNAUTHENTICATED, "TOKEN_MISSING",
                  "no bearer token: send the metadata 'authorization: Bearer TOKEN' with a "
                  "token from offhostd's configuration");
  }
  std::array<uint8_t, 32> digest = Sha256(std::string_view(value).substr(kScheme.size()));
  // Compare with every configured hash, without stopping early, so the time taken says
  // nothing about which token came close.
  *token = nullptr;
  for (const TokenConfig& candidate : tokens_) {
    if (CRYPTO_memcmp(candidate.sha256.data(), digest.data(), digest.size()) == 0) {
      *token = &candidate;
    }
  }
  if (*token == nullptr) {
    return Refuse(context, grpc::StatusCode::UNAUTHENTICATED, "TOKEN_INVALID",
                  "the bearer token is not one offhostd knows; check it, or ask the "
                  "administrator for one");
  }
  return grpc::Status::OK;
}

grpc::Status TokenAuthorizer::Check(grpc::ServerContext* context, Role needed,
                                    grpcapi::Principal* caller) {
  grpcapi::Principal principal;
  grpc::Status status = CheckClientCertificate(context, &principal);
  if (!status.ok()) return status;
  const TokenConfig* token = nullptr;
  status = FindToken(context, &token);
  if (!status.ok()) return status;
  if (token->role < needed) {
    return Refuse(context, grpc::StatusCode::PERMISSION_DENIED, "ROLE_TOO_LOW",
                  "token '" + token->name + "' has the role " + grpcapi::RoleName(token->role) +
                      "; this call needs " + grpcapi::RoleName(needed) + " or above",
                  {{"required_role", v1::Role_Name(static_cast<v1::Role>(needed))},
                   {"caller_role", v1::Role_Name(static_cast<v1::Role>(token->role))}});
  }
  principal.name = token->name;
  principal.role = token->role;
  principal.method = "token";
  principal.peer = context->peer();
  *caller = std::move(principal);
  return grpc::Status::OK;
}

}  // namespace offhost::daemon
