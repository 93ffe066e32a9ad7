#include "core/trace.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <limits>
#include <string_view>
#include <system_error>
#include <utility>

#include "core/error.hpp"
#include "core/files.hpp"

namespace xbar::core {

namespace fs = std::filesystem;

namespace {

constexpr hsize_t kChunkedFromElements = 4096;  // datasets this large are chunked and compressed
constexpr hsize_t kChunkBytes = 64 * 1024;      // upper bound of one chunk
constexpr unsigned kDeflateLevel = 4;

// Owns one HDF5 identifier and releases it with the matching close function.
template <herr_t (*Close)(hid_t)>
class Handle {
 public:
  explicit Handle(hid_t id = H5I_INVALID_HID) : id_(id) {}
  Handle(Handle&& other) noexcept : id_(std::exchange(other.id_, H5I_INVALID_HID)) {}
  Handle& operator=(Handle&& other) noexcept {
    std::swap(id_, other.id_);
    return *this;
  }
  ~Handle() {
    if (id_ >= 0) Close(id_);
  }

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_;
};

using Object = Handle<H5Oclose>;  // a group or a dataset
using Attribute = Handle<H5Aclose>;
using Dataspace = Handle<H5Sclose>;
using Datatype = Handle<H5Tclose>;
using PropertyList = Handle<H5Pclose>;

// Silences HDF5's automatic printing of its error stack while alive: failures are reported as
// UserErrors instead. The previous setting is restored afterwards.
class QuietHdf5 {
 public:
  QuietHdf5() {
    H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~QuietHdf5() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }
  QuietHdf5(const QuietHdf5&) = delete;
  QuietHdf5& operator=(const QuietHdf5&) = delete;

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

// The description of the innermost error on HDF5's error stack (the most specific reason of the
// last failed call), or "" if there is none. Must be called before any other HDF5 call.
std::string hdf5_error_detail() {
  std::string detail;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned n, const H5E_error2_t* error, void* out) -> herr_t {
        if (n == 0 && error->desc != nullptr) *static_cast<std::string*>(out) = error->desc;
        return 0;
      },
      &detail);
  // System call failures read "..., errno = 21, error message = 'Is a directory', buf = 0x..."
  // (with time stamps and addresses): keep only the system's message.
  const std::string_view marker = "error message = '";
  if (const std::size_t begin = detail.find(marker); begin != std::string::npos) {
    const std::size_t text = begin + marker.size();
    return detail.substr(text, detail.find('\'', text) - text);
  }
  return detail;
}

// An open HDF5 file and the path that names it in error messages.
struct FileRef {
  hid_t id;
  const fs::path& path;

  [[noreturn]] void fail(std::string_view what) const {
    throw UserError(fmt::format("trace {}: {}", path.string(), what));
  }
  // For a failed HDF5 call: appends HDF5's own reason.
  [[noreturn]] void fail_hdf5(std::string_view what) const {
    const std::string detail = hdf5_error_detail();
    fail(detail.empty() ? std::string(what) : fmt::format("{} ({})", what, detail));
  }
};

// File access shared by the writer and the reader: lock the file where the file system supports
// locks, and carry on without them where it does not (e.g. some network file systems).
PropertyList file_access_plist() {
  PropertyList fapl(H5Pcreate(H5P_FILE_ACCESS));
  H5Pset_file_locking(fapl.get(), true, true);
  return fapl;
}

// "/reads//0003/" -> {"reads", "0003"}; "/" and "" name the root group.
std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> names;
  std::size_t begin = 0;
  while (begin <= path.size()) {
    const std::size_t end = std::min(path.find('/', begin), path.size());
    if (end > begin) names.push_back(path.substr(begin, end - begin));
    begin = end + 1;
  }
  return names;
}

