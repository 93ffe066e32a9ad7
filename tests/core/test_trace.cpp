#include "core/trace.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "tests/support/files.hpp"

using xbar::testing_support::slurp;
using xbar::testing_support::user_error_message;

namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using xbar::core::MatrixI;
using xbar::core::TraceReader;
using xbar::core::TraceWriter;
using xbar::core::UserError;

// A fresh folder for the running test, removed (with everything in it) afterwards.
class TempDir {
 public:
  TempDir() {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() / ("xbar_test_trace_" + std::string(test->test_suite_name()) + "_" +
                                         test->name() + "_" + std::to_string(::getpid()));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ignored);
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  fs::path operator/(const std::string& name) const { return path_ / name; }
  const fs::path& path() const { return path_; }

  // Names of the files in the folder, sorted.
  std::vector<std::string> files() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(path_)) names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  fs::path path_;
};



// Creation properties and storage type of one dataset, read with the HDF5 C API.
struct DatasetProperties {
  H5D_layout_t layout = H5D_LAYOUT_ERROR;
  std::vector<hsize_t> chunk;             // empty unless chunked
  std::vector<H5Z_filter_t> filters;      // in pipeline order
  bool stored_as_f64le = false;
  bool stored_as_i32le = false;
};

DatasetProperties inspect_dataset(const fs::path& file, const std::string& dataset_path) {
  DatasetProperties properties;
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t d = H5Dopen2(f, dataset_path.c_str(), H5P_DEFAULT);
  const hid_t dcpl = H5Dget_create_plist(d);
  const hid_t type = H5Dget_type(d);
  properties.layout = H5Pget_layout(dcpl);
  if (properties.layout == H5D_CHUNKED) {
    properties.chunk.resize(H5S_MAX_RANK);
    properties.chunk.resize(static_cast<std::size_t>(H5Pget_chunk(dcpl, H5S_MAX_RANK, properties.chunk.data())));
  }
  for (int k = 0; k < H5Pget_nfilters(dcpl); ++k) {
    unsigned flags = 0;
    std::size_t n_values = 0;
    unsigned config = 0;
    properties.filters.push_back(H5Pget_filter2(dcpl, static_cast<unsigned>(k), &flags, &n_values, nullptr, 0,
                                                nullptr, &config));
  }
  properties.stored_as_f64le = H5Tequal(type, H5T_IEEE_F64LE) > 0;
  properties.stored_as_i32le = H5Tequal(type, H5T_STD_I32LE) > 0;
  H5Tclose(type);
  H5Pclose(dcpl);
  H5Dclose(d);
  H5Fclose(f);
  return properties;
}

// Eigen expressions such as MatrixXd::Ones(2, 2) convert to both MatrixXd and MatrixI, so the tests
// pass concrete matrices to TraceWriter::write.

// A trace with a bit of everything, always the same.
void write_sample_trace(const fs::path& path) {
  TraceWriter writer(path);
  writer.set_attribute("/", "card", std::string("tile:\n  rows: 4\n"));
  writer.set_attribute("/", "seed", std::int64_t{42});
  writer.set_attribute("/array", "r_wl_segment", 2.5);
  writer.set_attribute("/array", "taps", std::vector<double>{1, 2, 3});
  Eigen::MatrixXd g(4, 3);
  for (Eigen::Index i = 0; i < g.size(); ++i) g(i) = 1e-6 * static_cast<double>(i);
  writer.write("/array/g_target", g, "S");
  writer.write("/reads/0000/adc_code", MatrixI(MatrixI::Constant(2, 3, 7)), "1");
  writer.write("/reads/0000/big", std::vector<double>(10000, 0.5), "A");
  writer.commit();
}

