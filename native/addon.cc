#include <napi.h>

#include "native.h"
#include "source-hash.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  ccci::InitLockfile(env, exports);
  ccci::InitWaiter(env, exports);
  ccci::InitIdentity(env, exports);
  ccci::InitProcess(env, exports);
  ccci::InitDir(env, exports);
  // Which sources this binary was built from: native/load.cjs loads only a binary of the sources
  // beside it (docs/native.md#prebuilt-binaries).
  exports.Set("sourceHash", Napi::String::New(env, CCCI_SOURCE_HASH));
  return exports;
}

}  // namespace

NODE_API_MODULE(cc_ci, Init)
