#!/usr/bin/env bash
# Builds libjxl's reference SSIMULACRA2 (tools/ssimulacra2.cc, unchanged) with main.cc, a minimal driver that
# reads 8-bit RGB PNGs with libpng as the tool's own PNG reader would (values / 255, sRGB). Only the sources
# the metric needs are compiled: building libjxl's own ssimulacra2 target compiles the whole library
# (hours on a shared 2-core machine). Used for results/baselines-kodak/ssimulacra2-validation.json:
#   libjxl aea3a06e281fdee13e04815bfbf4f4132e7f59ea (2026-08-21), its highway submodule
#   457c891775a7397bdb0376bb1031e6e027af1c48; Debian bookworm g++ 12, liblcms2-dev, libpng-dev; AVX2 only.
# Usage: build.sh LIBJXL_SOURCE_DIR OUTPUT_DIR   (LIBJXL_SOURCE_DIR with third_party/highway checked out and
# a configured cmake build in LIBJXL_SOURCE_DIR/../build for the generated lib/include headers)
set -euo pipefail
S=$(realpath "$1"); OUT=$(realpath -m "$2"); HERE=$(dirname "$(realpath "$0")")
mkdir -p "$OUT" && cd "$OUT"
FLAGS=(-O2 -DNDEBUG -std=c++17 -DJXL_STATIC_DEFINE -DJXL_CMS_STATIC_DEFINE -DHWY_STATIC_DEFINE
       -DJXL_INTERNAL_LIBRARY_BUILD
       "-DHWY_DISABLED_TARGETS=(HWY_AVX3|HWY_AVX3_DL|HWY_AVX3_SPR|HWY_AVX3_ZEN4|HWY_EMU128|HWY_SSE2|HWY_SSE4|HWY_SSSE3)"
       -I"$S" -I"$S/third_party/highway" -I"$S/../build/lib/include" -I"$S/lib/include")
SOURCES=("$HERE/main.cc" "$S/tools/ssimulacra2.cc" "$S/tools/gauss_blur.cc" "$S/tools/no_memory_manager.cc"
         "$S/lib/jxl/cms/jxl_cms.cc" "$S/lib/jxl/memory_manager_internal.cc" "$S/lib/jxl/color_encoding_internal.cc"
         "$S/lib/jxl/image_bundle.cc" "$S/lib/jxl/image_metadata.cc" "$S/lib/jxl/enc_xyb.cc"
         "$S/lib/jxl/enc_image_bundle.cc" "$S/lib/jxl/frame_header.cc" "$S/lib/jxl/image.cc"
         "$S/lib/jxl/jpeg/jpeg_data.cc" "$S/lib/jxl/fields.cc" "$S/lib/jxl/headers.cc" "$S/lib/jxl/loop_filter.cc"
         "$S/lib/jxl/simd_util.cc" "$S/lib/jxl/dec_bit_reader.cc" "$S/third_party/highway/hwy/targets.cc"
         "$S/third_party/highway/hwy/abort.cc" "$S/third_party/highway/hwy/per_target.cc"
         "$S/third_party/highway/hwy/print.cc")
for source in "${SOURCES[@]}"; do g++ "${FLAGS[@]}" -c "$source" -o "$(basename "$source" .cc).o"; done
g++ -o ssimulacra2 ./*.o -lpng -llcms2
echo "built $OUT/ssimulacra2"