TEST(TraceWriter, RoundTripsMatricesWithShapeAndUnits) {
  const TempDir dir;
  Eigen::MatrixXd m(3, 5);
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 5; ++j) m(i, j) = 10.0 * i + j + 0.25;
  }
  TraceWriter writer(dir / "a.h5");
  writer.write("/reads/0000/i_out", m, "A");
  writer.commit();

  const TraceReader reader(dir / "a.h5");
  EXPECT_THAT(reader.shape("/reads/0000/i_out"), ElementsAre(3u, 5u));
  EXPECT_EQ(reader.units("/reads/0000/i_out"), "A");
  const std::vector<double> flat = reader.read_flat("/reads/0000/i_out");
  ASSERT_EQ(flat.size(), 15u);
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 5; ++j) EXPECT_EQ(flat[static_cast<std::size_t>(i * 5 + j)], m(i, j)) << i << "," << j;
  }
  EXPECT_EQ(reader.read_matrix("/reads/0000/i_out"), m);
}

TEST(TraceWriter, StoresDoublesAsLittleEndianF64AndIntsAsI32) {
  const TempDir dir;
  TraceWriter writer(dir / "a.h5");
  writer.write("/d", Eigen::MatrixXd(Eigen::MatrixXd::Ones(2, 2)), "V");
  writer.write("/i", MatrixI(MatrixI::Ones(2, 2)), "1");
  writer.commit();

  EXPECT_TRUE(inspect_dataset(dir / "a.h5", "/d").stored_as_f64le);
  EXPECT_TRUE(inspect_dataset(dir / "a.h5", "/i").stored_as_i32le);
}

TEST(TraceWriter, RoundTripsIntMatrices) {
  const TempDir dir;
  MatrixI codes(4, 3);
  codes << 0, -1, 2, 300, -40000, 5, 6, 7, std::numeric_limits<std::int32_t>::max(), 9, 10,
      std::numeric_limits<std::int32_t>::min();
  TraceWriter writer(dir / "a.h5");
  writer.write("/reads/0000/adc_code", codes, "1");
  writer.commit();

  const TraceReader reader(dir / "a.h5");
  EXPECT_THAT(reader.shape("/reads/0000/adc_code"), ElementsAre(4u, 3u));
  EXPECT_EQ(reader.read_matrix_int("/reads/0000/adc_code"), codes);
  EXPECT_EQ(reader.read_matrix("/reads/0000/adc_code"), codes.cast<double>());  // converted on reading
  EXPECT_EQ(reader.units("/reads/0000/adc_code"), "1");
}

TEST(TraceWriter, RoundTripsVectorsAsColumnVectors) {
  const TempDir dir;
  const std::vector<double> values{1.5, -2.5, 3.5, 1e-300};
  TraceWriter writer(dir / "a.h5");
  writer.write("/v", values, "s");
  writer.commit();

  const TraceReader reader(dir / "a.h5");
  EXPECT_THAT(reader.shape("/v"), ElementsAre(4u));
  EXPECT_EQ(reader.read_flat("/v"), values);
  const Eigen::MatrixXd column = reader.read_matrix("/v");
  ASSERT_EQ(column.rows(), 4);
  ASSERT_EQ(column.cols(), 1);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(column(i, 0), values[static_cast<std::size_t>(i)]);
}

TEST(TraceWriter, RoundTripsNDimensionalArrays) {
  const TempDir dir;
  std::vector<double> values(2 * 3 * 4);
  std::vector<std::int32_t> ints(values.size());
  for (std::size_t k = 0; k < values.size(); ++k) {
    values[k] = 0.5 * static_cast<double>(k);
    ints[k] = -static_cast<std::int32_t>(k);
  }
  TraceWriter writer(dir / "a.h5");
  writer.write("/cube", values, {2, 3, 4}, "V");
  writer.write("/int_cube", ints, {2, 3, 4}, "1");
  writer.write("/int_matrix", ints, {4, 6}, "1");
  writer.commit();

  const TraceReader reader(dir / "a.h5");
  EXPECT_THAT(reader.shape("/cube"), ElementsAre(2u, 3u, 4u));
  EXPECT_EQ(reader.read_flat("/cube"), values);
  EXPECT_THAT(reader.shape("/int_cube"), ElementsAre(2u, 3u, 4u));
  EXPECT_TRUE(inspect_dataset(dir / "a.h5", "/int_cube").stored_as_i32le);
  EXPECT_EQ(reader.read_flat("/int_cube")[23], -23.0);
  EXPECT_EQ(reader.read_matrix_int("/int_matrix")(1, 2), -8);  // row-major: element 1*6+2
  EXPECT_THAT(user_error_message([&] { reader.read_matrix("/cube"); }), HasSubstr("'/cube' is 3-D"));
}

