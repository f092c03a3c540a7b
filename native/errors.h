// What a failed call looks like, built in one place so every native failure has Node's shape.
//
// System-call failures look like fs errors: `EBADF: bad file descriptor, flock` with `code`,
// `errno` (negative, as libuv reports it), `syscall`, and `path` when one is involved.
// Bad arguments look like Node's own: a TypeError or RangeError with `code`
// (ERR_INVALID_ARG_TYPE, ERR_OUT_OF_RANGE, ERR_INVALID_ARG_VALUE) and a message ending in
// `Received ...`.
//
// The argument readers take raw napi values because flock() is a hot path: one napi call per
// argument, no wrapper objects, no heap allocation unless the argument is bad.
#pragma once

#include <limits.h>
#include <napi.h>

#include <cstdint>
#include <string>

namespace ccci {

Napi::Error ErrnoError(napi_env env, int err, const char* syscall, const char* path = nullptr);

// Same shape for a refusal we decide ourselves (e.g. a lockfile that is a FIFO): `code` names the
// condition (a libuv code such as "EFTYPE" where one fits, with its `uvErrno`; 0 leaves `errno`
// out), `why` says what was wrong.
Napi::Error CodedError(napi_env env, const char* code, int uvErrno, const char* syscall, const std::string& why,
                       const char* path = nullptr);

// The argument readers throw the JS error themselves and return false on a bad argument.
bool IntArg(napi_env env, napi_value value, const char* name, int64_t min, int64_t max, int64_t* out);
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

void ThrowInvalidValue(napi_env env, const char* name, napi_value value, const std::string& why);

}  // namespace ccci