bool object_exists(hid_t file, const std::string& path) {
  // H5Lexists fails rather than returning false when an intermediate group is missing, so each
  // prefix is checked in turn; H5Oexists_by_name then rules out dangling soft links.
  std::string prefix;
  for (const std::string& name : split_path(path)) {
    prefix += "/" + name;
    if (H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
  }
  return prefix.empty() || H5Oexists_by_name(file, prefix.c_str(), H5P_DEFAULT) > 0;
}

// Opens the group at `group_path`, creating it and any missing parents.
Object open_or_create_group(const FileRef& file, const std::string& group_path) {
  PropertyList gcpl(H5Pcreate(H5P_GROUP_CREATE));
  H5Pset_obj_track_times(gcpl.get(), false);  // see TraceWriter::TraceWriter
  Object group(H5Oopen(file.id, "/", H5P_DEFAULT));
  std::string prefix;
  for (const std::string& name : split_path(group_path)) {
    prefix += "/" + name;
    const htri_t found = H5Lexists(group.get(), name.c_str(), H5P_DEFAULT);
    Object child(found > 0 ? H5Oopen(group.get(), name.c_str(), H5P_DEFAULT)
                           : H5Gcreate2(group.get(), name.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT));
    if (!child.valid()) file.fail_hdf5(fmt::format("cannot create group '{}'", prefix));
    if (H5Iget_type(child.get()) != H5I_GROUP) file.fail(fmt::format("'{}' exists and is not a group", prefix));
    group = std::move(child);
  }
  return group;
}

// Creates (or replaces) attribute `name` on `object` and writes `data` (nothing if it is empty).
void write_attribute(const FileRef& file, hid_t object, const std::string& object_path, const std::string& name,
                     hid_t file_type, hid_t memory_type, hid_t space, const void* data) {
  const std::string where = fmt::format("attribute '{}' on '{}'", name, object_path);
  if (H5Aexists(object, name.c_str()) > 0 && H5Adelete(object, name.c_str()) < 0) {
    file.fail_hdf5(fmt::format("cannot replace {}", where));
  }
  Attribute attribute(H5Acreate2(object, name.c_str(), file_type, space, H5P_DEFAULT, H5P_DEFAULT));
  if (!attribute.valid()) file.fail_hdf5(fmt::format("cannot create {}", where));
  if (data != nullptr && H5Awrite(attribute.get(), memory_type, data) < 0) {
    file.fail_hdf5(fmt::format("cannot write {}", where));
  }
}

// Strings are stored as variable-length UTF-8 (no size limit, and the empty string is allowed).
Datatype utf8_string_type() {
  Datatype type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  return type;
}

void write_string_attribute(const FileRef& file, hid_t object, const std::string& object_path,
                            const std::string& name, const std::string& value) {
  const Datatype type = utf8_string_type();
  const Dataspace scalar(H5Screate(H5S_SCALAR));
  const char* text = value.c_str();
  write_attribute(file, object, object_path, name, type.get(), type.get(), scalar.get(), &text);
}

void write_scalar_attribute(const FileRef& file, hid_t object, const std::string& object_path,
                            const std::string& name, hid_t file_type, hid_t memory_type, const void* value) {
  const Dataspace scalar(H5Screate(H5S_SCALAR));
  write_attribute(file, object, object_path, name, file_type, memory_type, scalar.get(), value);
}

// What an attribute of `object_path` is attached to: the dataset there if there is one, else the
// group there (created if missing).
Object open_attribute_owner(const FileRef& file, const std::string& object_path) {
  if (!object_exists(file.id, object_path)) return open_or_create_group(file, object_path);
  Object object(H5Oopen(file.id, object_path.c_str(), H5P_DEFAULT));
  if (!object.valid()) file.fail_hdf5(fmt::format("cannot open '{}'", object_path));
  return object;
}

hsize_t element_count(const std::vector<hsize_t>& dims) {
  hsize_t count = 1;
  for (hsize_t d : dims) count *= d;
  return count;
}

// Dataset creation properties: no timestamps; large datasets chunked, shuffled and deflated.
PropertyList dataset_creation_plist(const std::vector<hsize_t>& dims, hsize_t element_bytes) {
  PropertyList dcpl(H5Pcreate(H5P_DATASET_CREATE));
  H5Pset_obj_track_times(dcpl.get(), false);
  if (element_count(dims) >= kChunkedFromElements) {  // so no dimension is zero
    // Fill the chunk from the last dimension backwards: whole rows while they fit in kChunkBytes,
    // a part of one row when a single row is larger.
    std::vector<hsize_t> chunk(dims.size());
    hsize_t room = std::max<hsize_t>(1, kChunkBytes / element_bytes);  // elements still free in a chunk
    for (std::size_t d = dims.size(); d-- > 0;) {
      chunk[d] = std::clamp<hsize_t>(room, 1, dims[d]);
      room /= chunk[d];
    }
    H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data());
    H5Pset_shuffle(dcpl.get());
    H5Pset_deflate(dcpl.get(), kDeflateLevel);
  }
  return dcpl;
}

