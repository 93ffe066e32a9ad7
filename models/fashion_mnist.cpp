#include "models/fashion_mnist.hpp"

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <system_error>

#include "core/error.hpp"

namespace xbar::models {
namespace {

using core::UserError;
namespace fs = std::filesystem;

constexpr std::uint32_t images_magic = 2051;  // 0x00000803: unsigned byte, 3 dimensions
constexpr std::uint32_t labels_magic = 2049;  // 0x00000801: unsigned byte, 1 dimension
constexpr std::size_t chunk_bytes = std::size_t{1} << 20;

[[noreturn]] void fail(const fs::path& file, const std::string& what) {
  throw UserError(file.string() + ": " + what);
}

// An open IDX file, gzip-compressed or plain (zlib reads plain files transparently).
class IdxFile {
 public:
  explicit IdxFile(const fs::path& file) : file_(file) {
    std::error_code ec;
    if (!fs::is_regular_file(file, ec)) fail(file, "no such file");
    gz_ = gzopen(file.c_str(), "rb");
    if (gz_ == nullptr) fail(file, "cannot open the file");
  }
  ~IdxFile() {
    if (gz_ != nullptr) gzclose(gz_);
  }
  IdxFile(const IdxFile&) = delete;
  IdxFile& operator=(const IdxFile&) = delete;

  // Reads up to n bytes into out; returns the number read (less than n only at the end of data).
  std::size_t read(unsigned char* out, std::size_t n) {
    std::size_t done = 0;
    while (done < n) {
      const unsigned want = static_cast<unsigned>(std::min<std::size_t>(n - done, chunk_bytes));
      const int got = gzread(gz_, out + done, want);
      if (got < 0) {
        int code = 0;
        const char* message = gzerror(gz_, &code);
        fail(file_, std::string("corrupt compressed data (") + (message ? message : "zlib error") + ")");
      }
      if (got == 0) break;
      done += static_cast<std::size_t>(got);
    }
    return done;
  }

  std::uint32_t read_u32(const char* what) {
    unsigned char b[4];
    if (read(b, 4) != 4) fail(file_, std::string("truncated header (end of file while reading ") + what + ")");
    return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) | b[3];
  }

  // Reads exactly n payload bytes, growing the buffer as data arrive (a corrupt header with a huge
  // count does not allocate more than the file holds).
  std::vector<unsigned char> read_payload(std::size_t n, const std::string& expected) {
    std::vector<unsigned char> data;
    while (data.size() < n) {
      const std::size_t old = data.size();
      const std::size_t step = std::min(n - old, std::max(chunk_bytes, old));
      data.resize(old + step);
      const std::size_t got = read(data.data() + old, step);
      if (got < step) {
        fail(file_, "truncated: " + expected + " need " + std::to_string(n) + " data bytes, the file holds " +
                        std::to_string(old + got));
      }
    }
    return data;
  }

  void check_magic(std::uint32_t expected, const char* kind) {
    const std::uint32_t magic = read_u32("the magic number");
    if (magic != expected) {
      fail(file_, "bad magic number " + std::to_string(magic) + " (expected " + std::to_string(expected) +
                      " for an IDX " + kind + " file)");
    }
  }

 private:
  fs::path file_;
  gzFile gz_ = nullptr;
};

std::size_t kept(std::uint32_t count, std::size_t limit) {
  return limit == 0 ? count : std::min<std::size_t>(count, limit);
}

// `stem` in `folder`, as stem.gz or plain stem.
fs::path find_file(const fs::path& folder, const std::string& stem) {
  std::error_code ec;
  const fs::path gz = folder / (stem + ".gz");
  if (fs::is_regular_file(gz, ec)) return gz;
  const fs::path plain = folder / stem;
  if (fs::is_regular_file(plain, ec)) return plain;
  throw UserError(gz.string() + ": Fashion-MNIST data not found (neither " + gz.filename().string() + " nor " +
                  plain.filename().string() + " is in " + folder.string() +
                  "). Install them with `sudo apt-get install dataset-fashion-mnist` (files go to " +
                  fashion_mnist_debian_dir + "), or set XBAR_FASHION_MNIST_DIR to a folder holding " +
                  "the four Fashion-MNIST IDX files.");
}

}  // namespace

