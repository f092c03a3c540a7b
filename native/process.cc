// Process lifetime primitives: parent-death signal, the hard-deadline alarm, the live parent pid,
// sessions and subreaping. Each is one system call; nothing is cached.
#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "errors.h"
#include "native.h"

namespace ccci {

namespace {

// prctl(PR_SET_PDEATHSIG): note it follows the *thread* that forked us, and exec of a set-uid
// binary clears it.
napi_value SetPdeathsig(napi_env env, napi_callback_info info) {
  Args<1> args(env, info);
  int64_t sig;
  if (!IntArg(env, args[0], "signal", 0, SIGRTMAX, &sig)) return nullptr;
  if (prctl(PR_SET_PDEATHSIG, static_cast<unsigned long>(sig), 0, 0, 0) != 0) return ThrowErrno(env, errno, "prctl");
  return Undefined(env);
}

napi_value GetPdeathsig(napi_env env, napi_callback_info) {
  int sig = 0;
  if (prctl(PR_GET_PDEATHSIG, &sig, 0, 0, 0) != 0) return ThrowErrno(env, errno, "prctl");
  return Number(env, sig);
}

napi_value SetChildSubreaper(napi_env env, napi_callback_info info) {
  Args<1> args(env, info);
  bool on;
  if (!BoolArg(env, args[0], "on", &on)) return nullptr;
  if (prctl(PR_SET_CHILD_SUBREAPER, on ? 1UL : 0UL, 0, 0, 0) != 0) return ThrowErrno(env, errno, "prctl");
  return Undefined(env);
}

napi_value GetChildSubreaper(napi_env env, napi_callback_info) {
  int on = 0;
  if (prctl(PR_GET_CHILD_SUBREAPER, &on, 0, 0, 0) != 0) return ThrowErrno(env, errno, "prctl");
  return Boolean(env, on != 0);
}

// alarm(seconds): returns the seconds left on the previous alarm; 0 cancels.
napi_value Alarm(napi_env env, napi_callback_info info) {
  Args<1> args(env, info);
  int64_t seconds;
  if (!IntArg(env, args[0], "seconds", 0, UINT32_MAX, &seconds)) return nullptr;
  return Number(env, alarm(static_cast<unsigned>(seconds)));
}

// Puts a signal back to its default action behind Node's back. The teardown backstop needs this:
// with any JS listener installed (ours, or signal-exit's, which execa loads) libuv keeps catching
// the signal, and a wedged event loop would never act on it.
int SetDefaultAction(int sig) {
  struct sigaction action = {};
  action.sa_handler = SIG_DFL;
  sigemptyset(&action.sa_mask);
  return sigaction(sig, &action, nullptr);
}

napi_value ResetSignalDefault(napi_env env, napi_callback_info info) {
  Args<1> args(env, info);
  int64_t sig;
  if (!IntArg(env, args[0], "signal", 1, SIGRTMAX, &sig)) return nullptr;
  if (SetDefaultAction(static_cast<int>(sig)) != 0) return ThrowErrno(env, errno, "sigaction");
  return Undefined(env);
}

// The teardown's kernel backstop in one call: SIGALRM back to its default action (as
// ResetSignalDefault), then alarm(seconds). It runs on the way from a signal to the first teardown
// step, where one call instead of two saves ~10 µs (docs/lifetime.md#the-teardown-is-bounded-too).
napi_value ArmAlarmBackstop(napi_env env, napi_callback_info info) {
  Args<1> args(env, info);
  int64_t seconds;
  if (!IntArg(env, args[0], "seconds", 1, UINT32_MAX, &seconds)) return nullptr;
  if (SetDefaultAction(SIGALRM) != 0) return ThrowErrno(env, errno, "sigaction");
  alarm(static_cast<unsigned>(seconds));
  return Undefined(env);
}

napi_value Getppid(napi_env env, napi_callback_info) { return Number(env, getppid()); }

napi_value Setsid(napi_env env, napi_callback_info) {
  pid_t sid = setsid();
  if (sid < 0) return ThrowErrno(env, errno, "setsid");
  return Number(env, sid);
}

}  // namespace

void InitProcess(Napi::Env env, Napi::Object exports) {
  ExportFunction(env, exports, "setPdeathsig", SetPdeathsig);
  ExportFunction(env, exports, "getPdeathsig", GetPdeathsig);
  ExportFunction(env, exports, "setChildSubreaper", SetChildSubreaper);
  ExportFunction(env, exports, "getChildSubreaper", GetChildSubreaper);
  ExportFunction(env, exports, "alarm", Alarm);
  ExportFunction(env, exports, "resetSignalDefault", ResetSignalDefault);
  ExportFunction(env, exports, "armAlarmBackstop", ArmAlarmBackstop);
  ExportFunction(env, exports, "getppid", Getppid);
  ExportFunction(env, exports, "setsid", Setsid);
}

}  // namespace ccci
