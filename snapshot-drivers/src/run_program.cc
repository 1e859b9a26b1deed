#include "run_program.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

namespace offhost::snapshot_drivers {
namespace {

constexpr int kExecFailed = 127;

// fork + exec with stdout on `out_fd` (-1: /dev/null) and stderr on `err_fd`.
Result<pid_t> Spawn(const std::vector<std::string>& argv, int out_fd, int err_fd) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const std::string exec_failed = "cannot run " + argv[0] + "\n";
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid == 0) {  // only async-signal-safe calls until exec
    // offhostd blocks SIGTERM/SIGINT in every thread to take them in one place; a blocked mask
    // survives exec, and the helper would then ignore our SIGTERM and its parent-death signal.
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(kExecFailed);  // the proxy died before prctl took effect
    int null_fd = ::open("/dev/null", O_RDWR);
    ::dup2(null_fd, STDIN_FILENO);
    ::dup2(out_fd >= 0 ? out_fd : null_fd, STDOUT_FILENO);
    ::dup2(err_fd, STDERR_FILENO);
    ::close_range(3, ~0U, 0);
    ::execvp(args[0], args.data());
    ssize_t ignored = ::write(STDERR_FILENO, exec_failed.data(), exec_failed.size());
    (void)ignored;
    ::_exit(kExecFailed);
  }
  if (pid < 0) return Status::FromErrno("fork for " + argv[0], errno);
  return pid;
}

std::string ReadAll(int fd) {
  std::string out;
  char buf[8192];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace

Result<std::string> RunProgramOutput(const std::vector<std::string>& argv) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return Status::FromErrno("pipe", errno);
  // stderr in memory: reading two pipes in turn could deadlock on a chatty program.
  int err_fd = ::memfd_create("stderr", MFD_CLOEXEC);
  if (err_fd < 0) {
    int e = errno;
    ::close(pipefd[0]);
    ::close(pipefd[1]);
    return Status::FromErrno("memfd_create", e);
  }
  auto pid = Spawn(argv, pipefd[1], err_fd);
  ::close(pipefd[1]);
  std::string out = pid.ok() ? ReadAll(pipefd[0]) : "";
  ::close(pipefd[0]);
  int code = pid.ok() ? WaitProgram(*pid) : -1;
  ::lseek(err_fd, 0, SEEK_SET);
  std::string err = ReadAll(err_fd);
  ::close(err_fd);
  if (!pid.ok()) return pid.status();
  while (!err.empty() && err.back() == '\n') err.pop_back();
  if (code == kExecFailed && err.starts_with("cannot run")) {
    return Status::Unavailable(err + "; is it installed?");
  }
  if (code != 0) return Status::IOError(argv[0] + " failed: " + err);
  return out;
}

Status RunProgram(const std::vector<std::string>& argv) { return RunProgramOutput(argv).status(); }

Result<pid_t> StartProgram(const std::vector<std::string>& argv, const std::string& log_path) {
  int err_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (err_fd < 0) return Status::FromErrno("create " + log_path, errno);
  auto pid = Spawn(argv, -1, err_fd);
  ::close(err_fd);
  return pid;
}

int WaitProgram(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace offhost::snapshot_drivers
