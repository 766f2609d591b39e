// The image decoding wrapper: header probe, completeness check, pixel cap, then OpenCV.
#include <vector>

#include "fuzz_support.h"
#include "reid/data/image_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<uchar> bytes(data, data + size);
  reid::fuzz::expect_clean([&] { reid::data::decode_image(bytes, "fuzz.img", int64_t{1} << 20); });
  return 0;
}