TEST(TraceWriter, RejectsDimsThatDoNotMatchTheValueCount) {
  const TempDir dir;
  TraceWriter writer(dir / "a.h5");
  const std::string message = user_error_message([&] { writer.write("/x", std::vector<double>(5), {2, 3}, "V"); });
  EXPECT_THAT(message, HasSubstr((dir / "a.h5").string()));
  EXPECT_THAT(message, HasSubstr("'/x'"));
}

TEST(TraceWriter, RoundTripsAllAttributeKinds) {
  const TempDir dir;
  const std::int64_t big = (std::int64_t{1} << 60) + 1;  // not representable as a double
  const std::string card = "tile:\n  rows: 4  # Ω, µ\n";
  TraceWriter writer(dir / "a.h5");
  writer.set_attribute("/", "card", card);
  writer.set_attribute("/", "empty", std::string());
  writer.set_attribute("/", "seed", big);
  writer.set_attribute("/", "negative", std::int64_t{-7});
  writer.set_attribute("/array", "r_source", 12.5);
  writer.set_attribute("/array", "taps", std::vector<double>{0.1, -0.2, 3e8});
  writer.set_attribute("/array", "no_taps", std::vector<double>{});
  writer.commit();

  const TraceReader reader(dir / "a.h5");
  EXPECT_EQ(reader.attribute_string("/", "card"), card);
  EXPECT_EQ(reader.attribute_string("/", "empty"), "");
  EXPECT_EQ(reader.attribute_int("/", "seed"), big);
  EXPECT_EQ(reader.attribute_int("/", "negative"), -7);
  EXPECT_EQ(reader.attribute_double("/", "negative"), -7.0);  // integers read as doubles too
  EXPECT_EQ(reader.attribute_double("/array", "r_source"), 12.5);
  EXPECT_THAT(reader.attribute_doubles("/array", "taps"), ElementsAre(0.1, -0.2, 3e8));
  EXPECT_TRUE(reader.attribute_doubles("/array", "no_taps").empty());
}

TEST(TraceWriter, ReplacesAnAttributeSetTwice) {
  const TempDir dir;
  TraceWriter writer(dir / "a.h5");
  writer.set_attribute("/", "seed", std::int64_t{1});
  writer.set_attribute("/", "seed", std::int64_t{2});
  writer.set_attribute("/", "note", 1.0);
  writer.set_attribute("/", "note", std::string("now a string"));
  writer.commit();

  const TraceReader reader(dir / "a.h5");
  EXPECT_EQ(reader.attribute_int("/", "seed"), 2);
  EXPECT_EQ(reader.attribute_string("/", "note"), "now a string");
}

TEST(TraceWriter, AttachesAttributesToDatasetsAndCreatesMissingGroups) {
  const TempDir dir;
  TraceWriter writer(dir / "a.h5");
  writer.write("/reads/0000/v_in", Eigen::MatrixXd(Eigen::MatrixXd::Zero(2, 3)), "V");
  writer.set_attribute("/reads/0000/v_in", "scale", 0.5);
  writer.set_attribute("/reads/0001", "time_s", 3600.0);
  writer.commit();

  const TraceReader reader(dir / "a.h5");
  EXPECT_EQ(reader.attribute_double("/reads/0000/v_in", "scale"), 0.5);
  EXPECT_EQ(reader.units("/reads/0000/v_in"), "V");  // the dataset is still a dataset
  EXPECT_EQ(reader.attribute_double("/reads/0001", "time_s"), 3600.0);
  EXPECT_THAT(reader.list("/reads/0001"), ElementsAre());
}

