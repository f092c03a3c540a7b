// The lockfile rules: how a lockfile is opened, checked, probed and dropped, and the non-blocking
// flock(). The blocking wait is in waiter.cc.
//
// flock() is the janitor's hot path: one system call, `false` when the lock is busy, no exception
// built. A lockfile is opened without following a symlink or blocking on a FIFO, and used only if
// it is a regular file this process's euid owns; its identity is proved by its link count. See
// docs/native.md#lockfile-rules and docs/threat-model.md.
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <string>

#include "errors.h"
#include "native.h"

namespace ccci {

bool OpArg(napi_env env, napi_value value, int* op) {
  int64_t number;
  if (!IntArg(env, value, "operation", 0, 0xff, &number)) return false;
  int base = static_cast<int>(number) & ~LOCK_NB;
  if (base != LOCK_SH && base != LOCK_EX && base != LOCK_UN) {
    ThrowInvalidValue(env, "operation", value, "must be LOCK_SH, LOCK_EX or LOCK_UN, optionally with LOCK_NB");
    return false;
  }
  *op = static_cast<int>(number);
  return true;
}

namespace {

// flock(fd, op): true when granted, false when busy, throws on anything else. The busy path is
// the janitor's hot path: it allocates nothing.
napi_value Flock(napi_env env, napi_callback_info info) {
  Args<2> args(env, info);
  // The hot path, inline: an fd that is an integer in range and one of the four operations flock()
  // accepts, checked without the readers' calls (about 20 ns of a try-lock + unlock's 1.1 µs:
  // bench/README.md). Anything else goes through the readers below, which throw the precise error.
  double fdArg, opArg;
  if (napi_get_value_double(env, args[0], &fdArg) == napi_ok &&
      napi_get_value_double(env, args[1], &opArg) == napi_ok && fdArg >= 0 && fdArg <= INT32_MAX &&
      static_cast<double>(static_cast<int>(fdArg)) == fdArg &&
      (opArg == (LOCK_EX | LOCK_NB) || opArg == LOCK_UN || opArg == (LOCK_SH | LOCK_NB) ||
       opArg == (LOCK_UN | LOCK_NB))) {
    if (::flock(static_cast<int>(fdArg), static_cast<int>(opArg)) == 0) return Boolean(env, true);
    if (errno == EWOULDBLOCK) return Boolean(env, false);
    return ThrowErrno(env, errno, "flock");
  }
  int fd, op;
  if (!FdArg(env, args[0], &fd) || !OpArg(env, args[1], &op)) return nullptr;
  // A valid fd and operation that missed the hot path: LOCK_SH or LOCK_EX without LOCK_NB.
  return ThrowInvalidValue(env, "operation", args[1],
                           "must include LOCK_NB: flock() never blocks the JS thread (use flockWait())");
}

// The euid as of the last time we asked the kernel: the janitor probes every lockfile on every
// sweep, and a geteuid(2) per file would add a system call to each probe. Asked again whenever a
// file's owner differs, so after a seteuid() the new euid is seen at the first file the old one
// does not own; until then a file owned by the euid the process had before is still accepted.
// See docs/native.md#known-traps.
std::atomic<uid_t> lastEuid{static_cast<uid_t>(-1)};

bool OwnedByUs(uid_t owner) {
  if (owner == lastEuid.load(std::memory_order_relaxed)) return true;
  uid_t euid = geteuid();
  lastEuid.store(euid, std::memory_order_relaxed);
  return owner == euid;
}

// Why a lockfile that opened cannot be used, as a thrown error; false when it can.
bool RefuseLockFile(napi_env env, const struct stat& st, const char* p) {
  if (S_ISREG(st.st_mode) && OwnedByUs(st.st_uid)) return false;
  if (S_ISDIR(st.st_mode)) {
    ThrowErrno(env, EISDIR, "open", p, "lockfile is a directory");
  } else if (!S_ISREG(st.st_mode)) {
    ThrowErrno(env, kEftype, "open", p, "lockfile is not a regular file");
  } else {
    std::string why = "lockfile is owned by uid " + std::to_string(st.st_uid) + ", not by this process's uid " +
                      std::to_string(geteuid());
    ThrowErrno(env, EPERM, "open", p, why.c_str());
  }
  return true;
}

// Opens a lockfile without following a symlink or blocking on a FIFO, close-on-exec; creates it
// 0644 whatever the umask when `create`. Throws and returns -1 on failure. The file is not
// checked yet: see RefuseLockFile.
int OpenUnchecked(napi_env env, const char* p, bool create, bool* absent = nullptr) {
  const int flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;
  int fd = -1;
  bool created = false;
  // Open the existing file, else create it exclusively; losing a create race to another process
  // means its file now exists, so go round again (bounded: a path flipping forever is an error).
  for (int attempt = 0; attempt < 8; attempt++) {
    fd = ::open(p, flags);
    if (fd >= 0 || errno != ENOENT || !create) break;
    fd = ::open(p, flags | O_CREAT | O_EXCL, 0644);
    if (fd >= 0) {
      created = true;
      break;
    }
    if (errno != EEXIST) break;
  }
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT && absent != nullptr) {
      *absent = true;
      return -1;
    }
    ThrowErrno(env, err, "open", p, err == ELOOP ? "lockfile is a symbolic link (refusing to follow it)" : nullptr);
    return -1;
  }
  // The umask applied at creation; an existing file's mode is its owner's business.
  if (created && fchmod(fd, 0644) != 0) {
    int err = errno;
    ::close(fd);
    ThrowErrno(env, err, "fchmod", p);
    return -1;
  }
  return fd;
}