const std::array<std::string_view, 10>& fashion_mnist_class_names() {
  static const std::array<std::string_view, 10> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                          "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

fs::path default_fashion_mnist_dir() {
  const char* env = std::getenv("XBAR_FASHION_MNIST_DIR");
  if (env != nullptr && *env != '\0') return fs::path(env);
  return fs::path(fashion_mnist_debian_dir);
}

Eigen::MatrixXd read_idx_images(const fs::path& file, std::size_t limit, int* rows_out, int* cols_out) {
  IdxFile in(file);
  in.check_magic(images_magic, "images");
  const std::uint32_t count = in.read_u32("the image count");
  const std::uint32_t rows = in.read_u32("the row count");
  const std::uint32_t cols = in.read_u32("the column count");
  if (rows == 0 || cols == 0 || rows > 4096 || cols > 4096) {
    fail(file, "bad image dimensions " + std::to_string(rows) + " x " + std::to_string(cols));
  }
  const std::size_t n = kept(count, limit);
  const std::size_t pixels = std::size_t{rows} * cols;
  const auto data = in.read_payload(n * pixels, std::to_string(n) + " images of " + std::to_string(rows) + " x " +
                                                    std::to_string(cols));
  Eigen::MatrixXd images(static_cast<Eigen::Index>(pixels), static_cast<Eigen::Index>(n));
  for (std::size_t k = 0; k < n; ++k) {
    const unsigned char* src = data.data() + k * pixels;
    double* dst = images.col(static_cast<Eigen::Index>(k)).data();
    for (std::size_t p = 0; p < pixels; ++p) dst[p] = src[p] / 255.0;
  }
  if (rows_out != nullptr) *rows_out = static_cast<int>(rows);
  if (cols_out != nullptr) *cols_out = static_cast<int>(cols);
  return images;
}

Eigen::VectorXi read_idx_labels(const fs::path& file, std::size_t limit) {
  IdxFile in(file);
  in.check_magic(labels_magic, "labels");
  const std::uint32_t count = in.read_u32("the label count");
  const std::size_t n = kept(count, limit);
  const auto data = in.read_payload(n, std::to_string(n) + " labels");
  Eigen::VectorXi labels(static_cast<Eigen::Index>(n));
  for (std::size_t k = 0; k < n; ++k) {
    if (data[k] >= fashion_mnist_classes) {
      fail(file, "label " + std::to_string(data[k]) + " of item " + std::to_string(k) + " is out of range 0-" +
                     std::to_string(fashion_mnist_classes - 1));
    }
    labels[static_cast<Eigen::Index>(k)] = data[k];
  }
  return labels;
}

Dataset load_fashion_mnist(const fs::path& folder, Split split, std::size_t limit) {
  const std::string prefix = split == Split::train ? "train" : "t10k";
  const fs::path images_file = find_file(folder, prefix + "-images-idx3-ubyte");
  const fs::path labels_file = find_file(folder, prefix + "-labels-idx1-ubyte");

  // Counts are compared from the headers before any payload is read.
  std::uint32_t image_count = 0, label_count = 0;
  {
    IdxFile in(images_file);
    in.check_magic(images_magic, "images");
    image_count = in.read_u32("the image count");
  }
  {
    IdxFile in(labels_file);
    in.check_magic(labels_magic, "labels");
    label_count = in.read_u32("the label count");
  }
  if (image_count != label_count) {
    fail(images_file, "holds " + std::to_string(image_count) + " images but " + labels_file.string() + " holds " +
                          std::to_string(label_count) + " labels");
  }

  Dataset d;
  int rows = 0, cols = 0;
  d.images = read_idx_images(images_file, limit, &rows, &cols);
  if (rows != fashion_mnist_rows || cols != fashion_mnist_cols) {
    fail(images_file, "images are " + std::to_string(rows) + " x " + std::to_string(cols) + ", expected " +
                          std::to_string(fashion_mnist_rows) + " x " + std::to_string(fashion_mnist_cols));
  }
  d.labels = read_idx_labels(labels_file, limit);
  return d;
}

Dataset load_fashion_mnist(Split split, std::size_t limit) {
  return load_fashion_mnist(default_fashion_mnist_dir(), split, limit);
}

void random_horizontal_flip(Eigen::MatrixXd& images, int rows, int cols, core::RandomStream& rng) {
  if (rows <= 0 || cols <= 0 || images.rows() != static_cast<Eigen::Index>(rows) * cols)
    throw std::invalid_argument("random_horizontal_flip: images are not rows × cols pixels");
  for (Eigen::Index j = 0; j < images.cols(); ++j) {
    if (rng.uniform() >= 0.5) continue;
    for (int r = 0; r < rows; ++r) images.col(j).segment(static_cast<Eigen::Index>(r) * cols, cols).reverseInPlace();
  }
}

std::vector<int> shuffled_order(std::size_t n, core::RandomStream& rng) {
  std::vector<int> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = static_cast<int>(i);
  for (std::size_t i = n; i > 1; --i) {
    // Unbiased draw in [0, i) by rejection (no std:: distributions: portable across libraries).
    const std::uint64_t bound = i;
    const std::uint64_t limit_u = UINT64_MAX - UINT64_MAX % bound;
    std::uint64_t r = rng.next_u64();
    while (r >= limit_u) r = rng.next_u64();
    std::swap(order[i - 1], order[static_cast<std::size_t>(r % bound)]);
  }
  return order;
}

}  // namespace xbar::models