TEST(TraceWriter, CreatesNestedGroupsOnDemandAndListsChildrenSorted) {
  const TempDir dir;
  TraceWriter writer(dir / "a.h5");
  writer.create_group("/reads/0003");
  writer.create_group("/reads/0003");  // already there: no error
  writer.write("/reads/0001/y", std::vector<double>{1}, "1");
  writer.create_group("/reads/0000");
  writer.write("/reads/0003/i_out", std::vector<double>{1}, "A");
  writer.write("/reads/0003/conductance", std::vector<double>{1}, "S");
  writer.create_group("array");  // relative paths start at the root
  writer.commit();

  const TraceReader reader(dir / "a.h5");
  EXPECT_THAT(reader.list("/"), ElementsAre("array", "reads"));
  EXPECT_THAT(reader.list("/reads"), ElementsAre("0000", "0001", "0003"));
  EXPECT_THAT(reader.list("/reads/0003"), ElementsAre("conductance", "i_out"));
  EXPECT_THAT(reader.list("/reads/0000"), ElementsAre());
}

TEST(TraceWriter, WritesZeroSizeDatasetsContiguously) {
  const TempDir dir;
  TraceWriter writer(dir / "a.h5");
  writer.write("/rows0", Eigen::MatrixXd(0, 5), "A");
  writer.write("/cols0", MatrixI(5, 0), "1");
  writer.write("/empty", std::vector<double>{}, "V");
  writer.write("/cube0", std::vector<double>{}, {10000, 0, 3}, "V");  // large dims, no elements
  writer.commit();

  const TraceReader reader(dir / "a.h5");
  EXPECT_THAT(reader.shape("/rows0"), ElementsAre(0u, 5u));
  const Eigen::MatrixXd rows0 = reader.read_matrix("/rows0");
  EXPECT_EQ(rows0.rows(), 0);
  EXPECT_EQ(rows0.cols(), 5);
  const MatrixI cols0 = reader.read_matrix_int("/cols0");
  EXPECT_EQ(cols0.rows(), 5);
  EXPECT_EQ(cols0.cols(), 0);
  EXPECT_THAT(reader.shape("/empty"), ElementsAre(0u));
  EXPECT_TRUE(reader.read_flat("/empty").empty());
  EXPECT_THAT(reader.shape("/cube0"), ElementsAre(10000u, 0u, 3u));
  EXPECT_EQ(reader.units("/cube0"), "V");
  EXPECT_EQ(inspect_dataset(dir / "a.h5", "/cube0").layout, H5D_CONTIGUOUS);
}

TEST(TraceWriter, ChunksAndCompressesLargeDatasets) {
  const TempDir dir;
  Eigen::MatrixXd large(1000, 64);  // 64000 values, 500 KiB raw
  for (Eigen::Index i = 0; i < large.rows(); ++i) {
    for (Eigen::Index j = 0; j < large.cols(); ++j) large(i, j) = static_cast<double>((i + j) % 7);
  }
  TraceWriter writer(dir / "a.h5");
  writer.write("/large", large, "S");
  writer.write("/small", Eigen::MatrixXd(Eigen::MatrixXd::Ones(4, 1023)), "S");  // 4092 values
  writer.commit();

  const DatasetProperties properties = inspect_dataset(dir / "a.h5", "/large");
  EXPECT_EQ(properties.layout, H5D_CHUNKED);
  EXPECT_THAT(properties.chunk, ElementsAre(128u, 64u));  // whole rows, 64 KiB
  EXPECT_THAT(properties.filters, ElementsAre(H5Z_FILTER_SHUFFLE, H5Z_FILTER_DEFLATE));
  EXPECT_EQ(inspect_dataset(dir / "a.h5", "/small").layout, H5D_CONTIGUOUS);

  const auto raw_bytes = static_cast<std::uintmax_t>(large.size()) * sizeof(double);
  EXPECT_LT(fs::file_size(dir / "a.h5"), raw_bytes / 10 + 4 * 1023 * sizeof(double));
  const TraceReader reader(dir / "a.h5");
  EXPECT_EQ(reader.read_matrix("/large"), large);
}

