// Directory listing for the janitor's hot path: Node's readdirSync sorts every name and builds
// the whole listing, where a sweep only wants the lockfiles' domains.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "errors.h"
#include "native.h"

namespace ccci {

namespace {

// readdirMatching(dir, prefix, suffix) -> string[]: the X of every entry named prefix + X + suffix
// (X not empty; never . or ..), in directory order. One pass of getdents, no sorting and no per-entry objects:
// the janitor lists its lock dir on every sweep.
napi_value ReaddirMatching(napi_env env, napi_callback_info info) {
  Args<3> args(env, info);
  PathArg dir, prefixArg, suffixArg;
  if (!dir.Read(env, args[0], "dir", "opendir") || !prefixArg.Read(env, args[1], "prefix", "readdir") ||
      !suffixArg.Read(env, args[2], "suffix", "readdir")) {
    return nullptr;
  }
  const char* prefix = prefixArg.value;
  const char* suffix = suffixArg.value;
  const size_t prefixLen = strlen(prefix), suffixLen = strlen(suffix);
  int fd = ::open(dir.value, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ThrowErrno(env, errno, "opendir", dir.value);
  DIR* d = fdopendir(fd);
  if (d == nullptr) {
    int err = errno;
    ::close(fd);
    return ThrowErrno(env, err, "opendir", dir.value);
  }
  napi_value result;
  napi_create_array(env, &result);
  uint32_t count = 0;
  for (;;) {
    errno = 0;  // readdir's only way to tell the end from a failure
    struct dirent* e = readdir(d);
    if (e == nullptr) break;
    size_t len = strlen(e->d_name);
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    if (len <= prefixLen + suffixLen || memcmp(e->d_name, prefix, prefixLen) != 0 ||
        memcmp(e->d_name + len - suffixLen, suffix, suffixLen) != 0) {
      continue;
    }
    napi_value name;
    napi_create_string_utf8(env, e->d_name + prefixLen, len - prefixLen - suffixLen, &name);
    napi_set_element(env, result, count++, name);
  }
  int err = errno;
  closedir(d);
  if (err != 0) return ThrowErrno(env, err, "readdir", dir.value);
  return result;
}

}  // namespace

void InitDir(Napi::Env env, Napi::Object exports) { ExportFunction(env, exports, "readdirMatching", ReaddirMatching); }

}  // namespace ccci
