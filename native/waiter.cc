// flockWait(): the blocking flock(2), on a waiter thread of the addon's own, that a private signal
// can cancel. The lockfile rules and the non-blocking flock() are in lockfile.cc.
//
// The wait never runs on libuv's 4-thread pool, where a fifth waiter would stall every fs call and
// process exit would join a thread stuck in the kernel: see docs/native.md#thread-model.
//
// Cancelling a thread that sits in flock(2): libuv installs its signal handlers with SA_RESTART,
// so nothing on the JS side can interrupt the call. We send the waiting thread a private real-time
// signal whose handler has no SA_RESTART (as util-linux `flock -w` does with SIGALRM). The waiter
// checks its cancel flag and then enters flock(2); a signal landing between the two would be
// lost, so for that stretch (the "window") the handler siglongjmps out instead of returning. A
// cancel is therefore seen whenever it lands: before the check, inside the window, or during the
// system call — no polling, no retries. See docs/native.md#cancellation-the-private-signal.
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "errors.h"
#include "native.h"

namespace ccci {

namespace {

// Below SIGRTMAX so that libraries counting down from the top do not collide with us.
int CancelSignal() { return SIGRTMAX - 3; }

// A waiter only sits in flock(2) and hands one pointer back: a small stack is plenty.
constexpr size_t kWaiterStackBytes = 64 * 1024;
// Idle waiter threads kept for the next wait; a burst of waits beyond this leaves threads that exit.
constexpr size_t kMaxParkedWaiters = 16;

struct WaitState {
  // The waiter's own duplicate of the caller's fd: the same open file description, hence the same
  // lock, but a number nobody else can close or reuse while the wait and its restore run.
  int fd = -1;
  int op = 0;
  int prior = 0;  // what the open file description held before the wait: 0, LOCK_SH or LOCK_EX

  std::mutex mu;
  pid_t tid = 0;      // set by the waiter (under mu) once it can take the cancel signal
  bool done = false;  // set by the waiter (under mu) once it has blocked it again: stop sending
  std::atomic<bool> cancelled{false};

  // Touched by the waiter thread and its own signal handler only.
  volatile sig_atomic_t inWindow = 0;
  sigjmp_buf jump;

  // Outcome, written by the waiter before it hands the state to the JS thread.
  bool granted = false;
  int err = 0;
  bool lost = false;  // a cancelled conversion could not take the prior lock back without blocking

  Napi::Promise::Deferred deferred;