TEST(TraceWriter, SplitsRowsLargerThanOneChunk) {
  const TempDir dir;
  TraceWriter writer(dir / "a.h5");
  writer.write("/wide", Eigen::MatrixXd(Eigen::MatrixXd::Constant(3, 20000, 2.0)), "V");
  writer.write("/long", std::vector<double>(100000, 1.0), "V");
  writer.write("/ints", std::vector<std::int32_t>(5000, 3), {5000}, "1");
  writer.commit();

  EXPECT_THAT(inspect_dataset(dir / "a.h5", "/wide").chunk, ElementsAre(1u, 8192u));
  EXPECT_THAT(inspect_dataset(dir / "a.h5", "/long").chunk, ElementsAre(8192u));
  EXPECT_THAT(inspect_dataset(dir / "a.h5", "/ints").chunk, ElementsAre(5000u));
  const TraceReader reader(dir / "a.h5");
  EXPECT_EQ(reader.read_matrix("/wide"), Eigen::MatrixXd::Constant(3, 20000, 2.0));
}

TEST(TraceWriter, LeavesNoFileWhenDestroyedWithoutCommit) {
  const TempDir dir;
  {
    TraceWriter writer(dir / "a.h5");
    writer.write("/x", std::vector<double>{1, 2}, "V");
    EXPECT_EQ(dir.files().size(), 1u);  // the temporary file
    EXPECT_FALSE(fs::exists(dir / "a.h5"));
  }
  EXPECT_TRUE(dir.files().empty());
}

TEST(TraceWriter, LeavesNoFileWhenAnExceptionUnwindsTheWriter) {
  const TempDir dir;
  const auto run = [&] {
    TraceWriter writer(dir / "a.h5");
    writer.write("/x", std::vector<double>{1, 2}, "V");
    writer.write("/x", std::vector<double>{1, 2}, "V");  // throws: already exists
    writer.commit();
  };
  EXPECT_THAT(user_error_message(run), HasSubstr("'/x' already exists"));
  EXPECT_TRUE(dir.files().empty());
}

TEST(TraceWriter, LeavesAnExistingFileUntouchedWithoutCommit) {
  const TempDir dir;
  std::ofstream(dir / "a.h5") << "previous";
  {
    TraceWriter writer(dir / "a.h5");
    writer.write("/x", std::vector<double>{1}, "V");
  }
  EXPECT_EQ(slurp(dir / "a.h5"), "previous");
  EXPECT_THAT(dir.files(), ElementsAre("a.h5"));
}

TEST(TraceWriter, CommitReplacesAnExistingFileAndRemovesTheTemporaryName) {
  const TempDir dir;
  std::ofstream(dir / "a.h5") << "previous";
  TraceWriter writer(dir / "a.h5");
  EXPECT_THAT(dir.files(), ElementsAre("a.h5", "a.h5.tmp" + std::to_string(::getpid())));
  writer.write("/x", std::vector<double>{1}, "V");
  writer.commit();

  EXPECT_THAT(dir.files(), ElementsAre("a.h5"));
  EXPECT_EQ(TraceReader(dir / "a.h5").read_flat("/x"), std::vector<double>{1});
}

TEST(TraceWriter, ThrowsUserErrorAndRemovesTheTemporaryFileWhenTheRenameFails) {
  const TempDir dir;
  fs::create_directories(dir / "a.h5" / "occupied");  // a folder stands at the final path
  {
    TraceWriter writer(dir / "a.h5");
    const std::string message = user_error_message([&] { writer.commit(); });
    EXPECT_THAT(message, HasSubstr((dir / "a.h5").string()));
    EXPECT_THAT(message, HasSubstr("cannot rename"));
  }
  EXPECT_THAT(dir.files(), ElementsAre("a.h5"));
  EXPECT_TRUE(fs::is_directory(dir / "a.h5" / "occupied"));
}

