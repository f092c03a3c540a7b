#include "errors.h"

#include <errno.h>
#include <uv.h>

#include <cctype>
#include <cmath>
#include <cstring>
#include <string>

#include "native.h"

namespace ccci {

namespace {

Napi::Error Build(napi_env env, const char* code, int uvErrno, const char* syscall, const std::string& description,
                  const char* path) {
  std::string message = std::string(code) + ": " + description + ", " + syscall;
  if (path != nullptr) message += std::string(" '") + path + "'";
  Napi::Error error = Napi::Error::New(env, message);
  Napi::Object obj = error.Value();
  if (uvErrno != 0) obj.Set("errno", Napi::Number::New(env, uvErrno));
  obj.Set("code", Napi::String::New(env, code));
  obj.Set("syscall", Napi::String::New(env, syscall));
  if (path != nullptr) obj.Set("path", Napi::String::New(env, path));
  return error;
}

// Errnos our calls can return that libuv has no name for (it would say "Unknown system error").
const char* ExtraErrnoName(int err) {
  switch (err) {
    case ENOLCK: return "ENOLCK";
    case EDQUOT: return "EDQUOT";
    case ESTALE: return "ESTALE";
    default: return nullptr;
  }
}

std::string Lowercased(const char* text) {
  std::string out(text);
  if (!out.empty()) out[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(out[0])));
  return out;
}

// Node truncates a shown string the same way: 28 characters, quotes included.
std::string Quoted(const std::string& text) {
  std::string quoted = "'" + text + "'";
  return quoted.size() > 28 ? quoted.substr(0, 25) + "..." : quoted;
}

std::string StringOf(napi_env env, napi_value value) {
  napi_value str;
  size_t len = 0;
  if (napi_coerce_to_string(env, value, &str) != napi_ok ||
      napi_get_value_string_utf8(env, str, nullptr, 0, &len) != napi_ok) {
    napi_value ignored;
    napi_get_and_clear_last_exception(env, &ignored);
    return "";
  }
  std::string out(len, '\0');
  napi_get_value_string_utf8(env, str, out.data(), len + 1, &len);
  return out;
}

// `name` of a function, or of an object's constructor; empty if there is none (or a getter throws).
std::string NameOf(napi_env env, napi_value value, bool viaConstructor) {
  napi_value target = value, name;
  napi_valuetype type;
  bool ok = true;
  if (viaConstructor) ok = napi_get_named_property(env, value, "constructor", &target) == napi_ok;
  ok = ok && napi_typeof(env, target, &type) == napi_ok && type == napi_function &&
       napi_get_named_property(env, target, "name", &name) == napi_ok && napi_typeof(env, name, &type) == napi_ok &&
       type == napi_string;
  if (!ok) {
    napi_value ignored;
    napi_get_and_clear_last_exception(env, &ignored);
    return "";
  }
  return StringOf(env, name);
}

// Node's `Received ...` tail of an argument error.
std::string Received(napi_env env, napi_value value) {
  napi_valuetype type = napi_undefined;
  napi_typeof(env, value, &type);
  switch (type) {
    case napi_undefined: return "Received undefined";
    case napi_null: return "Received null";
    case napi_function: {
      std::string name = NameOf(env, value, false);
      return name.empty() ? "Received function" : "Received function " + name;
    }
    case napi_object: {
      std::string name = NameOf(env, value, true);
      return name.empty() ? "Received an object" : "Received an instance of " + name;
    }
    case napi_symbol: return "Received type symbol";
    case napi_string: return "Received type string (" + Quoted(StringOf(env, value)) + ")";
    case napi_bigint: return "Received type bigint (" + StringOf(env, value) + "n)";
    case napi_boolean: return "Received type boolean (" + StringOf(env, value) + ")";
    case napi_number: return "Received type number (" + StringOf(env, value) + ")";
    default: return "Received " + StringOf(env, value);
  }
}

bool ExceptionPending(napi_env env) {
  bool pending = false;
  return napi_is_exception_pending(env, &pending) == napi_ok && pending;
}

// An argument error: Node's TypeError, or RangeError when `range`, with `code`.
napi_value ThrowArgError(napi_env env, bool range, const char* code, const std::string& message) {
  if (ExceptionPending(env)) return nullptr;
  Napi::Object error = range ? Napi::RangeError::New(env, message).Value() : Napi::TypeError::New(env, message).Value();
  error.Set("code", Napi::String::New(env, code));
  napi_throw(env, error);
  return nullptr;
}

napi_value ThrowType(napi_env env, const char* name, const char* expected, napi_value value) {
  return ThrowArgError(
      env, false, "ERR_INVALID_ARG_TYPE",
      std::string("The \"") + name + "\" argument must be of type " + expected + ". " + Received(env, value));
}

}  // namespace