// Creates dataset `dataset_path` (parents on demand) of shape `dims` from row-major `data`.
void write_dataset(const FileRef& file, const std::string& dataset_path, const std::vector<hsize_t>& dims,
                   hid_t file_type, hid_t memory_type, const void* data, const std::string& units) {
  std::vector<std::string> names = split_path(dataset_path);
  if (names.empty()) file.fail(fmt::format("'{}' is not a dataset path", dataset_path));
  if (units.empty()) file.fail(fmt::format("dataset '{}' has no units (\"1\" if dimensionless)", dataset_path));
  if (object_exists(file.id, dataset_path)) file.fail(fmt::format("'{}' already exists", dataset_path));

  const std::string leaf = std::move(names.back());
  names.pop_back();
  std::string parent_path;
  for (const std::string& name : names) parent_path += "/" + name;
  const Object parent = open_or_create_group(file, parent_path);

  const Dataspace space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
  const PropertyList dcpl = dataset_creation_plist(dims, H5Tget_size(file_type));
  const Object dataset(H5Dcreate2(parent.get(), leaf.c_str(), file_type, space.get(), H5P_DEFAULT, dcpl.get(),
                                  H5P_DEFAULT));
  if (!dataset.valid()) file.fail_hdf5(fmt::format("cannot create dataset '{}'", dataset_path));
  if (element_count(dims) > 0 &&
      H5Dwrite(dataset.get(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
    file.fail_hdf5(fmt::format("cannot write dataset '{}'", dataset_path));
  }
  write_string_attribute(file, dataset.get(), dataset_path, "units", units);
}

std::vector<hsize_t> checked_dims(const FileRef& file, const std::string& dataset_path,
                                  const std::vector<std::size_t>& dims, std::size_t value_count) {
  std::vector<hsize_t> result(dims.begin(), dims.end());
  if (element_count(result) != value_count) {
    file.fail(fmt::format("dataset '{}': {} values do not fill the shape {}", dataset_path, value_count,
                          fmt::join(dims, "×")));
  }
  return result;
}

// The writer's file, or an error once it has been committed.
FileRef writable(hid_t id, const fs::path& path) {
  const FileRef file{id, path};
  if (id < 0) file.fail("the trace is already committed");
  return file;
}

// Why the temporary file of `final_path` could not be created; `detail` is HDF5's reason.
std::string creation_failure_reason(const fs::path& final_path, const std::string& detail) {
  const fs::path folder = final_path.has_parent_path() ? final_path.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::exists(folder, ec)) return fmt::format("the folder '{}' does not exist", folder.string());
  if (!fs::is_directory(folder, ec)) return fmt::format("'{}' is not a folder", folder.string());
  if (::access(folder.c_str(), W_OK) != 0) return fmt::format("the folder '{}' is not writable", folder.string());
  return detail.empty() ? "HDF5 gave no reason" : detail;
}

// ---- reading

Object open_object(const FileRef& file, const std::string& path, H5I_type_t expected) {
  const char* kind = expected == H5I_DATASET ? "dataset" : expected == H5I_GROUP ? "group" : "object";
  if (!object_exists(file.id, path)) file.fail(fmt::format("no {} '{}'", kind, path));
  Object object(H5Oopen(file.id, path.c_str(), H5P_DEFAULT));
  if (!object.valid()) file.fail_hdf5(fmt::format("cannot open '{}'", path));
  if (expected != H5I_BADID && H5Iget_type(object.get()) != expected) {
    file.fail(fmt::format("'{}' is not a {}", path, kind));
  }
  return object;
}

// An attribute opened for reading with its type class and number of elements.
struct OpenAttribute {
  Attribute attribute;
  Datatype type;
  H5T_class_t type_class;
  hssize_t count;
  std::string where;  // "attribute 'name' on '/path'"
};

OpenAttribute open_attribute(const FileRef& file, const std::string& object_path, const std::string& name) {
  const Object object = open_object(file, object_path, H5I_BADID);
  std::string where = fmt::format("attribute '{}' on '{}'", name, object_path);
  if (H5Aexists(object.get(), name.c_str()) <= 0) file.fail(fmt::format("no {}", where));
  Attribute attribute(H5Aopen(object.get(), name.c_str(), H5P_DEFAULT));
  if (!attribute.valid()) file.fail_hdf5(fmt::format("cannot open {}", where));
  Datatype type(H5Aget_type(attribute.get()));
  const Dataspace space(H5Aget_space(attribute.get()));
  const H5T_class_t type_class = H5Tget_class(type.get());
  const hssize_t count = H5Sget_simple_extent_npoints(space.get());
  return {std::move(attribute), std::move(type), type_class, count, std::move(where)};
}

void require_single_value(const FileRef& file, const OpenAttribute& attribute) {
  if (attribute.count != 1) {
    file.fail(fmt::format("{} holds {} values, not one", attribute.where, attribute.count));
  }
}

void read_attribute(const FileRef& file, const OpenAttribute& attribute, hid_t memory_type, void* out) {
  if (H5Aread(attribute.attribute.get(), memory_type, out) < 0) {
    file.fail_hdf5(fmt::format("cannot read {}", attribute.where));
  }
}

// Makes a data conversion that overflows the memory type fail instead of clipping, and records it.
H5T_conv_ret_t abort_on_overflow(H5T_conv_except_t except, hid_t, hid_t, void*, void*, void* overflowed) {
  if (except != H5T_CONV_EXCEPT_RANGE_HI && except != H5T_CONV_EXCEPT_RANGE_LOW) return H5T_CONV_UNHANDLED;
  *static_cast<bool*>(overflowed) = true;
  return H5T_CONV_ABORT;
}

std::vector<hsize_t> dataset_dims(hid_t dataset) {
  const Dataspace space(H5Dget_space(dataset));
  std::vector<hsize_t> dims(static_cast<std::size_t>(std::max(0, H5Sget_simple_extent_ndims(space.get()))));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return dims;
}

template <typename T>
struct Array {
  std::vector<hsize_t> dims;
  std::vector<T> values;  // row-major
};

// Reads a whole numeric dataset converted to `memory_type` (an integer dataset only if
// `integers_only`).
template <typename T>
Array<T> read_dataset(const FileRef& file, const std::string& dataset_path, hid_t memory_type, bool integers_only) {
  const Object dataset = open_object(file, dataset_path, H5I_DATASET);
  const Datatype type(H5Dget_type(dataset.get()));
  const H5T_class_t type_class = H5Tget_class(type.get());
  if (integers_only ? type_class != H5T_INTEGER : type_class != H5T_INTEGER && type_class != H5T_FLOAT) {
    file.fail(fmt::format("dataset '{}' is not {}", dataset_path, integers_only ? "an integer dataset" : "numeric"));
  }

  Array<T> array;
  array.dims = dataset_dims(dataset.get());
  array.values.resize(element_count(array.dims));
  if (array.values.empty()) return array;

  bool overflowed = false;
  const PropertyList dxpl(H5Pcreate(H5P_DATASET_XFER));
  H5Pset_type_conv_cb(dxpl.get(), abort_on_overflow, &overflowed);
  if (H5Dread(dataset.get(), memory_type, H5S_ALL, H5S_ALL, dxpl.get(), array.values.data()) < 0) {
    // Only reading into int32 can overflow (e.g. an int64 dataset written by another tool).
    if (overflowed) file.fail(fmt::format("dataset '{}' holds values out of the 32-bit integer range", dataset_path));
    file.fail_hdf5(fmt::format("cannot read dataset '{}'", dataset_path));
  }
  return array;
}

// A 1-D array as a column vector, a 2-D array as it is.
template <typename T>
Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic> to_matrix(const FileRef& file, const std::string& dataset_path,
                                                           const Array<T>& array) {
  const std::size_t rank = array.dims.size();
  if (rank != 1 && rank != 2) {
    file.fail(fmt::format("dataset '{}' is {}-D; a matrix must be 1-D or 2-D", dataset_path, rank));
  }
  const auto rows = static_cast<Eigen::Index>(array.dims[0]);
  const auto cols = rank == 2 ? static_cast<Eigen::Index>(array.dims[1]) : Eigen::Index{1};
  using RowMajor = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  return Eigen::Map<const RowMajor>(array.values.data(), rows, cols);
}

}  // namespace