TEST(TraceWriter, RejectsUseAfterCommit) {
  const TempDir dir;
  TraceWriter writer(dir / "a.h5");
  writer.commit();
  EXPECT_THAT(user_error_message([&] { writer.create_group("/g"); }), HasSubstr("already committed"));
  EXPECT_THAT(user_error_message([&] { writer.commit(); }), HasSubstr("already committed"));
  EXPECT_TRUE(fs::exists(dir / "a.h5"));
}

TEST(TraceWriter, RejectsADatasetWithoutUnitsOrOverAGroup) {
  const TempDir dir;
  TraceWriter writer(dir / "a.h5");
  writer.create_group("/reads");
  EXPECT_THAT(user_error_message([&] { writer.write("/y", std::vector<double>{1}, ""); }), HasSubstr("no units"));
  EXPECT_THAT(user_error_message([&] { writer.write("/reads", std::vector<double>{1}, "V"); }),
              HasSubstr("'/reads' already exists"));
  writer.write("/d", std::vector<double>{1}, "V");
  EXPECT_THAT(user_error_message([&] { writer.write("/d/x", std::vector<double>{1}, "V"); }),
              HasSubstr("'/d' exists and is not a group"));
}

TEST(TraceWriter, ThrowsUserErrorNamingThePathWhenTheFolderIsMissing) {
  const TempDir dir;
  const fs::path path = dir / "no_such_folder" / "a.h5";
  const std::string message = user_error_message([&] { TraceWriter writer(path); });
  EXPECT_THAT(message, HasSubstr(path.string()));
  EXPECT_THAT(message, HasSubstr("does not exist"));
  EXPECT_FALSE(fs::exists(dir / "no_such_folder"));
}

TEST(TraceWriter, ThrowsUserErrorNamingThePathWhenTheParentIsAFile) {
  const TempDir dir;
  std::ofstream(dir / "file") << "x";
  const fs::path path = dir / "file" / "a.h5";
  const std::string message = user_error_message([&] { TraceWriter writer(path); });
  EXPECT_THAT(message, HasSubstr(path.string()));
  EXPECT_THAT(message, HasSubstr("is not a folder"));
}

TEST(TraceWriter, ThrowsUserErrorNamingThePathWhenTheFolderIsNotWritable) {
  const TempDir dir;
  fs::create_directory(dir / "locked");
  const auto read_only = fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                         fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec;
  fs::permissions(dir / "locked", read_only);
  const fs::path path = dir / "locked" / "a.h5";
  // Root may write anywhere: the writer then runs in a child process as the unprivileged user
  // 65534 ("nobody"), for whom the folder is read-only.
  EXPECT_EXIT(
      {
        if (::getuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) std::_Exit(3);
        const std::string message = user_error_message([&] { TraceWriter writer(path); });
        std::fprintf(stderr, "%s\n", message.c_str());
        std::_Exit(message.find(path.string()) != std::string::npos ? 0 : 1);
      },
      testing::ExitedWithCode(0), "not writable");
  fs::permissions(dir / "locked", fs::perms::owner_all);
  EXPECT_TRUE(fs::is_empty(dir / "locked"));
}

TEST(TraceWriter, WritesByteIdenticalFilesForIdenticalContent) {
  const TempDir dir;
  write_sample_trace(dir / "first.h5");
  // Object timestamps have a resolution of one second: were they recorded, the files would differ.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  write_sample_trace(dir / "second.h5");

  const std::string first = slurp(dir / "first.h5");
  EXPECT_GT(first.size(), 0u);
  EXPECT_TRUE(first == slurp(dir / "second.h5"));
}

TEST(TraceReader, ThrowsUserErrorNamingAMissingFile) {
  const TempDir dir;
  const std::string message = user_error_message([&] { TraceReader reader(dir / "missing.h5"); });
  EXPECT_THAT(message, HasSubstr((dir / "missing.h5").string()));
  EXPECT_THAT(message, HasSubstr("does not exist"));
}

