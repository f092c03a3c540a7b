// Each file registers one family of system calls on the addon's exports.
//
// The exported functions are plain napi callbacks: the argument readers in errors.h work on raw
// napi values, and node-addon-api is used where it saves code (objects, promises, the waiter's
// thread-safe function), not on the per-call path.
#pragma once

#include <napi.h>
#include <sys/stat.h>

namespace ccci {

void InitLocks(Napi::Env env, Napi::Object exports);
void InitIdentity(Napi::Env env, Napi::Object exports);
void InitProcess(Napi::Env env, Napi::Object exports);
void InitDir(Napi::Env env, Napi::Object exports);

// Whether `path` itself (lstat: a symlink is not its target) names `file`'s device and inode; a
// path that is gone names nothing. Returns 0, or the errno of any other lstat failure.
int PathNames(const char* path, const struct stat& file, bool* same);

inline void ExportFunction(Napi::Env env, Napi::Object exports, const char* name, napi_callback callback) {
  napi_value fn;
  NAPI_THROW_IF_FAILED_VOID(env, napi_create_function(env, name, NAPI_AUTO_LENGTH, callback, nullptr, &fn));
  exports.Set(name, fn);
}

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

}  // namespace ccci
