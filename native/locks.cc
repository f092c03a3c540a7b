// flock(2), the lockfile open, and the cancellable blocking wait.
//
// flock() is the janitor's hot path: one system call, `false` when the lock is busy, no exception
// built. flockWait() blocks on a thread of its own — never libuv's 4-thread pool, where a fifth
// waiter would stall every fs call and process exit would join a thread stuck in the kernel.
//
// Cancelling a thread that sits in flock(2): libuv installs its signal handlers with SA_RESTART,
// so nothing on the JS side can interrupt the call. We send the waiting thread a private real-time
// signal whose handler has no SA_RESTART (as util-linux `flock -w` does with SIGALRM). The signal
// carries the wait's state; while the thread is between its last cancel check and the end of the
// system call the handler siglongjmps out of the window, so a cancel landing just before the call
// cannot be lost — no polling, no retries.
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>

#include "errors.h"
#include "native.h"

namespace ccci {

namespace {

// Below SIGRTMAX so that libraries counting down from the top do not collide with us.
int CancelSignal() { return SIGRTMAX - 3; }

constexpr size_t kWaiterStackBytes = 64 * 1024;

struct WaitState {
  int fd;
  int op;
  int prior;  // what this open file description held before the wait: 0, LOCK_SH or LOCK_EX

  std::mutex mu;
  pid_t tid = 0;      // set by the waiter thread (under mu) once it can take the signal
  bool done = false;  // the waiter has blocked the signal (under mu): sending is no longer safe
  std::atomic<bool> cancelled{false};

  // Touched by the waiter thread and its own signal handler only.
  volatile sig_atomic_t inWindow = 0;
  sigjmp_buf jump;

  // Outcome, written by the waiter before it hands the state to the JS thread.
  bool granted = false;
  int err = 0;

  Napi::Promise::Deferred deferred;
  void* cleanupArg = nullptr;

  explicit WaitState(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

using StatePtr = std::shared_ptr<WaitState>;
void SettleOnJsThread(Napi::Env env, Napi::Function, std::nullptr_t*, StatePtr* data);
using Tsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, StatePtr, SettleOnJsThread>;

struct ThreadStart {
  StatePtr state;
  Tsfn tsfn;
};

void OnCancelSignal(int, siginfo_t* info, void*) {
  // Only our own queued signal carries a WaitState; anything else is ignored.
  if (info->si_code != SI_QUEUE || info->si_pid != getpid()) return;
  auto* state = static_cast<WaitState*>(info->si_value.sival_ptr);
  if (state != nullptr && state->inWindow) siglongjmp(state->jump, 1);
}

void InstallCancelHandler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = OnCancelSignal;
    sa.sa_flags = SA_SIGINFO;  // deliberately no SA_RESTART: the wait must come back with EINTR
    sigemptyset(&sa.sa_mask);
    sigaction(CancelSignal(), &sa, nullptr);
  });
}

// The lock type this open file description holds, read from /proc/self/fdinfo (the kernel lists
// the flock locks whose file is this one). Needed because converting a lock drops the old one
// before waiting for the new one; a cancelled conversion must put the old one back.
int HeldFlockType(int fd) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
  FILE* f = std::fopen(path, "re");
  if (f == nullptr) return 0;
  char line[256];
  int held = 0;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::strncmp(line, "lock:", 5) != 0 || std::strstr(line, "FLOCK") == nullptr) continue;
    if (std::strstr(line, "WRITE") != nullptr) held = LOCK_EX;
    else if (std::strstr(line, "READ") != nullptr) held = LOCK_SH;
  }
  std::fclose(f);
  return held;
}

void RetryingFlock(int fd, int op) {
  while (::flock(fd, op) != 0 && errno == EINTR) {
  }
}

void* WaitThread(void* arg) {
  std::unique_ptr<ThreadStart> start(static_cast<ThreadStart*>(arg));
  StatePtr state = start->state;
  WaitState* s = state.get();

  sigset_t cancelSet;
  sigemptyset(&cancelSet);
  sigaddset(&cancelSet, CancelSignal());
  pthread_sigmask(SIG_UNBLOCK, &cancelSet, nullptr);
  {
    std::lock_guard<std::mutex> lock(s->mu);
    s->tid = static_cast<pid_t>(syscall(SYS_gettid));
  }

  if (sigsetjmp(s->jump, 1) == 0) {
    s->inWindow = 1;
    while (!s->cancelled.load()) {
      if (::flock(s->fd, s->op) == 0) {
        s->granted = true;
        break;
      }
      if (errno != EINTR) {
        s->err = errno;
        break;
      }
    }
  }
  s->inWindow = 0;

  // From here on no cancel signal may arrive: a pending one dies with the thread.
  pthread_sigmask(SIG_BLOCK, &cancelSet, nullptr);
  {
    std::lock_guard<std::mutex> lock(s->mu);
    s->done = true;
  }

  if (s->cancelled.load() && s->err == 0) {
    // Whether or not the kernel granted the lock as the cancel landed, leave the fd as it was.
    RetryingFlock(s->fd, s->prior == 0 ? LOCK_UN : s->prior);
    s->granted = false;
  }

  auto* data = new StatePtr(state);
  if (start->tsfn.BlockingCall(data) != napi_ok) delete data;
  start->tsfn.Release();
  return nullptr;
}