// ---- TraceWriter

TraceWriter::TraceWriter(fs::path final_path)
    : final_path_(std::move(final_path)), temp_path_(temporary_path_for(final_path_)) {
  const QuietHdf5 quiet;
  const PropertyList fcpl(H5Pcreate(H5P_FILE_CREATE));
  // No object timestamps, so the same content gives the same bytes. In the default (oldest) file
  // format only datasets record them, but groups do in newer formats; the file creation list
  // covers the root group.
  H5Pset_obj_track_times(fcpl.get(), false);
  const PropertyList fapl = file_access_plist();
  file_id_ = H5Fcreate(temp_path_.c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get());
  if (file_id_ < 0) {
    const std::string detail = hdf5_error_detail();
    std::error_code ignored;
    fs::remove(temp_path_, ignored);  // in case the file was created but could not be initialised
    throw UserError(fmt::format("trace {}: cannot create the file: {}", final_path_.string(),
                                creation_failure_reason(final_path_, detail)));
  }
}

TraceWriter::~TraceWriter() {
  if (file_id_ >= 0) {
    const QuietHdf5 quiet;
    H5Fclose(file_id_);
  }
  if (!committed_) {
    std::error_code ignored;
    fs::remove(temp_path_, ignored);
  }
}

void TraceWriter::create_group(const std::string& group_path) {
  const QuietHdf5 quiet;
  open_or_create_group(writable(file_id_, final_path_), group_path);
}

