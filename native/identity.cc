// File identity as the kernel sees it: {dev, ino}, both bigint (an inode number does not fit a
// double). sameFile() is how a lock holder proves its inode is still the one the path names.
#include <errno.h>
#include <sys/stat.h>

#include "errors.h"
#include "native.h"

namespace ccci {

namespace {

napi_value Identity(napi_env env, napi_callback_info info) {
  Args<1> args(env, info);
  int fd;
  if (!FdArg(env, args[0], &fd)) return nullptr;
  struct stat st;
  if (fstat(fd, &st) != 0) return ThrowErrno(env, errno, "fstat");
  return FileIdentity(env, st);
}

// Follows symlinks, like stat(2): the identity of whatever the path leads to.
napi_value PathIdentity(napi_env env, napi_callback_info info) {
  Args<1> args(env, info);
  PathArg path;
  if (!path.Read(env, args[0], "path", "stat")) return nullptr;
  struct stat st;
  if (stat(path.value, &st) != 0) return ThrowErrno(env, errno, "stat", path.value);
  return FileIdentity(env, st);
}

// True only when dev AND ino match; false when the path is gone (the inode was unlinked). The
// path itself is compared (lstat): a symlink planted there is not the lockfile, even if it points
// at it.
napi_value SameFile(napi_env env, napi_callback_info info) {
  Args<2> args(env, info);
  int fd;
  PathArg path;
  if (!FdArg(env, args[0], &fd) || !path.Read(env, args[1], "path", "lstat")) return nullptr;
  struct stat held;
  if (fstat(fd, &held) != 0) return ThrowErrno(env, errno, "fstat");
  bool same;
  int err = PathNames(path.value, held, &same);
  if (err != 0) return ThrowErrno(env, err, "lstat", path.value);
  return Boolean(env, same);
}

}  // namespace

int PathNames(const char* path, const struct stat& file, bool* same) {
  struct stat named;
  if (lstat(path, &named) == 0) {
    *same = named.st_dev == file.st_dev && named.st_ino == file.st_ino;
    return 0;
  }
  if (errno == ENOENT || errno == ENOTDIR) {
    *same = false;
    return 0;
  }
  return errno;
}

void InitIdentity(Napi::Env env, Napi::Object exports) {
  ExportFunction(env, exports, "identity", Identity);
  ExportFunction(env, exports, "pathIdentity", PathIdentity);
  ExportFunction(env, exports, "sameFile", SameFile);
}

}  // namespace ccci