void Cancel(const StatePtr& state) {
  if (state->cancelled.exchange(true)) return;
  std::lock_guard<std::mutex> lock(state->mu);
  if (state->done || state->tid == 0) return;  // the thread will see the flag by itself
  siginfo_t info;
  std::memset(&info, 0, sizeof info);
  info.si_signo = CancelSignal();
  info.si_code = SI_QUEUE;
  info.si_pid = getpid();
  info.si_uid = getuid();
  info.si_value.sival_ptr = state.get();
  syscall(SYS_rt_tgsigqueueinfo, getpid(), state->tid, CancelSignal(), &info);
}

// A worker (or the main environment) going away cancels its waits so their threads end.
void CancelOnEnvCleanup(void* arg) {
  auto* state = static_cast<StatePtr*>(arg);
  (*state)->cleanupArg = nullptr;
  Cancel(*state);
  delete state;
}

void SettleOnJsThread(Napi::Env env, Napi::Function, std::nullptr_t*, StatePtr* data) {
  std::unique_ptr<StatePtr> owned(data);
  WaitState* s = data->get();
  if (env == nullptr) return;
  if (s->cleanupArg != nullptr) {
    napi_remove_env_cleanup_hook(env, CancelOnEnvCleanup, s->cleanupArg);
    delete static_cast<StatePtr*>(s->cleanupArg);
    s->cleanupArg = nullptr;
  }
  Napi::HandleScope scope(env);
  if (s->granted) {
    s->deferred.Resolve(env.Undefined());
  } else if (s->err != 0) {
    s->deferred.Reject(ErrnoError(env, s->err, "flock").Value());
  } else {
    s->deferred.Reject(CodedError(env, UV_ECANCELED, "flock", "operation canceled").Value());
  }
}

bool CheckOp(const Napi::CallbackInfo& info, int* op) {
  int64_t value;
  if (!CheckInt(info, 1, "operation", 0, 0xff, &value)) return false;
  int base = static_cast<int>(value) & ~LOCK_NB;
  if (base != LOCK_SH && base != LOCK_EX && base != LOCK_UN) {
    ThrowArgError(info.Env(), "ERR_INVALID_ARG_VALUE",
                  "The \"operation\" argument must be LOCK_SH, LOCK_EX or LOCK_UN, optionally with LOCK_NB");
    return false;
  }
  *op = static_cast<int>(value);
  return true;
}

// flock(fd, op): true when granted, false when busy, throws on anything else.
Napi::Value Flock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd, op;
  if (!CheckFd(info, 0, &fd) || !CheckOp(info, &op)) return env.Undefined();
  if ((op & LOCK_UN) == 0 && (op & LOCK_NB) == 0) {
    ThrowArgError(env, "ERR_INVALID_ARG_VALUE",
                  "flock() refuses a blocking operation on the JS thread: add LOCK_NB or use flockWait()");
    return env.Undefined();
  }
  if (::flock(fd, op) == 0) return Napi::Boolean::New(env, true);
  if (errno == EWOULDBLOCK) return Napi::Boolean::New(env, false);
  ErrnoError(env, errno, "flock").ThrowAsJavaScriptException();
  return env.Undefined();
}

