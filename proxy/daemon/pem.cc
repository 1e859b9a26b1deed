#include "pem.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include <cerrno>
#include <fstream>
#include <sstream>

namespace offhost::daemon {
namespace {

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

BioPtr MemoryBio(std::string_view data) {
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

}  // namespace

std::string OpenSslError() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return buf;
}

Result<std::string> ReadFileText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::FromErrno("read " + path, errno);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

Result<std::vector<X509Ptr>> ParseCertificates(std::string_view pem) {
  BioPtr bio = MemoryBio(pem);
  std::vector<X509Ptr> certs;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certs.emplace_back(cert);
  }
  // The loop ends on the end of the data (PEM_R_NO_START_LINE) or on a damaged block.
  unsigned long err = ERR_peek_last_error();
  bool clean_end = ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE;
  if (err != 0 && !clean_end) {
    return Status::InvalidArgument("damaged PEM certificate: " + OpenSslError());
  }
  ERR_clear_error();
  if (certs.empty()) {
    return Status::InvalidArgument("no PEM certificate (-----BEGIN CERTIFICATE-----) in it");
  }
  return certs;
}

Status CheckPrivateKey(std::string_view key_pem, X509* cert) {
  BioPtr bio = MemoryBio(key_pem);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (key == nullptr) {
    return Status::InvalidArgument("no unencrypted PEM private key in it: " + OpenSslError());
  }
  bool matches = X509_check_private_key(cert, key) == 1;
  EVP_PKEY_free(key);
  ERR_clear_error();
  if (!matches) {
    return Status::InvalidArgument("it is not the key of the certificate " + SubjectName(cert));
  }
  return Status::OK();
}

std::string SubjectName(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

}  // namespace offhost::daemon