Napi::Error ErrnoError(napi_env env, int err, const char* syscall, const char* path, const char* why) {
  const char* extra = ExtraErrnoName(err);
  if (extra != nullptr) return Build(env, extra, -err, syscall, why ? why : Lowercased(std::strerror(err)), path);
  char name[64], description[128];
  uv_err_name_r(-err, name, sizeof name);
  // Node says UNKNOWN for an errno libuv cannot name; the text then comes from the C library.
  if (std::strncmp(name, "Unknown", 7) == 0) {
    return Build(env, "UNKNOWN", -err, syscall, why ? why : Lowercased(std::strerror(err)), path);
  }
  return Build(env, name, -err, syscall, why ? why : uv_strerror_r(-err, description, sizeof description), path);
}

Napi::Error CodedError(napi_env env, const char* code, const char* syscall, const std::string& why) {
  return Build(env, code, 0, syscall, why, nullptr);
}

napi_value ThrowErrno(napi_env env, int err, const char* syscall, const char* path, const char* why) {
  if (ExceptionPending(env)) return nullptr;
  napi_throw(env, ErrnoError(env, err, syscall, path, why).Value());
  return nullptr;
}

napi_value ThrowInvalidValue(napi_env env, const char* name, napi_value value, const std::string& why) {
  napi_valuetype type = napi_undefined;
  napi_typeof(env, value, &type);
  std::string shown = StringOf(env, value);
  if (type == napi_string) {
    std::string escaped;
    for (char c : shown) escaped += c == '\0' ? std::string("\\x00") : std::string(1, c);
    shown = Quoted(escaped);
  }
  return ThrowArgError(env, false, "ERR_INVALID_ARG_VALUE",
                       std::string("The argument '") + name + "' " + why + ". Received " + shown);
}

bool IntArg(napi_env env, napi_value value, const char* name, int64_t min, int64_t max, int64_t* out) {
  double number;
  // One call on the good path: napi_get_value_double refuses anything that is not a number.
  if (napi_get_value_double(env, value, &number) != napi_ok) {
    ThrowType(env, name, "number", value);
    return false;
  }
  // The good path, without a libm call: in range, and an integer.
  if (number >= static_cast<double>(min) && number <= static_cast<double>(max) &&
      static_cast<double>(static_cast<int64_t>(number)) == number) {
    *out = static_cast<int64_t>(number);
    return true;
  }
  if (std::floor(number) != number) {  // NaN and ±Infinity fail this too
    ThrowArgError(env, true, "ERR_OUT_OF_RANGE",
                  std::string("The value of \"") + name + "\" is out of range. It must be an integer. Received " +
                      StringOf(env, value));
    return false;
  }
  ThrowArgError(env, true, "ERR_OUT_OF_RANGE",
                std::string("The value of \"") + name + "\" is out of range. It must be >= " + std::to_string(min) +
                    " && <= " + std::to_string(max) + ". Received " + StringOf(env, value));
  return false;
}

bool FdArg(napi_env env, napi_value value, int* fd) {
  int64_t number;
  if (!IntArg(env, value, "fd", 0, INT32_MAX, &number)) return false;
  *fd = static_cast<int>(number);
  return true;
}

bool BoolArg(napi_env env, napi_value value, const char* name, bool* out) {
  if (napi_get_value_bool(env, value, out) != napi_ok) {
    ThrowType(env, name, "boolean", value);
    return false;
  }
  return true;
}

bool OptionalFloat64Out(napi_env env, napi_value value, const char* name, double** out) {
  *out = nullptr;
  napi_typedarray_type kind;
  size_t length = 0;
  void* data = nullptr;
  // One call on the good path: anything but a typed array fails it without throwing.
  if (napi_get_typedarray_info(env, value, &kind, &length, &data, nullptr, nullptr) == napi_ok) {
    if (kind != napi_float64_array) {
      ThrowType(env, name, "Float64Array", value);
      return false;
    }
    if (length < 1) {
      ThrowArgError(env, true, "ERR_OUT_OF_RANGE",
                    std::string("The value of \"") + name + ".length\" is out of range. It must be >= 1. Received 0");
      return false;
    }
    *out = static_cast<double*>(data);
    return true;
  }
  napi_valuetype type = napi_undefined;
  napi_typeof(env, value, &type);
  if (type == napi_undefined) return true;
  ThrowType(env, name, "Float64Array", value);
  return false;
}

bool PathArg::Read(napi_env env, napi_value arg, const char* name, const char* syscall) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, arg, value, sizeof value, &len) != napi_ok) {
    ThrowType(env, name, "string", arg);
    return false;
  }
  if (len >= PATH_MAX) {  // the kernel takes at most PATH_MAX bytes, the terminating NUL included
    ThrowErrno(env, ENAMETOOLONG, syscall);
    return false;
  }
  if (std::strlen(value) != len) {
    ThrowInvalidValue(env, name, arg, "must be a string without null bytes");
    return false;
  }
  return true;
}

}  // namespace ccci