// flockWait(fd, op) -> [promise, cancel]. Tries once without blocking on this thread; only a busy
// lock costs a thread. cancel() is idempotent and safe after the wait has settled.
Napi::Value FlockWait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd, op;
  if (!CheckFd(info, 0, &fd) || !CheckOp(info, &op)) return env.Undefined();
  op &= ~LOCK_NB;
  if (op == LOCK_UN) {
    ThrowArgError(env, "ERR_INVALID_ARG_VALUE", "flockWait() waits for LOCK_SH or LOCK_EX, not LOCK_UN");
    return env.Undefined();
  }

  auto state = std::make_shared<WaitState>(env);
  state->fd = fd;
  state->op = op;
  state->prior = HeldFlockType(fd);

  Napi::Array result = Napi::Array::New(env, 2);
  result.Set(0u, state->deferred.Promise());
  result.Set(1u, Napi::Function::New(env, [state](const Napi::CallbackInfo& cb) {
               Cancel(state);
               return cb.Env().Undefined();
             }, "cancel"));

  if (::flock(fd, op | LOCK_NB) == 0) {
    state->deferred.Resolve(env.Undefined());
    return result;
  }
  if (errno != EWOULDBLOCK) {
    state->deferred.Reject(ErrnoError(env, errno, "flock").Value());
    return result;
  }

  InstallCancelHandler();
  auto start = std::make_unique<ThreadStart>();
  start->state = state;
  start->tsfn = Tsfn::New(env, "cc-ci:flockWait", 0, 1);
  state->cleanupArg = new StatePtr(state);
  napi_add_env_cleanup_hook(env, CancelOnEnvCleanup, state->cleanupArg);

  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, kWaiterStackBytes);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t thread;
  Tsfn tsfn = start->tsfn;
  int rc = pthread_create(&thread, &attr, WaitThread, start.get());
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    tsfn.Release();
    napi_remove_env_cleanup_hook(env, CancelOnEnvCleanup, state->cleanupArg);
    delete static_cast<StatePtr*>(state->cleanupArg);
    state->cleanupArg = nullptr;
    // The conversion attempt above may already have dropped a lock the fd held.
    if (state->prior != 0) RetryingFlock(fd, state->prior | LOCK_NB);
    state->deferred.Reject(ErrnoError(env, rc, "pthread_create").Value());
    return result;
  }
  start.release();
  return result;
}

// openLockFile(path, create): open without following a symlink or blocking on a FIFO, close-on-exec;
// create 0644 whatever the umask; refuse anything that is not a regular file owned by our euid.
Napi::Value OpenLockFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  if (!CheckString(info, 0, "path", &path)) return env.Undefined();
  bool create = info.Length() > 1 && info[1].ToBoolean().Value();
  const char* p = path.c_str();
  const int flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;

  int fd = -1;
  for (int attempt = 0; attempt < 8 && fd < 0; attempt++) {
    fd = ::open(p, flags);
    if (fd >= 0 || errno != ENOENT || !create) break;
    fd = ::open(p, flags | O_CREAT | O_EXCL, 0644);
    if (fd >= 0) {
      fchmod(fd, 0644);
      break;
    }
    if (errno != EEXIST) break;  // lost a create race: open the winner's file
  }
  if (fd < 0) {
    if (errno == ELOOP) {
      CodedError(env, UV_ELOOP, "open", "lockfile is a symbolic link (refusing to follow it)", p)
          .ThrowAsJavaScriptException();
    } else {
      ErrnoError(env, errno, "open", p).ThrowAsJavaScriptException();
    }
    return env.Undefined();
  }

  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    ErrnoError(env, err, "fstat", p).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    if (S_ISDIR(st.st_mode)) {
      CodedError(env, UV_EISDIR, "open", "lockfile is a directory", p).ThrowAsJavaScriptException();
    } else {
      CodedError(env, UV_EFTYPE, "open", "lockfile is not a regular file", p).ThrowAsJavaScriptException();
    }
    return env.Undefined();
  }
  if (st.st_uid != geteuid()) {
    ::close(fd);
    CodedError(env, UV_EPERM, "open",
               "lockfile is owned by uid " + std::to_string(st.st_uid) + ", not by this process (uid " +
                   std::to_string(geteuid()) + ")",
               p)
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, fd);
}

}  // namespace

void InitLocks(Napi::Env env, Napi::Object exports) {
  exports.Set("flock", Napi::Function::New(env, Flock, "flock"));
  exports.Set("flockWait", Napi::Function::New(env, FlockWait, "flockWait"));
  exports.Set("openLockFile", Napi::Function::New(env, OpenLockFile, "openLockFile"));
  exports.Set("LOCK_SH", Napi::Number::New(env, LOCK_SH));
  exports.Set("LOCK_EX", Napi::Number::New(env, LOCK_EX));
  exports.Set("LOCK_NB", Napi::Number::New(env, LOCK_NB));
  exports.Set("LOCK_UN", Napi::Number::New(env, LOCK_UN));
  exports.Set("WAIT_CANCEL_SIGNAL", Napi::Number::New(env, CancelSignal()));
}

}  // namespace ccci
