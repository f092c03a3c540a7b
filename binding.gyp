{
  "targets": [
    {
      "target_name": "cc_ci",
      "sources": [
        "native/addon.cc",
        "native/errors.cc",
        "native/lockfile.cc",
        "native/waiter.cc",
        "native/identity.cc",
        "native/process.cc",
        "native/dir.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-O2"],
      "libraries": ["-lpthread"]
    }
  ]
}
