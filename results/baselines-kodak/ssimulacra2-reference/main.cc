// Minimal driver for libjxl's tools/ssimulacra2.cc: reads two 8-bit RGB PNGs with libpng (as the reference
// tool's PNG decoder would give them: values / 255, sRGB) and prints ComputeSSIMULACRA2(...).Score().
#include <png.h>
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>
#include "lib/jxl/base/status.h"
#include "lib/jxl/color_encoding_internal.h"
#include "lib/jxl/image.h"
#include "lib/jxl/image_bundle.h"
#include "lib/jxl/image_metadata.h"
#include "tools/no_memory_manager.h"
#include "tools/ssimulacra2.h"

static bool ReadPng(const char* path, std::vector<uint8_t>* rgb, size_t* w, size_t* h) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&image, path)) return false;
  image.format = PNG_FORMAT_RGB;
  rgb->resize(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, rgb->data(), 0, nullptr)) return false;
  *w = image.width;
  *h = image.height;
  return true;
}

static jxl::StatusOr<jxl::ImageBundle> Load(const char* path, jxl::ImageMetadata* metadata) {
  std::vector<uint8_t> rgb;
  size_t w, h;
  if (!ReadPng(path, &rgb, &w, &h)) return JXL_FAILURE("cannot read png");
  JxlMemoryManager* mm = jpegxl::tools::NoMemoryManager();
  JXL_ASSIGN_OR_RETURN(jxl::Image3F color, jxl::Image3F::Create(mm, w, h));
  for (size_t c = 0; c < 3; ++c)
    for (size_t y = 0; y < h; ++y) {
      float* row = color.PlaneRow(c, y);
      for (size_t x = 0; x < w; ++x) row[x] = rgb[(y * w + x) * 3 + c] * (1.0f / 255.0f);
    }
  jxl::ImageBundle ib(mm, metadata);
  JXL_RETURN_IF_ERROR(ib.SetFromImage(std::move(color), jxl::ColorEncoding::SRGB(false)));
  return ib;
}

int main(int argc, char** argv) {
  if (argc != 3) { fprintf(stderr, "usage: %s orig.png dist.png\n", argv[0]); return 1; }
  jxl::ImageMetadata metadata;
  metadata.SetUintSamples(8);
  metadata.color_encoding = jxl::ColorEncoding::SRGB(false);
  auto a = Load(argv[1], &metadata);
  auto b = Load(argv[2], &metadata);
  if (!a.ok() || !b.ok()) { fprintf(stderr, "load failed\n"); return 1; }
  auto msssim = ComputeSSIMULACRA2(std::move(a).value_(), std::move(b).value_());
  if (!msssim.ok()) { fprintf(stderr, "ssimulacra2 failed\n"); return 1; }
  printf("%.8f\n", std::move(msssim).value_().Score());
  return 0;
}
