// A shared library loaded when it is first needed, or ahead of time on a thread of its own,
// rather than when a program starts: for dependencies that take milliseconds to load and that
// most commands never call (libtsk, libvirt). The functions offhost calls are defined by the
// user of one (mount/src/tsk_library.cc, snapshot-drivers/libvirt/libvirt_library.cc), each
// resolving the real one on first use.
#pragma once

#include <mutex>

namespace offhost {

class LazyLibrary {
 public:
  // `soname`: what dlopen loads; `what`: what it is for people ("The Sleuth Kit, which reads
  // guest file systems"); `package`: the Debian package that installs it.
  constexpr LazyLibrary(const char* soname, const char* what, const char* package)
      : soname_(soname), what_(what), package_(package) {}

  // Loads it once; a program that cannot has no way on, so this says what to install and
  // aborts (the functions defined in its place cannot return a Status).
  void* Handle();
  // The address of `name`, or the same end when this library lacks it.
  void* Symbol(const char* name);
  // `declared` (the header's declaration) gives the type only.
  template <typename Fn>
  Fn Resolve(Fn /*declared*/, const char* name) {
    return reinterpret_cast<Fn>(Symbol(name));
  }
  // Loads it on a thread of its own, for a caller that waits for something else meanwhile.
  void Preload();

 private:
  const char* soname_;
  const char* what_;
  const char* package_;
  std::once_flag once_;
  void* handle_ = nullptr;
};

}  // namespace offhost

// The body of a function defined in place of the library's `name`: the real one, resolved once
// (thread-safe: a function-local static), called with the arguments that follow, e.g.
// `int f(int a) { OFFHOST_LAZY_CALL(lib, f)(a); }`.
#define OFFHOST_LAZY_CALL(library, name)                      \
  static const auto real = (library).Resolve(&::name, #name); \
  return real
