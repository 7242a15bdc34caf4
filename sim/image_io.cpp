// PNG and .npz output of end-to-end runs (sim/image_io.hpp).
#include "sim/image_io.hpp"

#include <fmt/format.h>
#include <png.h>
#include <zip.h>

#include <cmath>
#include <set>

#include "formats/error.hpp"
#include "sim/npy.hpp"

namespace lowbit {

uint8_t pixel_u8(float x) {
  // NaN maps to 0 (clamp passes NaN; it has no pixel value).
  if (!(x == x)) return 0;
  const float c = x < -1.0f ? -1.0f : (x > 1.0f ? 1.0f : x);
  return static_cast<uint8_t>(std::nearbyint((c + 1.0f) * 127.5f));  // FE_TONEAREST: ties to even
}

Rgb8Image image_grid(std::span<const float> images, int64_t n, int64_t h, int64_t w, int64_t cols, int64_t pad,
                     int64_t scale) {
  if (n < 0 || h <= 0 || w <= 0 || cols <= 0 || pad < 0 || scale <= 0 || scale > 64 || h > 4096 || w > 4096)
    throw Error(fmt::format("image_grid: bad layout (n {}, {} x {}, cols {}, pad {}, scale {})", n, h, w, cols, pad, scale));
  if (static_cast<int64_t>(images.size()) != n * 3 * h * w)
    throw Error(fmt::format("image_grid: {} values for {} images of 3 x {} x {}", images.size(), n, h, w));
  const int64_t c = n < cols ? (n > 0 ? n : 1) : cols;
  const int64_t r = n > 0 ? (n + cols - 1) / cols : 1;
  Rgb8Image g;
  g.width = c * (w * scale + pad) + pad;
  g.height = r * (h * scale + pad) + pad;
  if (g.width * g.height > (int64_t{1} << 28)) throw Error("image_grid: the grid would exceed 2^28 pixels");
  g.pixels.assign(static_cast<size_t>(g.width * g.height * 3), 255);
  for (int64_t k = 0; k < n; ++k) {
    const int64_t x0 = pad + (k % cols) * (w * scale + pad), y0 = pad + (k / cols) * (h * scale + pad);
    const float* im = images.data() + k * 3 * h * w;
    for (int64_t y = 0; y < h * scale; ++y)
      for (int64_t x = 0; x < w * scale; ++x)
        for (int64_t ch = 0; ch < 3; ++ch)
          g.pixels[static_cast<size_t>(((y0 + y) * g.width + x0 + x) * 3 + ch)] =
              pixel_u8(im[(ch * h + y / scale) * w + x / scale]);
  }
  return g;
}

void write_png(const std::filesystem::path& path, const Rgb8Image& image) {
  if (image.width <= 0 || image.height <= 0 || image.width > 0x7fffffff || image.height > 0x7fffffff ||
      static_cast<int64_t>(image.pixels.size()) != image.width * image.height * 3)
    throw Error(fmt::format("{}: bad image ({} x {}, {} bytes)", path.string(), image.width, image.height,
                            image.pixels.size()));
  png_image png{};
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(image.width);
  png.height = static_cast<png_uint_32>(image.height);
  png.format = PNG_FORMAT_RGB;
  if (!png_image_write_to_file(&png, path.c_str(), 0, image.pixels.data(), 0, nullptr)) {
    const std::string msg = png.message;
    png_image_free(&png);
    throw Error(fmt::format("{}: cannot write the PNG: {}", path.string(), msg));
  }
}

Rgb8Image read_png(const std::filesystem::path& path) {
  png_image png{};
  png.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&png, path.c_str()))
    throw Error(fmt::format("{}: cannot read the PNG: {}", path.string(), png.message));
  png.format = PNG_FORMAT_RGB;
  Rgb8Image im;
  im.width = png.width;
  im.height = png.height;
  im.pixels.resize(PNG_IMAGE_SIZE(png));
  if (!png_image_finish_read(&png, nullptr, im.pixels.data(), 0, nullptr)) {
    const std::string msg = png.message;
    png_image_free(&png);
    throw Error(fmt::format("{}: cannot read the PNG: {}", path.string(), msg));
  }
  return im;
}

namespace {

std::string zip_error_text(zip_t* z) { return z ? zip_strerror(z) : "unknown error"; }

}  // namespace

void write_npz(const std::filesystem::path& path, const std::vector<Tensor>& tensors) {
  const std::string file = path.string();
  std::set<std::string> names;
  std::vector<std::vector<uint8_t>> blobs;  // alive until zip_close reads them
  for (const Tensor& t : tensors) {
    if (t.name.empty()) throw Error(file + ": an npz member needs a name");
    if (!names.insert(t.name).second) throw Error(fmt::format("{}: duplicate npz member '{}'", file, t.name));
    blobs.push_back(npy_bytes(t, fmt::format("{}: {}", file, t.name)));
  }
  int err = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  if (!z) {
    zip_error_t e;
    zip_error_init_with_code(&e, err);
    const std::string msg = zip_error_strerror(&e);
    zip_error_fini(&e);
    throw Error(fmt::format("{}: cannot create the archive: {}", file, msg));
  }
  for (size_t i = 0; i < tensors.size(); ++i) {
    zip_source_t* src = zip_source_buffer(z, blobs[i].data(), blobs[i].size(), 0);
    const std::string member = tensors[i].name + ".npy";
    const zip_int64_t idx = src ? zip_file_add(z, member.c_str(), src, ZIP_FL_ENC_UTF_8) : -1;
    if (idx < 0) {
      if (src) zip_source_free(src);
      const std::string msg = zip_error_text(z);
      zip_discard(z);
      throw Error(fmt::format("{}: cannot add '{}': {}", file, member, msg));
    }
    zip_set_file_compression(z, static_cast<zip_uint64_t>(idx), ZIP_CM_STORE, 0);  // numpy.savez: stored
  }
  if (zip_close(z) != 0) {
    const std::string msg = zip_error_text(z);
    zip_discard(z);
    throw Error(fmt::format("{}: cannot write the archive: {}", file, msg));
  }
}

std::vector<std::pair<std::string, std::vector<uint8_t>>> read_zip_members(const std::filesystem::path& path) {
  int err = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_RDONLY, &err);
  if (!z) throw Error(fmt::format("{}: cannot open the archive (libzip error {})", path.string(), err));
  std::vector<std::pair<std::string, std::vector<uint8_t>>> out;
  const zip_int64_t n = zip_get_num_entries(z, 0);
  for (zip_int64_t i = 0; i < n; ++i) {
    zip_stat_t st;
    if (zip_stat_index(z, static_cast<zip_uint64_t>(i), 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE) ||
        st.size > (zip_uint64_t{1} << 34)) {
      zip_discard(z);
      throw Error(fmt::format("{}: bad member {}", path.string(), i));
    }
    std::vector<uint8_t> bytes(static_cast<size_t>(st.size));
    zip_file_t* f = zip_fopen_index(z, static_cast<zip_uint64_t>(i), 0);
    const zip_int64_t got = f ? zip_fread(f, bytes.data(), bytes.size()) : -1;
    if (f) zip_fclose(f);
    if (got != static_cast<zip_int64_t>(bytes.size())) {
      zip_discard(z);
      throw Error(fmt::format("{}: cannot read member '{}'", path.string(), st.name));
    }
    out.emplace_back(st.name, std::move(bytes));
  }
  zip_discard(z);
  return out;
}

}  // namespace lowbit