void TraceWriter::set_attribute(const std::string& object_path, const std::string& name, double value) {
  const QuietHdf5 quiet;
  const FileRef file = writable(file_id_, final_path_);
  write_scalar_attribute(file, open_attribute_owner(file, object_path).get(), object_path, name, H5T_IEEE_F64LE,
                         H5T_NATIVE_DOUBLE, &value);
}

void TraceWriter::set_attribute(const std::string& object_path, const std::string& name, std::int64_t value) {
  const QuietHdf5 quiet;
  const FileRef file = writable(file_id_, final_path_);
  write_scalar_attribute(file, open_attribute_owner(file, object_path).get(), object_path, name, H5T_STD_I64LE,
                         H5T_NATIVE_INT64, &value);
}

void TraceWriter::set_attribute(const std::string& object_path, const std::string& name, const std::string& value) {
  const QuietHdf5 quiet;
  const FileRef file = writable(file_id_, final_path_);
  write_string_attribute(file, open_attribute_owner(file, object_path).get(), object_path, name, value);
}

void TraceWriter::set_attribute(const std::string& object_path, const std::string& name,
                                const std::vector<double>& values) {
  const QuietHdf5 quiet;
  const FileRef file = writable(file_id_, final_path_);
  const hsize_t size = values.size();
  const Dataspace space(H5Screate_simple(1, &size, nullptr));
  write_attribute(file, open_attribute_owner(file, object_path).get(), object_path, name, H5T_IEEE_F64LE,
                  H5T_NATIVE_DOUBLE, space.get(), values.empty() ? nullptr : values.data());
}

void TraceWriter::write(const std::string& dataset_path, const Eigen::MatrixXd& values, const std::string& units) {
  const QuietHdf5 quiet;
  const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> row_major = values;
  const std::vector<hsize_t> dims{static_cast<hsize_t>(values.rows()), static_cast<hsize_t>(values.cols())};
  write_dataset(writable(file_id_, final_path_), dataset_path, dims, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                row_major.data(), units);
}

void TraceWriter::write(const std::string& dataset_path, const MatrixI& values, const std::string& units) {
  const QuietHdf5 quiet;
  const Eigen::Matrix<std::int32_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> row_major = values;
  const std::vector<hsize_t> dims{static_cast<hsize_t>(values.rows()), static_cast<hsize_t>(values.cols())};
  write_dataset(writable(file_id_, final_path_), dataset_path, dims, H5T_STD_I32LE, H5T_NATIVE_INT32,
                row_major.data(), units);
}

