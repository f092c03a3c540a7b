// What a failed call looks like, built in one place so every native failure has Node's shape.
//
// System-call failures look like fs errors: `EBADF: bad file descriptor, flock` with `code`,
// `errno` (negative, as libuv reports it), `syscall`, and `path` when one is involved. Refusals we
// decide ourselves (a lockfile that is a FIFO) have the same shape, with the reason as the text.
// Bad arguments look like Node's own: a TypeError or RangeError with `code`
// (ERR_INVALID_ARG_TYPE, ERR_OUT_OF_RANGE, ERR_INVALID_ARG_VALUE) and a message ending in
// `Received ...`; the argument readers in native.h throw them. See docs/native.md#errors.
//
// Every throw returns nullptr, the empty napi_value, so that a callback ends with
// `return ThrowErrno(env, errno, "flock");`. None throws when an exception is already pending: the
// first failure is the one JS sees (a second napi_throw would abort the process).
#pragma once

#include <napi.h>
#include <uv.h>

#include <string>

namespace ccci {

// libuv's code for "inappropriate file type or format", which Linux has no errno for. Passed where
// an errno goes, it reads as Node reports it: code EFTYPE, errno UV_EFTYPE.
constexpr int kEftype = -UV_EFTYPE;

// The error of a system call that failed with `err`, for a rejection. `why`, when given, replaces
// the errno's own text: a refusal we decide ourselves, named by the errno that fits it.
Napi::Error ErrnoError(napi_env env, int err, const char* syscall, const char* path = nullptr,
                       const char* why = nullptr);

// The same shape for a condition no errno names: `code` is ours (ERR_CCCI_...), and there is no
// `errno`.
Napi::Error CodedError(napi_env env, const char* code, const char* syscall, const std::string& why);

// The one way a failure is thrown into JS: ErrnoError's error. Returns nullptr.
napi_value ThrowErrno(napi_env env, int err, const char* syscall, const char* path = nullptr,
                      const char* why = nullptr);

// ERR_INVALID_ARG_VALUE, for an argument of the right type that is still wrong. Returns nullptr.
napi_value ThrowInvalidValue(napi_env env, const char* name, napi_value value, const std::string& why);

}  // namespace ccci