TEST(TraceReader, ThrowsUserErrorForAFileThatIsNotHdf5) {
  const TempDir dir;
  std::ofstream(dir / "text.h5") << "not HDF5 at all\n";
  const std::string message = user_error_message([&] { TraceReader reader(dir / "text.h5"); });
  EXPECT_THAT(message, HasSubstr((dir / "text.h5").string()));
  EXPECT_THAT(message, HasSubstr("not an HDF5 file"));
}

TEST(TraceReader, ThrowsUserErrorNamingTheFileAndAMissingObject) {
  const TempDir dir;
  write_sample_trace(dir / "a.h5");
  const TraceReader reader(dir / "a.h5");
  const std::string file = "trace " + (dir / "a.h5").string() + ": ";

  EXPECT_EQ(user_error_message([&] { reader.read_matrix("/reads/0000/i_out"); }),
            file + "no dataset '/reads/0000/i_out'");
  EXPECT_EQ(user_error_message([&] { reader.shape("/nothing/here"); }), file + "no dataset '/nothing/here'");
  EXPECT_EQ(user_error_message([&] { reader.list("/reads/0009"); }), file + "no group '/reads/0009'");
  EXPECT_EQ(user_error_message([&] { reader.attribute_int("/", "missing"); }),
            file + "no attribute 'missing' on '/'");
  EXPECT_EQ(user_error_message([&] { reader.attribute_double("/gone", "x"); }), file + "no object '/gone'");
}

TEST(TraceReader, ExistsReportsGroupsDatasetsAndMissingPaths) {
  const TempDir dir;
  write_sample_trace(dir / "a.h5");
  const TraceReader reader(dir / "a.h5");
  EXPECT_TRUE(reader.exists("/"));
  EXPECT_TRUE(reader.exists("/array"));
  EXPECT_TRUE(reader.exists("/array/g_target"));
  EXPECT_TRUE(reader.exists("reads/0000"));
  EXPECT_FALSE(reader.exists("/reads/0001"));
  EXPECT_FALSE(reader.exists("/missing/deeper/still"));
  EXPECT_FALSE(reader.exists("/array/g_target/below_a_dataset"));
}

TEST(TraceReader, RejectsReadsOfTheWrongKind) {
  const TempDir dir;
  write_sample_trace(dir / "a.h5");
  const TraceReader reader(dir / "a.h5");
  EXPECT_THAT(user_error_message([&] { reader.attribute_int("/array", "r_wl_segment"); }),
              HasSubstr("attribute 'r_wl_segment' on '/array' is not an integer"));
  EXPECT_THAT(user_error_message([&] { reader.attribute_double("/", "card"); }), HasSubstr("is not a number"));
  EXPECT_THAT(user_error_message([&] { reader.attribute_string("/", "seed"); }), HasSubstr("is not a string"));
  EXPECT_THAT(user_error_message([&] { reader.attribute_double("/array", "taps"); }),
              HasSubstr("holds 3 values, not one"));
  EXPECT_THAT(user_error_message([&] { reader.read_matrix_int("/array/g_target"); }),
              HasSubstr("'/array/g_target' is not an integer dataset"));
  EXPECT_THAT(user_error_message([&] { reader.read_matrix("/array"); }), HasSubstr("'/array' is not a dataset"));
  EXPECT_THAT(user_error_message([&] { reader.list("/array/g_target"); }),
              HasSubstr("'/array/g_target' is not a group"));
}