void TraceWriter::write(const std::string& dataset_path, const std::vector<double>& values, const std::string& units) {
  write(dataset_path, values, {values.size()}, units);
}

void TraceWriter::write(const std::string& dataset_path, const std::vector<double>& values,
                        const std::vector<std::size_t>& dims, const std::string& units) {
  const QuietHdf5 quiet;
  const FileRef file = writable(file_id_, final_path_);
  write_dataset(file, dataset_path, checked_dims(file, dataset_path, dims, values.size()), H5T_IEEE_F64LE,
                H5T_NATIVE_DOUBLE, values.data(), units);
}

void TraceWriter::write(const std::string& dataset_path, const std::vector<std::int32_t>& values,
                        const std::vector<std::size_t>& dims, const std::string& units) {
  const QuietHdf5 quiet;
  const FileRef file = writable(file_id_, final_path_);
  write_dataset(file, dataset_path, checked_dims(file, dataset_path, dims, values.size()), H5T_STD_I32LE,
                H5T_NATIVE_INT32, values.data(), units);
}

void TraceWriter::commit() {
  const QuietHdf5 quiet;
  const FileRef file = writable(file_id_, final_path_);
  const herr_t closed = H5Fclose(file_id_);
  file_id_ = -1;
  if (closed < 0) file.fail_hdf5("cannot close the temporary file");
  std::error_code ec;
  fs::rename(temp_path_, final_path_, ec);  // replaces an existing file
  if (ec) file.fail(fmt::format("cannot rename '{}' to the final path: {}", temp_path_.string(), ec.message()));
  committed_ = true;
}

// ---- TraceReader

TraceReader::TraceReader(const fs::path& path) : path_(path) {
  const QuietHdf5 quiet;
  const FileRef file{-1, path_};
  std::error_code ec;
  if (!fs::exists(path_, ec)) file.fail("the file does not exist");
  const PropertyList fapl = file_access_plist();
  file_id_ = H5Fopen(path_.c_str(), H5F_ACC_RDONLY, fapl.get());
  if (file_id_ < 0) {
    const std::string detail = hdf5_error_detail();
    if (H5Fis_hdf5(path_.c_str()) == 0) file.fail("not an HDF5 file");
    file.fail(fmt::format("cannot open the file ({})", detail));
  }
}

TraceReader::~TraceReader() {
  if (file_id_ >= 0) {
    const QuietHdf5 quiet;
    H5Fclose(file_id_);
  }
}

bool TraceReader::exists(const std::string& object_path) const {
  const QuietHdf5 quiet;
  return object_exists(file_id_, object_path);
}

std::vector<std::string> TraceReader::list(const std::string& group_path) const {
  const QuietHdf5 quiet;
  const FileRef file{file_id_, path_};
  const Object group = open_object(file, group_path, H5I_GROUP);
  std::vector<std::string> names;
  // Iterating over the name index in increasing order yields the names sorted.
  const herr_t status = H5Literate(
      group.get(), H5_INDEX_NAME, H5_ITER_INC, nullptr,
      [](hid_t, const char* name, const H5L_info_t*, void* out) -> herr_t {
        static_cast<std::vector<std::string>*>(out)->emplace_back(name);
        return 0;
      },
      &names);
  if (status < 0) file.fail_hdf5(fmt::format("cannot list group '{}'", group_path));
  return names;
}

double TraceReader::attribute_double(const std::string& object_path, const std::string& name) const {
  const QuietHdf5 quiet;
  const FileRef file{file_id_, path_};
  const OpenAttribute attribute = open_attribute(file, object_path, name);
  if (attribute.type_class != H5T_INTEGER && attribute.type_class != H5T_FLOAT) {
    file.fail(fmt::format("{} is not a number", attribute.where));
  }
  require_single_value(file, attribute);
  double value = 0;
  read_attribute(file, attribute, H5T_NATIVE_DOUBLE, &value);
  return value;
}

