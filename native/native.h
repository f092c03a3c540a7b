// What every file of the addon shares: registration, reading arguments, making return values.
// Each .cc registers one family of system calls on the addon's exports.
//
// The exported functions are plain napi callbacks: the argument readers work on raw napi values,
// and node-addon-api is used where it saves code (objects, promises, the waiter's thread-safe
// function), not on the per-call path. Failures are thrown through errors.h.
#pragma once

#include <limits.h>
#include <napi.h>
#include <sys/stat.h>

#include <cstdint>

namespace ccci {

void InitLockfile(Napi::Env env, Napi::Object exports);
void InitWaiter(Napi::Env env, Napi::Object exports);
void InitIdentity(Napi::Env env, Napi::Object exports);
void InitProcess(Napi::Env env, Napi::Object exports);
void InitDir(Napi::Env env, Napi::Object exports);

inline void ExportFunction(Napi::Env env, Napi::Object exports, const char* name, napi_callback callback) {
  napi_value fn;
  NAPI_THROW_IF_FAILED_VOID(env, napi_create_function(env, name, NAPI_AUTO_LENGTH, callback, nullptr, &fn));
  exports.Set(name, fn);
}

// ---- Arguments ----
//
// The readers take raw napi values because flock() is a hot path: one napi call per argument, no
// wrapper objects, no heap allocation unless the argument is bad. On a bad argument they throw
// Node's own argument error and return false. They are defined in errors.cc, next to the errors
// they build.

// The first `N` arguments of a call; missing ones read as undefined.
template <size_t N>
struct Args {
  napi_value argv[N];
  Args(napi_env env, napi_callback_info info) {
    size_t argc = N;
    napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  }
  napi_value operator[](size_t i) const { return argv[i]; }
};

bool IntArg(napi_env env, napi_value value, const char* name, int64_t min, int64_t max, int64_t* out);
// An fd: an integer in [0, 2^31-1].
bool FdArg(napi_env env, napi_value value, int* fd);
bool BoolArg(napi_env env, napi_value value, const char* name, bool* out);
// An optional out-parameter: undefined gives a null `out`; anything but a non-empty Float64Array
// throws.
bool OptionalFloat64Out(napi_env env, napi_value value, const char* name, double** out);

// A path argument, copied into a stack buffer: a string without NUL bytes, shorter than PATH_MAX
// (a longer one throws ENAMETOOLONG, as the kernel would).
struct PathArg {
  char value[PATH_MAX + 1];  // one more than the kernel takes, to tell a too-long path
  bool Read(napi_env env, napi_value arg, const char* name, const char* syscall);
};

// A flock(2) operation: LOCK_SH, LOCK_EX or LOCK_UN, optionally with LOCK_NB. Each caller narrows
// it further. Defined in lockfile.cc.
bool OpArg(napi_env env, napi_value value, int* op);

// ---- Return values ----

inline napi_value Undefined(napi_env env) {
  napi_value result;
  napi_get_undefined(env, &result);
  return result;
}

inline napi_value Boolean(napi_env env, bool value) {
  napi_value result;
  napi_get_boolean(env, value, &result);
  return result;
}

inline napi_value Int32(napi_env env, int32_t value) {
  napi_value result;
  napi_create_int32(env, value, &result);
  return result;
}

inline napi_value Number(napi_env env, double value) {
  napi_value result;
  napi_create_double(env, value, &result);
  return result;
}

// A file's identity as the kernel sees it: {dev, ino}, both bigint (an inode number does not fit
// a double).
inline napi_value FileIdentity(napi_env env, const struct stat& st) {
  Napi::Object id = Napi::Object::New(env);
  id.Set("dev", Napi::BigInt::New(env, static_cast<uint64_t>(st.st_dev)));
  id.Set("ino", Napi::BigInt::New(env, static_cast<uint64_t>(st.st_ino)));
  return id;
}

// Whether `path` itself (lstat: a symlink is not its target) names `file`'s device and inode; a
// path that is gone names nothing. Returns 0, or the errno of any other lstat failure.
int PathNames(const char* path, const struct stat& file, bool* same);

}  // namespace ccci