// Files written by other tools (h5py, measurement scripts) use other integer, float and string types.
TEST(TraceReader, ReadsAttributesAndDatasetsStoredWithOtherTypes) {
  const TempDir dir;
  const fs::path path = dir / "other.h5";
  {
    const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const hid_t root = H5Gopen2(file, "/", H5P_DEFAULT);
    const hid_t scalar = H5Screate(H5S_SCALAR);
    const auto add_attribute = [&](hid_t object, const char* name, hid_t type, const void* value) {
      const hid_t attribute = H5Acreate2(object, name, type, scalar, H5P_DEFAULT, H5P_DEFAULT);
      H5Awrite(attribute, type, value);
      H5Aclose(attribute);
    };
    const std::uint8_t u8 = 200;
    const std::int16_t i16 = -300;
    const float f32 = 0.25f;
    const std::uint64_t huge = std::numeric_limits<std::uint64_t>::max();
    add_attribute(root, "u8", H5T_NATIVE_UINT8, &u8);
    add_attribute(root, "i16", H5T_NATIVE_INT16, &i16);
    add_attribute(root, "f32", H5T_NATIVE_FLOAT, &f32);
    add_attribute(root, "huge", H5T_NATIVE_UINT64, &huge);
    const hid_t fixed = H5Tcopy(H5T_C_S1);
    H5Tset_size(fixed, 8);
    H5Tset_strpad(fixed, H5T_STR_NULLPAD);
    add_attribute(root, "fixed", fixed, "mA\0\0\0\0\0\0");
    H5Tset_strpad(fixed, H5T_STR_SPACEPAD);
    add_attribute(root, "spaced", fixed, "ohm     ");

    const hid_t units_type = H5Tcopy(H5T_C_S1);  // fixed length, null-terminated
    H5Tset_size(units_type, 2);
    const hsize_t dims[2] = {2, 2};
    const hid_t space = H5Screate_simple(2, dims, nullptr);
    const auto add_dataset = [&](const char* name, hid_t file_type, hid_t memory_type, const void* values) {
      const hid_t dataset = H5Dcreate2(file, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      H5Dwrite(dataset, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values);
      add_attribute(dataset, "units", units_type, "A");
      H5Dclose(dataset);
    };
    const std::int64_t i64[4] = {1, -2, 3, -4};
    const std::int64_t too_big[4] = {1, std::int64_t{1} << 40, 3, 4};
    const float floats[4] = {0.5f, 1.5f, 2.5f, 3.5f};
    add_dataset("i64", H5T_STD_I64LE, H5T_NATIVE_INT64, i64);
    add_dataset("too_big", H5T_STD_I64LE, H5T_NATIVE_INT64, too_big);
    add_dataset("f32", H5T_IEEE_F32BE, H5T_NATIVE_FLOAT, floats);  // big-endian on disk
    H5Sclose(space);
    H5Tclose(units_type);
    H5Tclose(fixed);
    H5Sclose(scalar);
    H5Gclose(root);
    H5Fclose(file);
  }

  const TraceReader reader(path);
  EXPECT_EQ(reader.attribute_int("/", "u8"), 200);
  EXPECT_EQ(reader.attribute_int("/", "i16"), -300);
  EXPECT_EQ(reader.attribute_double("/", "i16"), -300.0);
  EXPECT_EQ(reader.attribute_double("/", "f32"), 0.25);
  EXPECT_THAT(reader.attribute_doubles("/", "f32"), ElementsAre(0.25));
  EXPECT_THAT(user_error_message([&] { reader.attribute_int("/", "huge"); }), HasSubstr("beyond the 64-bit"));
  EXPECT_EQ(reader.attribute_string("/", "fixed"), "mA");
  EXPECT_EQ(reader.attribute_string("/", "spaced"), "ohm");
  EXPECT_EQ(reader.units("/i64"), "A");

  MatrixI expected_ints(2, 2);
  expected_ints << 1, -2, 3, -4;
  EXPECT_EQ(reader.read_matrix_int("/i64"), expected_ints);
  EXPECT_THAT(user_error_message([&] { reader.read_matrix_int("/too_big"); }),
              HasSubstr("'/too_big' holds values out of the 32-bit integer range"));
  EXPECT_EQ(reader.read_matrix("/too_big")(0, 1), 1099511627776.0);
  EXPECT_THAT(reader.read_flat("/f32"), ElementsAre(0.5, 1.5, 2.5, 3.5));
}

}  // namespace