  explicit WaitState(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

using StatePtr = std::shared_ptr<WaitState>;

// How waiter threads hand results to the JS thread of one environment (the main thread, or a
// worker): a list of finished waits and a uv_async_t on that thread's loop, which a waiter pokes
// with uv_async_send. That is the one hop a wake costs. A thread-safe function per wait (the first
// version) added a queue, a second send on its release, and a handle to make and close per wait: a
// whole wait on a busy lock, from the call to the settled promise, took ~49 µs against ~44 now.
// See docs/native.md#thread-model.
struct Waker {
  uv_async_t async;
  napi_env env;
  napi_async_context context;  // the callback scope a settlement runs in (async hooks, microtasks)
  size_t pending = 0;          // JS thread only: waits not settled yet; the handle is ref'd while > 0

  std::mutex mu;
  std::vector<StatePtr> inFlight;  // waits whose waiter may still post here
  std::vector<StatePtr> posted;    // finished waits for the JS thread to settle
  bool closing = false;            // the environment is going away: waiters post nothing more
  std::condition_variable idle;    // signalled when inFlight empties while closing

  napi_async_cleanup_hook_handle hook = nullptr;
};

// One wait handed to a waiter thread.
struct Job {
  StatePtr state;
  Waker* waker;
};

void Settle(napi_env env, WaitState* s);

// Drops `s` from the waits that may post to `w`. Called under w->mu.
void Forget(Waker* w, const WaitState* s) {
  for (auto it = w->inFlight.begin(); it != w->inFlight.end(); ++it) {
    if (it->get() == s) {
      w->inFlight.erase(it);
      break;
    }
  }
  if (w->closing && w->inFlight.empty()) w->idle.notify_all();
}

void OnCancelSignal(int, siginfo_t* info, void*) {
  // Only our own queued signal carries a WaitState; anything else (kill(1), sigqueue from another
  // process) is ignored.
  if (info->si_code != SI_QUEUE || info->si_pid != getpid()) return;
  auto* state = static_cast<WaitState*>(info->si_value.sival_ptr);
  if (state != nullptr && state->inWindow) siglongjmp(state->jump, 1);
}

// Installs the handler once per process; afterwards checks, on each wait that needs a thread,
// that nobody replaced it (a wait whose cancel could never land would hang its caller). See
// docs/native.md#known-traps.
bool CancelHandlerInPlace() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = OnCancelSignal;
    sa.sa_flags = SA_SIGINFO;  // deliberately no SA_RESTART: the wait must come back with EINTR
    sigfillset(&sa.sa_mask);
    sigaction(CancelSignal(), &sa, nullptr);
  });
  struct sigaction current;
  return sigaction(CancelSignal(), nullptr, &current) == 0 && (current.sa_flags & SA_SIGINFO) != 0 &&
         current.sa_sigaction == OnCancelSignal;
}

// The flock lock this open file description holds, from /proc/self/fdinfo (the kernel lists
// there the locks whose file is this one). Needed because the kernel converts a lock by dropping
// the old one before waiting for the new one: a cancelled conversion must take the old one back.
// Without /proc this reads as "none", and a cancelled conversion then leaves the fd unlocked.
// See docs/native.md#known-traps.
int HeldFlockType(int fd) {
  char path[48];
  std::snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
  int info = ::open(path, O_RDONLY | O_CLOEXEC);
  if (info < 0) return 0;
  char buf[4096];
  size_t used = 0;
  ssize_t n;
  while (used < sizeof buf - 1 && (n = ::read(info, buf + used, sizeof buf - 1 - used)) > 0) used += n;
  ::close(info);
  buf[used] = '\0';
  // e.g. "lock:\t1: FLOCK  ADVISORY  WRITE 1234 00:2e:5678 0 EOF"
  char* save = nullptr;
  for (char* line = strtok_r(buf, "\n", &save); line != nullptr; line = strtok_r(nullptr, "\n", &save)) {
    if (std::strncmp(line, "lock:", 5) != 0 || std::strstr(line, " FLOCK ") == nullptr) continue;
    if (std::strstr(line, " WRITE ") != nullptr) return LOCK_EX;
    if (std::strstr(line, " READ ") != nullptr) return LOCK_SH;
  }
  return 0;
}

// Puts the open file description back as it was before a wait. Dropping a lock never blocks;
// taking back one a conversion dropped is only tried without blocking, because whoever took the
// lock meanwhile may hold it for hours. Returns false when that lock is lost.
bool RestorePrior(int fd, int prior) {
  if (prior != 0) return ::flock(fd, prior | LOCK_NB) == 0;
  ::flock(fd, LOCK_UN);
  return true;
}

// Runs one wait on a waiter thread, which has every signal blocked between waits.
void RunWait(Job& job) {
  StatePtr state = job.state;
  WaitState* s = state.get();

  // Only the cancel signal may reach this thread (process-directed signals keep going to the JS
  // thread), and only while it runs a wait.
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
    std::atomic_signal_fence(std::memory_order_seq_cst);  // in the window before the flag is read
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

  pthread_sigmask(SIG_BLOCK, &cancelSet, nullptr);
  {
    std::lock_guard<std::mutex> lock(s->mu);
    s->done = true;  // no cancel signal is sent for this wait from here on
  }

  if (s->cancelled.load() && s->err == 0) {
    // Whether or not the kernel granted the lock as the cancel landed, leave the fd as it was.
    s->lost = !RestorePrior(s->fd, s->prior);
    s->granted = false;
  }
  ::close(s->fd);

  // The waker's last use by this thread: once inFlight no longer holds the wait, the environment
  // may delete it (OnEnvCleanup).
  Waker* w = job.waker;
  {
    std::lock_guard<std::mutex> lock(w->mu);
    if (!w->closing) {
      w->posted.push_back(state);
      uv_async_send(&w->async);
    }
    Forget(w, s);
  }

  // A cancel signal sent just before `done` may still be pending. Consume it now: delivered
  // during the thread's next wait, it would carry a pointer to this finished one.
  const struct timespec now = {0, 0};
  while (sigtimedwait(&cancelSet, nullptr, &now) > 0) {
  }
}

// Waiter threads are kept for reuse. Creating one per wait costs a clone(2), and a thread that
// exits right after handing a grant to the JS thread competes with it for the CPU just as it
// should be waking up. See docs/native.md#thread-model.
struct Waiter {
  std::mutex mu;
  std::condition_variable cv;
  std::unique_ptr<Job> job;  // the wait to run; null while parked
};

// Never destroyed: at exit() a waiter granted just then may still park itself.
std::mutex& parkedMu = *new std::mutex;
std::vector<Waiter*>& parked = *new std::vector<Waiter*>;

void* WaiterMain(void* arg) {
  std::unique_ptr<Waiter> self(static_cast<Waiter*>(arg));
  for (;;) {
    std::unique_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(self->mu);
      self->cv.wait(lock, [&] { return self->job != nullptr; });
      job = std::move(self->job);
    }
    RunWait(*job);
    job.reset();
    std::lock_guard<std::mutex> lock(parkedMu);
    if (parked.size() >= kMaxParkedWaiters) return nullptr;
    parked.push_back(self.get());
  }
}

