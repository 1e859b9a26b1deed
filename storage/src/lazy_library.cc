#include "offhost/common/lazy_library.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <thread>

namespace offhost {

void* LazyLibrary::Handle() {
  std::call_once(once_, [this] {
    handle_ = ::dlopen(soname_, RTLD_NOW | RTLD_LOCAL);
    if (!handle_) {
      std::fprintf(stderr, "offhost: cannot load %s (%s): %s; install the package %s\n", what_,
                   soname_, ::dlerror(), package_);
      std::abort();
    }
  });
  return handle_;
}

void* LazyLibrary::Symbol(const char* name) {
  void* sym = ::dlsym(Handle(), name);
  if (!sym) {
    std::fprintf(stderr,
                 "offhost: %s has no %s: it is not the version offhost was built with; "
                 "reinstall the package %s and offhost\n",
                 soname_, name, package_);
    std::abort();
  }
  return sym;
}

void LazyLibrary::Preload() {
  std::thread([this] { Handle(); }).detach();
}

}  // namespace offhost