std::int64_t TraceReader::attribute_int(const std::string& object_path, const std::string& name) const {
  const QuietHdf5 quiet;
  const FileRef file{file_id_, path_};
  const OpenAttribute attribute = open_attribute(file, object_path, name);
  if (attribute.type_class != H5T_INTEGER) file.fail(fmt::format("{} is not an integer", attribute.where));
  require_single_value(file, attribute);
  // H5Aread takes no conversion callback, so the one type that may not fit (uint64) is read as it is.
  if (H5Tget_sign(attribute.type.get()) == H5T_SGN_NONE && H5Tget_size(attribute.type.get()) >= 8) {
    std::uint64_t value = 0;
    read_attribute(file, attribute, H5T_NATIVE_UINT64, &value);
    if (value > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      file.fail(fmt::format("{} is {}, beyond the 64-bit signed range", attribute.where, value));
    }
    return static_cast<std::int64_t>(value);
  }
  std::int64_t value = 0;
  read_attribute(file, attribute, H5T_NATIVE_INT64, &value);
  return value;
}

std::string TraceReader::attribute_string(const std::string& object_path, const std::string& name) const {
  const QuietHdf5 quiet;
  const FileRef file{file_id_, path_};
  const OpenAttribute attribute = open_attribute(file, object_path, name);
  if (attribute.type_class != H5T_STRING) file.fail(fmt::format("{} is not a string", attribute.where));
  require_single_value(file, attribute);

  if (H5Tis_variable_str(attribute.type.get()) > 0) {
    const Datatype memory_type = utf8_string_type();
    H5Tset_cset(memory_type.get(), H5Tget_cset(attribute.type.get()));
    char* text = nullptr;
    read_attribute(file, attribute, memory_type.get(), &text);
    std::string value = text != nullptr ? text : "";
    H5free_memory(text);
    return value;
  }
  // Fixed length: read the raw characters, then drop the padding.
  std::string value(H5Tget_size(attribute.type.get()), '\0');
  read_attribute(file, attribute, attribute.type.get(), value.data());
  if (H5Tget_strpad(attribute.type.get()) == H5T_STR_SPACEPAD) {
    value.erase(value.find_last_not_of(' ') + 1);
  } else {
    value.erase(std::min(value.find('\0'), value.size()));
  }
  return value;
}

std::vector<double> TraceReader::attribute_doubles(const std::string& object_path, const std::string& name) const {
  const QuietHdf5 quiet;
  const FileRef file{file_id_, path_};
  const OpenAttribute attribute = open_attribute(file, object_path, name);
  if (attribute.type_class != H5T_INTEGER && attribute.type_class != H5T_FLOAT) {
    file.fail(fmt::format("{} is not numeric", attribute.where));
  }
  std::vector<double> values(static_cast<std::size_t>(std::max<hssize_t>(0, attribute.count)));
  if (!values.empty()) read_attribute(file, attribute, H5T_NATIVE_DOUBLE, values.data());
  return values;
}

std::vector<std::size_t> TraceReader::shape(const std::string& dataset_path) const {
  const QuietHdf5 quiet;
  const std::vector<hsize_t> dims = dataset_dims(open_object({file_id_, path_}, dataset_path, H5I_DATASET).get());
  return {dims.begin(), dims.end()};
}

Eigen::MatrixXd TraceReader::read_matrix(const std::string& dataset_path) const {
  const QuietHdf5 quiet;
  const FileRef file{file_id_, path_};
  return to_matrix(file, dataset_path, read_dataset<double>(file, dataset_path, H5T_NATIVE_DOUBLE, false));
}

MatrixI TraceReader::read_matrix_int(const std::string& dataset_path) const {
  const QuietHdf5 quiet;
  const FileRef file{file_id_, path_};
  return to_matrix(file, dataset_path, read_dataset<std::int32_t>(file, dataset_path, H5T_NATIVE_INT32, true));
}

std::vector<double> TraceReader::read_flat(const std::string& dataset_path) const {
  const QuietHdf5 quiet;
  return read_dataset<double>({file_id_, path_}, dataset_path, H5T_NATIVE_DOUBLE, false).values;
}

std::string TraceReader::units(const std::string& dataset_path) const {
  const QuietHdf5 quiet;
  open_object({file_id_, path_}, dataset_path, H5I_DATASET);  // a clear error if it is not a dataset
  return attribute_string(dataset_path, "units");
}

}  // namespace xbar::core
