#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/random.hpp"
#include "models/fashion_mnist.hpp"

namespace fs = std::filesystem;
using xbar::core::RandomStream;
using xbar::core::UserError;
using namespace xbar::models;

namespace {

const fs::path idx_dir = fs::path(XBAR_SOURCE_DIR) / "tests" / "data" / "idx";

// Pixel p (row-major) of image k of the generated files (see tests/data/idx/generate.py).
double generated_pixel(int k, int p) { return ((37 * k + 11 * p) % 256) / 255.0; }

// The UserError message of f(), or "" when it does not throw one.
template <class F>
std::string user_error(F f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

void expect_generated(const Dataset& d, const std::vector<int>& labels) {
  const int n = static_cast<int>(labels.size());
  ASSERT_EQ(d.images.rows(), 784);
  ASSERT_EQ(d.images.cols(), n);
  ASSERT_EQ(d.labels.size(), n);
  for (int k = 0; k < n; ++k) {
    EXPECT_EQ(d.labels[k], labels[k]) << "item " << k;
    for (int p = 0; p < 784; ++p) ASSERT_EQ(d.images(p, k), generated_pixel(k, p)) << "image " << k << " pixel " << p;
  }
}

}  // namespace

TEST(FashionMnist, GzipFilesLoadWithExactPixelsAndLabels) {
  expect_generated(load_fashion_mnist(idx_dir / "gz", Split::train), {9, 0, 3});
  expect_generated(load_fashion_mnist(idx_dir / "gz", Split::test), {5, 7});
}

TEST(FashionMnist, PlainFilesLoadWithExactPixelsAndLabels) {
  expect_generated(load_fashion_mnist(idx_dir / "plain", Split::train), {9, 0, 3});
  expect_generated(load_fashion_mnist(idx_dir / "plain", Split::test), {5, 7});
}

TEST(FashionMnist, LimitKeepsTheFirstItems) {
  expect_generated(load_fashion_mnist(idx_dir / "gz", Split::train, 2), {9, 0});
  expect_generated(load_fashion_mnist(idx_dir / "plain", Split::train, 1), {9});
  expect_generated(load_fashion_mnist(idx_dir / "gz", Split::train, 100), {9, 0, 3});
}

TEST(FashionMnist, MalformedFilesGiveUserErrorsNamingTheFile) {
  struct Case {
    const char* folder;
    const char* file;
    const char* what;
  };
  const Case cases[] = {
      {"bad_magic", "train-images-idx3-ubyte.gz", "bad magic number 2049 (expected 2051"},
      {"count_mismatch", "train-images-idx3-ubyte.gz", "holds 3 images but"},
      {"truncated", "train-images-idx3-ubyte.gz", "truncated"},
      {"cut_gzip", "train-images-idx3-ubyte.gz", "train-images-idx3-ubyte.gz: "},
      {"label12", "train-labels-idx1-ubyte.gz", "label 12 of item 1 is out of range 0-9"},
      {"bad_dims", "train-images-idx3-ubyte.gz", "images are 4 x 5, expected 28 x 28"},
      {"missing_labels", "train-labels-idx1-ubyte.gz", "Fashion-MNIST data not found"},
  };
  for (const Case& c : cases) {
    const fs::path folder = idx_dir / c.folder;
    const std::string message = user_error([&] { load_fashion_mnist(folder, Split::train); });
    ASSERT_FALSE(message.empty()) << c.folder << ": no UserError";
    EXPECT_NE(message.find((folder / c.file).string()), std::string::npos) << c.folder << ": " << message;
    EXPECT_NE(message.find(c.what), std::string::npos) << c.folder << ": " << message;
  }
  // The test split is absent from these folders.
  EXPECT_NE(user_error([&] { load_fashion_mnist(idx_dir / "bad_magic", Split::test); }).find("t10k-images"),
            std::string::npos);
}

TEST(FashionMnist, MissingDataSaysHowToInstallThem) {
  const fs::path folder = idx_dir / "no_such_folder";
  const std::string message = user_error([&] { load_fashion_mnist(folder, Split::train); });
  EXPECT_NE(message.find((folder / "train-images-idx3-ubyte.gz").string()), std::string::npos) << message;
  EXPECT_NE(message.find("apt-get install dataset-fashion-mnist"), std::string::npos) << message;
  EXPECT_NE(message.find("XBAR_FASHION_MNIST_DIR"), std::string::npos) << message;
}

TEST(FashionMnist, EnvironmentVariableOverridesTheDefaultFolder) {
  const char* old = std::getenv("XBAR_FASHION_MNIST_DIR");
  const std::string saved = old ? old : "";
  ::unsetenv("XBAR_FASHION_MNIST_DIR");
  EXPECT_EQ(default_fashion_mnist_dir(), fs::path("/usr/share/datasets/fashion-mnist"));
  ::setenv("XBAR_FASHION_MNIST_DIR", (idx_dir / "gz").c_str(), 1);
  EXPECT_EQ(default_fashion_mnist_dir(), idx_dir / "gz");
  expect_generated(load_fashion_mnist(Split::test), {5, 7});
  if (old) {
    ::setenv("XBAR_FASHION_MNIST_DIR", saved.c_str(), 1);
  } else {
    ::unsetenv("XBAR_FASHION_MNIST_DIR");
  }
}

TEST(FashionMnist, ClassNames) {
  const auto& names = fashion_mnist_class_names();
  EXPECT_EQ(names[0], "T-shirt/top");
  EXPECT_EQ(names[1], "Trouser");
  EXPECT_EQ(names[5], "Sandal");
  EXPECT_EQ(names[9], "Ankle boot");
}

TEST(FashionMnist, ShuffledOrderIsASeededPermutation) {
  RandomStream a(42, "data_order"), b(42, "data_order"), c(43, "data_order");
  const auto oa = shuffled_order(1000, a), ob = shuffled_order(1000, b), oc = shuffled_order(1000, c);
  EXPECT_EQ(oa, ob);
  EXPECT_NE(oa, oc);
  std::vector<int> identity(1000), sorted = oa;
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_NE(oa, identity);
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, identity);
  EXPECT_TRUE(shuffled_order(0, a).empty());
  EXPECT_EQ(shuffled_order(1, a), std::vector<int>{0});
}

