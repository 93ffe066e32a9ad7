// Fashion-MNIST loader: reads the IDX files (gzip-compressed or plain) of the Debian package
// dataset-fashion-mnist, plus class names and a seeded shuffled order for data order.
#pragma once

#include <Eigen/Core>

#include <array>
#include <cstddef>
#include <filesystem>
#include <string_view>
#include <vector>

#include "core/random.hpp"

namespace xbar::models {

enum class Split { train, test };

struct Dataset {
  Eigen::MatrixXd images;  // 784 x N: one column per image, pixels row-major, scaled to [0, 1]
  Eigen::VectorXi labels;  // N labels in 0..9
};

inline constexpr int fashion_mnist_rows = 28;
inline constexpr int fashion_mnist_cols = 28;
inline constexpr int fashion_mnist_pixels = fashion_mnist_rows * fashion_mnist_cols;
inline constexpr int fashion_mnist_classes = 10;

// Class names, indexed by label ("T-shirt/top", "Trouser", ..., "Ankle boot").
const std::array<std::string_view, 10>& fashion_mnist_class_names();

// Where the Debian package installs the files.
inline constexpr const char* fashion_mnist_debian_dir = "/usr/share/datasets/fashion-mnist";

// The folder to use: $XBAR_FASHION_MNIST_DIR when set and non-empty, else the Debian folder.
std::filesystem::path default_fashion_mnist_dir();

// Loads a split from `folder`, which holds train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz],
// t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz] (the .gz name is tried first). `limit`
// keeps the first `limit` images (0 = all). Throws core::UserError naming the file and the problem
// (missing data with install instructions, bad magic, dimensions, count mismatch, label range,
// truncation).
Dataset load_fashion_mnist(const std::filesystem::path& folder, Split split, std::size_t limit = 0);

// Same, from default_fashion_mnist_dir().
Dataset load_fashion_mnist(Split split, std::size_t limit = 0);

// Low-level readers of one IDX file (gzip or plain); `limit` as above. Throw core::UserError.
// read_idx_images returns pixels / 255 as a (rows*cols) x N matrix and the image size.
Eigen::MatrixXd read_idx_images(const std::filesystem::path& file, std::size_t limit, int* rows = nullptr,
                                int* cols = nullptr);
Eigen::VectorXi read_idx_labels(const std::filesystem::path& file, std::size_t limit);

// Training-time augmentation: mirrors each image (a column of `images`, rows × cols pixels
// row-major) left to right with probability 1/2, one draw from `rng` per column in column order.
void random_horizontal_flip(Eigen::MatrixXd& images, int rows, int cols, core::RandomStream& rng);

// A permutation of 0..n-1 (Fisher-Yates) drawn from `rng`: same stream, same order.
std::vector<int> shuffled_order(std::size_t n, core::RandomStream& rng);

}  // namespace xbar::models
