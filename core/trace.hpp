// HDF5 trace files: a writer that never leaves a half-written file, and a reader for tests and tools.
//
// Conventions (README "Trace schema"): SI units, every dataset has a string attribute `units`
// ("1" for dimensionless, "" is never written); datasets are stored row-major with the shape
// given (an Eigen matrix of r×c is stored as r×c); datasets of 4096 elements or more are chunked
// and deflate-compressed; object modification times are not recorded, so the same content
// gives byte-identical files.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace xbar::core {

using MatrixI = Eigen::Matrix<std::int32_t, Eigen::Dynamic, Eigen::Dynamic>;

// Writes to "<final>.tmp<pid>" beside the final path; commit() closes and renames it to the final
// path. If the writer is destroyed without commit() (an error happened), the temporary file is
// removed and the final path is never created or touched.
class TraceWriter {
 public:
  // Throws UserError naming the path if the temporary file cannot be created (e.g. the folder
  // does not exist or is not writable).
  explicit TraceWriter(std::filesystem::path final_path);
  ~TraceWriter();
  TraceWriter(const TraceWriter&) = delete;
  TraceWriter& operator=(const TraceWriter&) = delete;

  // Groups are created on demand: "/reads/0003" creates "/reads" and "/reads/0003".
  void create_group(const std::string& group_path);

  // Attributes on a group ("/" for the root) or on a dataset path; group created if missing.
  void set_attribute(const std::string& object_path, const std::string& name, double value);
  void set_attribute(const std::string& object_path, const std::string& name, std::int64_t value);
  void set_attribute(const std::string& object_path, const std::string& name, const std::string& value);
  void set_attribute(const std::string& object_path, const std::string& name, const std::vector<double>& values);

  // Datasets (parent groups created on demand), each with a `units` attribute.
  void write(const std::string& dataset_path, const Eigen::MatrixXd& values, const std::string& units);
  void write(const std::string& dataset_path, const MatrixI& values, const std::string& units);
  void write(const std::string& dataset_path, const std::vector<double>& values, const std::string& units);
  // N-dimensional double data in row-major (C) order; product(dims) == values.size().
  void write(const std::string& dataset_path, const std::vector<double>& values,
             const std::vector<std::size_t>& dims, const std::string& units);
  void write(const std::string& dataset_path, const std::vector<std::int32_t>& values,
             const std::vector<std::size_t>& dims, const std::string& units);

  // Flushes, closes and renames the temporary file to the final path.
  void commit();

  const std::filesystem::path& final_path() const { return final_path_; }

 private:
  std::filesystem::path final_path_;
  std::filesystem::path temp_path_;
  std::int64_t file_id_ = -1;  // hid_t
  bool committed_ = false;
};

// Reads traces (and measured-data files of the same schema). Throws UserError naming the file and
// the object path when something is missing or of the wrong type.
class TraceReader {
 public:
  explicit TraceReader(const std::filesystem::path& path);
  ~TraceReader();
  TraceReader(const TraceReader&) = delete;
  TraceReader& operator=(const TraceReader&) = delete;

  bool exists(const std::string& object_path) const;
  std::vector<std::string> list(const std::string& group_path) const;  // child names, sorted

  double attribute_double(const std::string& object_path, const std::string& name) const;
  std::int64_t attribute_int(const std::string& object_path, const std::string& name) const;
  std::string attribute_string(const std::string& object_path, const std::string& name) const;
  std::vector<double> attribute_doubles(const std::string& object_path, const std::string& name) const;

  std::vector<std::size_t> shape(const std::string& dataset_path) const;
  // 2-D dataset as a matrix (1-D datasets come back as a column vector n×1).
  Eigen::MatrixXd read_matrix(const std::string& dataset_path) const;
  MatrixI read_matrix_int(const std::string& dataset_path) const;
  // Any rank, flattened row-major.
  std::vector<double> read_flat(const std::string& dataset_path) const;
  std::string units(const std::string& dataset_path) const;  // the `units` attribute

 private:
  std::filesystem::path path_;
  std::int64_t file_id_ = -1;
};

}  // namespace xbar::core