// fstat of a freshly opened lockfile; closes it and throws when the stat fails or refuses it.
bool StatLockFile(napi_env env, int fd, const char* p, struct stat* st) {
  if (fstat(fd, st) != 0) {
    int err = errno;
    ::close(fd);
    ThrowErrno(env, err, "fstat", p);
    return false;
  }
  if (RefuseLockFile(env, *st, p)) {
    ::close(fd);
    return false;
  }
  return true;
}

// openLockFile(path, create) -> fd.
napi_value OpenLockFile(napi_env env, napi_callback_info info) {
  Args<2> args(env, info);
  PathArg path;
  bool create;
  if (!path.Read(env, args[0], "path", "open") || !BoolArg(env, args[1], "create", &create)) return nullptr;
  int fd = OpenUnchecked(env, path.value, create);
  struct stat st;
  return fd < 0 || !StatLockFile(env, fd, path.value, &st) ? nullptr : Int32(env, fd);
}

// What probeLockFile() returns when it does not hand back a locked fd.
constexpr int kProbeBusy = -1;
constexpr int kProbeReplaced = -2;
constexpr int kProbeFree = -3;
constexpr int kProbeAbsent = -4;

// probeLockFile(path, op, create, mtimeOut?) -> fd | PROBE_BUSY | PROBE_REPLACED. The janitor's
// whole probe of one candidate in one call, in fewer system calls than the obvious loop: open,
// flock, then ONE fstat that checks the file, reads its mtime (after the flock, so a run that just
// took the lock has already set it) and proves the identity. A lockfile's path changes only by
// unlink (lockfiles are never renamed or linked), so a locked inode with one link is still the
// one the path names, and with none it was unlinked; only an inode with several links (someone
// ln'ed it) costs the lstat that compares it with the path. Whatever is not handed back is closed.
// See docs/native.md#lockfile-rules.
// The probe itself, shared by probeLockFile and probeLockState: open (a refused file throws), flock
// with `op`, one fstat that checks the file, reads its mtime and proves its identity. Returns the
// fd holding the lock, kProbeBusy or kProbeReplaced (the fd closed), kProbeAbsent for a missing file
// when `absent` is given, or kProbeThrew with a JS exception pending.
constexpr int kProbeThrew = -100;

int Probe(napi_env env, const char* path, int op, bool create, double* mtimeOut, bool* absent = nullptr) {
  int fd = OpenUnchecked(env, path, create, absent);
  if (fd < 0) return absent != nullptr && *absent ? kProbeAbsent : kProbeThrew;
  // A lock taken here on a file that is then refused is released by the close that refuses it.
  bool granted = ::flock(fd, op) == 0;
  int flockErr = granted ? 0 : errno;
  struct stat held;
  if (!StatLockFile(env, fd, path, &held)) return kProbeThrew;
  if (mtimeOut != nullptr) *mtimeOut = held.st_mtim.tv_sec * 1e3 + held.st_mtim.tv_nsec / 1e6;
  if (!granted) {
    ::close(fd);
    if (flockErr == EWOULDBLOCK) return kProbeBusy;
    ThrowErrno(env, flockErr, "flock", path);
    return kProbeThrew;
  }
  if (held.st_nlink == 1) return fd;
  if (held.st_nlink > 1) {
    bool same;
    int err = PathNames(path, held, &same);
    if (err != 0) {
      ::close(fd);
      ThrowErrno(env, err, "lstat", path);
      return kProbeThrew;
    }
    if (same) return fd;
  }
  ::close(fd);
  return kProbeReplaced;
}

