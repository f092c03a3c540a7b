// File identity as the kernel sees it: {dev, ino}, both bigint (an inode number does not fit a
// double). sameFile() is how a lock holder proves its inode is still the one the path names.
#include <errno.h>
#include <sys/stat.h>

#include <string>

#include "errors.h"
#include "native.h"

namespace ccci {

namespace {

Napi::Object IdentityObject(Napi::Env env, const struct stat& st) {
  Napi::Object id = Napi::Object::New(env);
  id.Set("dev", Napi::BigInt::New(env, static_cast<uint64_t>(st.st_dev)));
  id.Set("ino", Napi::BigInt::New(env, static_cast<uint64_t>(st.st_ino)));
  return id;
}

Napi::Value Identity(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!CheckFd(info, 0, &fd)) return env.Undefined();
  struct stat st;
  if (fstat(fd, &st) != 0) {
    ErrnoError(env, errno, "fstat").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return IdentityObject(env, st);
}

Napi::Value PathIdentity(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  if (!CheckString(info, 0, "path", &path)) return env.Undefined();
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    ErrnoError(env, errno, "stat", path.c_str()).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return IdentityObject(env, st);
}

// True only when dev AND ino match; false when the path is gone (the inode was unlinked).
Napi::Value SameFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  std::string path;
  if (!CheckFd(info, 0, &fd) || !CheckString(info, 1, "path", &path)) return env.Undefined();
  struct stat held, named;
  if (fstat(fd, &held) != 0) {
    ErrnoError(env, errno, "fstat").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (stat(path.c_str(), &named) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return Napi::Boolean::New(env, false);
    ErrnoError(env, errno, "stat", path.c_str()).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Boolean::New(env, held.st_dev == named.st_dev && held.st_ino == named.st_ino);
}

}  // namespace

void InitIdentity(Napi::Env env, Napi::Object exports) {
  exports.Set("identity", Napi::Function::New(env, Identity, "identity"));
  exports.Set("pathIdentity", Napi::Function::New(env, PathIdentity, "pathIdentity"));
  exports.Set("sameFile", Napi::Function::New(env, SameFile, "sameFile"));
}

}  // namespace ccci