// Hands `job` to a parked waiter, or to a new one. Returns 0, or pthread_create's error (the job
// is then still the caller's).
int Dispatch(std::unique_ptr<Job>& job) {
  Waiter* waiter = nullptr;
  {
    std::lock_guard<std::mutex> lock(parkedMu);
    if (!parked.empty()) {
      waiter = parked.back();
      parked.pop_back();
    }
  }
  if (waiter != nullptr) {
    {
      std::lock_guard<std::mutex> lock(waiter->mu);
      waiter->job = std::move(job);
    }
    waiter->cv.notify_one();
    return 0;
  }

  auto fresh = std::make_unique<Waiter>();
  fresh->job = std::move(job);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, kWaiterStackBytes);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);  // the new thread inherits this mask
  pthread_t thread;
  int rc = pthread_create(&thread, &attr, WaiterMain, fresh.get());
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    job = std::move(fresh->job);
    return rc;
  }
  fresh.release();  // the thread owns it now
  return 0;
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

// On the JS thread: settles the waits the waiters posted, in one callback scope, so the promise
// reactions (the awaiting code) run as it closes.
void OnWake(uv_async_t* async) {
  Waker* w = static_cast<Waker*>(async->data);
  std::vector<StatePtr> posted;
  {
    std::lock_guard<std::mutex> lock(w->mu);
    posted.swap(w->posted);
  }
  if (posted.empty()) return;
  napi_handle_scope handles;
  napi_callback_scope scope;
  napi_value global;
  napi_open_handle_scope(w->env, &handles);
  napi_get_global(w->env, &global);  // required, though deprecated and ignored: napi_async_init took it
  napi_open_callback_scope(w->env, global, w->context, &scope);
  for (const StatePtr& state : posted) Settle(w->env, state.get());
  w->pending -= posted.size();
  if (w->pending == 0) uv_unref(reinterpret_cast<uv_handle_t*>(&w->async));
  napi_close_callback_scope(w->env, scope);
  napi_close_handle_scope(w->env, handles);
}

// The environment is being torn down (a worker terminated, say) with waits maybe still pending:
// cancel them and wait the microseconds it takes their waiters to stop touching the waker, then
// close its handle. Their promises are left unsettled: nobody is left to tell. At process.exit()
// this does not run at all, and exit takes the waiter threads down with it.
void OnEnvCleanup(napi_async_cleanup_hook_handle hook, void* arg) {
  Waker* w = static_cast<Waker*>(arg);
  w->hook = hook;
  {
    std::unique_lock<std::mutex> lock(w->mu);
    w->closing = true;
    for (const StatePtr& state : w->inFlight) Cancel(state);
    w->idle.wait(lock, [w] { return w->inFlight.empty(); });
  }
  napi_async_destroy(w->env, w->context);
  uv_close(reinterpret_cast<uv_handle_t*>(&w->async), [](uv_handle_t* handle) {
    Waker* w = static_cast<Waker*>(handle->data);
    napi_remove_async_cleanup_hook(w->hook);
    delete w;
  });
}

// This environment's waker, made on its first wait that needs a thread. Returns 0, or the errno
// uv_async_init failed with.
int WakerFor(napi_env env, Waker** out) {
  void* data = nullptr;
  napi_get_instance_data(env, &data);
  *out = static_cast<Waker*>(data);
  if (data != nullptr) return 0;
  auto w = std::make_unique<Waker>();
  w->env = env;
  uv_loop_t* loop = nullptr;
  napi_value name;
  napi_get_uv_event_loop(env, &loop);
  int rc = uv_async_init(loop, &w->async, OnWake);
  if (rc != 0) return -rc;
  w->async.data = w.get();
  uv_unref(reinterpret_cast<uv_handle_t*>(&w->async));
  napi_create_string_utf8(env, "cc-ci:flockWait", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, nullptr, name, &w->context);
  napi_add_async_cleanup_hook(env, OnEnvCleanup, w.get(), nullptr);
  napi_set_instance_data(env, w.get(), nullptr, nullptr);
  *out = w.release();
  return 0;
}