TEST(FashionMnist, RandomHorizontalFlipMirrorsAboutHalfOfTheImagesExactly) {
  // 2000 random 4 × 3 "images"; each column either unchanged or its rows reversed.
  RandomStream fill(5, "images");
  Eigen::MatrixXd images(12, 2000);
  for (Eigen::Index k = 0; k < images.size(); ++k) images.data()[k] = fill.uniform();
  Eigen::MatrixXd flipped = images, again = images;
  RandomStream a(9, "augment_flip"), b(9, "augment_flip");
  random_horizontal_flip(flipped, 4, 3, a);
  random_horizontal_flip(again, 4, 3, b);
  EXPECT_EQ(flipped, again) << "same stream, same flips";
  int mirrored = 0;
  for (Eigen::Index j = 0; j < images.cols(); ++j) {
    if (flipped.col(j) == images.col(j)) continue;
    ++mirrored;
    for (int r = 0; r < 4; ++r)
      for (int c = 0; c < 3; ++c) ASSERT_EQ(flipped(r * 3 + c, j), images(r * 3 + 2 - c, j)) << j;
  }
  // Binomial(2000, 1/2): mean 1000, sd 22.4; ±5 sd.
  EXPECT_NEAR(mirrored, 1000, 112);
  // Flipping twice with the same draws restores the images.
  RandomStream c(9, "augment_flip");
  random_horizontal_flip(flipped, 4, 3, c);
  EXPECT_EQ(flipped, images);
  EXPECT_THROW(random_horizontal_flip(flipped, 5, 3, c), std::invalid_argument);
}

// The real data of the Debian package dataset-fashion-mnist (installed by scripts/setup.sh): a hard
// requirement, not skipped. Reference values come from an independent read with Python's gzip+struct.
TEST(FashionMnist, DebianDataHaveTheDocumentedShapeAndLabels) {
  const Dataset train = load_fashion_mnist(Split::train);
  ASSERT_EQ(train.images.rows(), 784);
  ASSERT_EQ(train.images.cols(), 60000);
  ASSERT_EQ(train.labels.size(), 60000);
  EXPECT_EQ(train.labels[0], 9);  // "Ankle boot", the first training item
  EXPECT_EQ(fashion_mnist_class_names()[train.labels[0]], "Ankle boot");
  EXPECT_NEAR(train.images.col(0).sum(), 76247 / 255.0, 1e-9);
  EXPECT_EQ(train.images(14 * 28 + 14, 0), 217 / 255.0);  // row 14, column 14 of the first image
  EXPECT_GE(train.images.minCoeff(), 0.0);
  EXPECT_LE(train.images.maxCoeff(), 1.0);
  std::vector<int> per_class(10, 0);
  for (int k = 0; k < train.labels.size(); ++k) {
    ASSERT_GE(train.labels[k], 0);
    ASSERT_LE(train.labels[k], 9);
    ++per_class[train.labels[k]];
  }
  EXPECT_EQ(per_class, std::vector<int>(10, 6000));

  const Dataset test = load_fashion_mnist(Split::test);
  ASSERT_EQ(test.images.rows(), 784);
  ASSERT_EQ(test.images.cols(), 10000);
  ASSERT_EQ(test.labels.size(), 10000);
  EXPECT_EQ(test.labels[0], 9);
  EXPECT_EQ(test.labels[1], 2);

  const Dataset first = load_fashion_mnist(Split::train, 100);
  ASSERT_EQ(first.images.cols(), 100);
  ASSERT_EQ(first.labels.size(), 100);
  EXPECT_EQ(first.images, train.images.leftCols(100));
  EXPECT_EQ(first.labels, train.labels.head(100));
}
