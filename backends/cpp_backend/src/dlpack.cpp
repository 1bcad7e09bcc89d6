// DLPack import support: an Array over memory that another library owns.
//
// The Python side (needle_cpp/dlpack.py) consumes a DLPack capsule through NumPy
// (np.from_dlpack), which keeps the producer alive, then wraps the array's memory here.
// The Array holds a reference to that NumPy array and drops it when the Array dies, so
// the producer's memory lives exactly as long as needle uses it. Export needs no C++:
// a NumPy view over the Array's memory (holding the Array) is the producer.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <string>

#include "array.h"

namespace py = pybind11;

namespace needle_cpp {

namespace {

std::unique_ptr<Array> wrap_external(uintptr_t address, int64_t size, const std::string& dtype,
                                     py::object owner) {
  const char* kernel = "wrap_external";
  const Dtype d = parse_dtype(kernel, dtype);
  check_nonneg(kernel, "size", size);
  const size_t item = dtype_bytes(d);
  if (size > 0 && address == 0) value_error(kernel, "null address for a non-empty buffer");
  if (address % item != 0)
    value_error(kernel, "address " + std::to_string(address) + " is not aligned to the " +
                            std::to_string(item) + "-byte elements of " + dtype);
  if ((uint64_t)size > (uint64_t)(SIZE_MAX / 4) / item) value_error(kernel, "size too large");
  // The owner reference lives on the heap, released with the GIL held.
  auto* held = new py::object(std::move(owner));
  auto release = [held]() {
    py::gil_scoped_acquire gil;
    delete held;
  };
  return std::make_unique<Array>(reinterpret_cast<void*>(address), size, d, release);
}

}  // namespace

void bind_dlpack(py::module_& m) {
  m.def("wrap_external", &wrap_external, py::arg("address"), py::arg("size"), py::arg("dtype"),
        py::arg("owner"),
        "A buffer over `size` elements at `address`, owned by `owner` (kept alive until the "
        "buffer dies). Used to import DLPack tensors without copying.");
}

}  // namespace needle_cpp