void Settle(napi_env env, WaitState* s) {
  if (s->granted) {
    s->deferred.Resolve(Napi::Env(env).Undefined());
  } else if (s->err != 0) {
    s->deferred.Reject(ErrnoError(env, s->err, "flock").Value());
  } else if (s->lost) {
    s->deferred.Reject(CodedError(env, "ERR_CCCI_LOCK_LOST", "flock",
                                  "the wait was cancelled, but the lock this fd held before it could not be taken "
                                  "back: flock(2) converts by unlocking first, and another process locked the file "
                                  "exclusively meanwhile")
                           .Value());
  } else {
    s->deferred.Reject(ErrnoError(env, ECANCELED, "flock").Value());
  }
}

// Settles a wait that never got a thread: the conversion attempt may already have dropped a lock
// the fd held, so put it back before reporting `err` from `syscall`.
void FailBeforeThread(napi_env env, WaitState* s, int fd, int err, const char* syscall) {
  RestorePrior(fd, s->prior);
  s->deferred.Reject(ErrnoError(env, err, syscall).Value());
}

// flockWait(fd, op) -> [promise, cancel]. Tries once without blocking on the JS thread; only a busy
// lock costs a thread. cancel() is idempotent and safe after the wait has settled.
napi_value FlockWait(napi_env env, napi_callback_info info) {
  Args<2> args(env, info);
  int fd, op;
  if (!FdArg(env, args[0], &fd) || !OpArg(env, args[1], &op)) return nullptr;
  op &= ~LOCK_NB;
  if (op == LOCK_UN) {
    return ThrowInvalidValue(env, "operation", args[1], "must be LOCK_SH or LOCK_EX: flockWait() waits for a lock");
  }

  Napi::Env e(env);
  auto state = std::make_shared<WaitState>(e);
  state->op = op;
  state->prior = HeldFlockType(fd);

  Napi::Array result = Napi::Array::New(e, 2);
  result.Set(0u, state->deferred.Promise());
  result.Set(1u, Napi::Function::New(
                     e,
                     [state](const Napi::CallbackInfo& cb) {
                       Cancel(state);
                       return cb.Env().Undefined();
                     },
                     "cancel"));

  if (::flock(fd, op | LOCK_NB) == 0) {
    state->deferred.Resolve(e.Undefined());
    return result;
  }
  if (errno != EWOULDBLOCK) {
    state->deferred.Reject(ErrnoError(env, errno, "flock").Value());  // nothing changed: no restore
    return result;
  }
  if (!CancelHandlerInPlace()) {
    RestorePrior(fd, state->prior);
    state->deferred.Reject(CodedError(env, "ERR_CCCI_CANCEL_SIGNAL_TAKEN", "flock",
                                      "another handler replaced the one for the wait's cancel signal (" +
                                          std::to_string(CancelSignal()) + "): a wait could not be cancelled")
                               .Value());
    return result;
  }
  state->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (state->fd < 0) {
    FailBeforeThread(env, state.get(), fd, errno, "fcntl");
    return result;
  }

  Waker* w;
  int rc = WakerFor(env, &w);
  if (rc != 0) {
    ::close(state->fd);
    FailBeforeThread(env, state.get(), fd, rc, "uv_async_init");
    return result;
  }
  {
    std::lock_guard<std::mutex> lock(w->mu);
    w->inFlight.push_back(state);
  }
  auto job = std::make_unique<Job>();
  job->state = state;
  job->waker = w;
  rc = Dispatch(job);
  if (rc != 0) {
    {
      std::lock_guard<std::mutex> lock(w->mu);
      Forget(w, state.get());
    }
    ::close(state->fd);
    FailBeforeThread(env, state.get(), fd, rc, "pthread_create");
    return result;
  }
  if (w->pending++ == 0) uv_ref(reinterpret_cast<uv_handle_t*>(&w->async));
  return result;
}

}  // namespace

void InitWaiter(Napi::Env env, Napi::Object exports) {
  ExportFunction(env, exports, "flockWait", FlockWait);
  exports.Set("WAIT_CANCEL_SIGNAL", Napi::Number::New(env, CancelSignal()));
}

}  // namespace ccci
