#include "errors.h"

#include <uv.h>

#include <cmath>
#include <string>

namespace ccci {

namespace {

Napi::Error Build(Napi::Env env, int uvcode, const char* syscall, const std::string& description,
                  const char* path) {
  const char* code = uv_err_name(uvcode);
  std::string message = std::string(code) + ": " + description + ", " + syscall;
  if (path != nullptr) message += std::string(" '") + path + "'";
  Napi::Error error = Napi::Error::New(env, message);
  Napi::Object obj = error.Value();
  obj.Set("errno", Napi::Number::New(env, uvcode));
  obj.Set("code", Napi::String::New(env, code));
  obj.Set("syscall", Napi::String::New(env, syscall));
  if (path != nullptr) obj.Set("path", Napi::String::New(env, path));
  return error;
}

}  // namespace

Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall, const char* path) {
  return Build(env, -err, syscall, uv_strerror(-err), path);
}

Napi::Error CodedError(Napi::Env env, int uvcode, const char* syscall, const std::string& why,
                       const char* path) {
  return Build(env, uvcode, syscall, why, path);
}

void ThrowArgError(Napi::Env env, const char* code, const std::string& message, bool range) {
  Napi::Object error = range ? Napi::RangeError::New(env, message).Value()
                             : Napi::TypeError::New(env, message).Value();
  error.Set("code", Napi::String::New(env, code));
  Napi::Error(env, error).ThrowAsJavaScriptException();
}

bool CheckInt(const Napi::CallbackInfo& info, size_t index, const char* name, int64_t min,
              int64_t max, int64_t* out) {
  Napi::Env env = info.Env();
  if (info.Length() <= index || !info[index].IsNumber()) {
    ThrowArgError(env, "ERR_INVALID_ARG_TYPE",
                  std::string("The \"") + name + "\" argument must be of type number");
    return false;
  }
  double value = info[index].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(value) || std::floor(value) != value || value < static_cast<double>(min) ||
      value > static_cast<double>(max)) {
    ThrowArgError(env, "ERR_OUT_OF_RANGE",
                  std::string("The value of \"") + name + "\" is out of range. It must be an integer >= " +
                      std::to_string(min) + " and <= " + std::to_string(max),
                  true);
    return false;
  }
  *out = static_cast<int64_t>(value);
  return true;
}

bool CheckFd(const Napi::CallbackInfo& info, size_t index, int* fd) {
  int64_t value;
  if (!CheckInt(info, index, "fd", 0, INT32_MAX, &value)) return false;
  *fd = static_cast<int>(value);
  return true;
}

bool CheckString(const Napi::CallbackInfo& info, size_t index, const char* name, std::string* out) {
  if (info.Length() <= index || !info[index].IsString()) {
    ThrowArgError(info.Env(), "ERR_INVALID_ARG_TYPE",
                  std::string("The \"") + name + "\" argument must be of type string");
    return false;
  }
  *out = info[index].As<Napi::String>().Utf8Value();
  if (out->find('\0') != std::string::npos) {
    ThrowArgError(info.Env(), "ERR_INVALID_ARG_VALUE",
                  std::string("The \"") + name + "\" argument must not contain null bytes");
    return false;
  }
  return true;
}

}  // namespace ccci
