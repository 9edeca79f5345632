{
  "targets": [
    {
      "target_name": "captioner_native",
      "sources": ["src/kernels.cc", "src/optimizer.cc", "src/recurrent.cc", "src/loss.cc", "src/rows.cc", "src/tiles.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "generated"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "<!(node blas-flags.mjs defines)"],
      "cflags_cc": ["-O3", "-std=c++17", "-Werror=switch", "-ffp-contract=off", "<!@(node blas-flags.mjs cflags)"],
      "cflags_cc!": ["-fno-exceptions"],
      "libraries": ["<!@(node blas-flags.mjs libs)", "-lpthread"],
      "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-O3", "-std=c++17", "-Werror=switch", "-ffp-contract=off", "<!@(node blas-flags.mjs cflags)"] }
    }
  ]
}
