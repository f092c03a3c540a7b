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

Napi::Value SetPdeathsig(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t sig;
  if (!CheckInt(info, 0, "signal", 0, SIGRTMAX, &sig)) return env.Undefined();
  if (prctl(PR_SET_PDEATHSIG, static_cast<unsigned long>(sig), 0, 0, 0) != 0) {
    ErrnoError(env, errno, "prctl").ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

Napi::Value GetPdeathsig(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sig = 0;
  if (prctl(PR_GET_PDEATHSIG, &sig, 0, 0, 0) != 0) {
    ErrnoError(env, errno, "prctl").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, sig);
}

Napi::Value SetChildSubreaper(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool on = info.Length() == 0 || info[0].ToBoolean().Value();
  if (prctl(PR_SET_CHILD_SUBREAPER, on ? 1UL : 0UL, 0, 0, 0) != 0) {
    ErrnoError(env, errno, "prctl").ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

Napi::Value GetChildSubreaper(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int on = 0;
  if (prctl(PR_GET_CHILD_SUBREAPER, &on, 0, 0, 0) != 0) {
    ErrnoError(env, errno, "prctl").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Boolean::New(env, on != 0);
}

// alarm(seconds): returns the seconds left on the previous alarm; 0 cancels.
Napi::Value Alarm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t seconds;
  if (!CheckInt(info, 0, "seconds", 0, UINT32_MAX, &seconds)) return env.Undefined();
  return Napi::Number::New(env, alarm(static_cast<unsigned>(seconds)));
}

Napi::Value Getppid(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), getppid());
}

Napi::Value Setsid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  pid_t sid = setsid();
  if (sid < 0) {
    ErrnoError(env, errno, "setsid").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, sid);
}

}  // namespace

void InitProcess(Napi::Env env, Napi::Object exports) {
  exports.Set("setPdeathsig", Napi::Function::New(env, SetPdeathsig, "setPdeathsig"));
  exports.Set("getPdeathsig", Napi::Function::New(env, GetPdeathsig, "getPdeathsig"));
  exports.Set("setChildSubreaper", Napi::Function::New(env, SetChildSubreaper, "setChildSubreaper"));
  exports.Set("getChildSubreaper", Napi::Function::New(env, GetChildSubreaper, "getChildSubreaper"));
  exports.Set("alarm", Napi::Function::New(env, Alarm, "alarm"));
  exports.Set("getppid", Napi::Function::New(env, Getppid, "getppid"));
  exports.Set("setsid", Napi::Function::New(env, Setsid, "setsid"));
}

}  // namespace ccci