// probeLockFile(path, op, create, mtimeOut?): the janitor's probe; the fd is the caller's to close.
napi_value ProbeLockFile(napi_env env, napi_callback_info info) {
  Args<4> args(env, info);
  PathArg path;
  int op;
  bool create;
  double* mtimeOut;
  if (!path.Read(env, args[0], "path", "open") || !OpArg(env, args[1], &op) ||
      !BoolArg(env, args[2], "create", &create) || !OptionalFloat64Out(env, args[3], "mtimeOut", &mtimeOut)) {
    return nullptr;
  }
  if ((op & LOCK_UN) != 0 || (op & LOCK_NB) == 0) {
    return ThrowInvalidValue(env, "operation", args[1], "must be LOCK_SH or LOCK_EX with LOCK_NB: a probe never waits");
  }
  int result = Probe(env, path.value, op, create, mtimeOut);
  return result == kProbeThrew ? nullptr : Int32(env, result);
}

// probeLockState(path, mtimeOut?): the shared-lock probe whole, for "is a run holding it?" — the
// probe with LOCK_SH|LOCK_NB on an existing file, closed at once. PROBE_FREE, PROBE_BUSY,
// PROBE_REPLACED, or PROBE_ABSENT for a missing file (not an exception: absence is an answer).
napi_value ProbeLockState(napi_env env, napi_callback_info info) {
  Args<2> args(env, info);
  PathArg path;
  double* mtimeOut;
  if (!path.Read(env, args[0], "path", "open") || !OptionalFloat64Out(env, args[1], "mtimeOut", &mtimeOut)) {
    return nullptr;
  }
  bool absent = false;
  int result = Probe(env, path.value, LOCK_SH | LOCK_NB, false, mtimeOut, &absent);
  if (result == kProbeThrew) return nullptr;
  if (result >= 0) {
    ::close(result);
    return Int32(env, kProbeFree);
  }
  return Int32(env, result);
}

// dropLockFile(fd, path): unlinks the lockfile, then closes the fd that holds its lock — the
// order the protocol needs, so a waiter woken by the close finds the path gone (or new). A bad fd
// is refused before anything is unlinked; a good one is closed whatever the unlink did, and the
// unlink's error, if any, is thrown after.
napi_value DropLockFile(napi_env env, napi_callback_info info) {
  Args<2> args(env, info);
  int fd;
  PathArg path;
  if (!FdArg(env, args[0], &fd) || !path.Read(env, args[1], "path", "unlink")) return nullptr;
  // A bad fd holds no lock: refuse it before unlinking anything.
  if (fcntl(fd, F_GETFD) < 0) return ThrowErrno(env, errno, "close");
  int unlinkErr = ::unlink(path.value) == 0 ? 0 : errno;
  if (::close(fd) != 0 && errno != EINTR) {
    // EINTR still closed the fd on Linux; anything else (EBADF) means there was no lock to release.
    return ThrowErrno(env, errno, "close");
  }
  if (unlinkErr != 0) return ThrowErrno(env, unlinkErr, "unlink", path.value);
  return nullptr;
}

}  // namespace

void InitLockfile(Napi::Env env, Napi::Object exports) {
  ExportFunction(env, exports, "flock", Flock);
  ExportFunction(env, exports, "openLockFile", OpenLockFile);
  ExportFunction(env, exports, "probeLockFile", ProbeLockFile);
  ExportFunction(env, exports, "probeLockState", ProbeLockState);
  ExportFunction(env, exports, "dropLockFile", DropLockFile);
  exports.Set("LOCK_SH", Napi::Number::New(env, LOCK_SH));
  exports.Set("LOCK_EX", Napi::Number::New(env, LOCK_EX));
  exports.Set("LOCK_NB", Napi::Number::New(env, LOCK_NB));
  exports.Set("LOCK_UN", Napi::Number::New(env, LOCK_UN));
  exports.Set("PROBE_BUSY", Napi::Number::New(env, kProbeBusy));
  exports.Set("PROBE_REPLACED", Napi::Number::New(env, kProbeReplaced));
  exports.Set("PROBE_FREE", Napi::Number::New(env, kProbeFree));
  exports.Set("PROBE_ABSENT", Napi::Number::New(env, kProbeAbsent));
}

}  // namespace ccci
