// Python bindings: the Array handle, every kernel of the contract and a few controls.
#include <omp.h>
#include <pybind11/eval.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>

#include "isa.h"
#include "kernels.h"
#include "parallel.h"

namespace py = pybind11;
using namespace needle_cpp;

namespace needle_cpp {
void bind_perf(py::module_& m);  // perf_module.cpp: matmul_t, reduce_*_mid, programs, cache
void bind_fused_norm(py::module_& m);  // fused_norm_module.cpp: batch/layer norm, xent
void bind_fused_seq(py::module_& m);  // fused_seq.cpp: embedding rows, LSTM cell, attention
void bind_conv_ext(py::module_& m);   // conv_ext.cpp: padded convolution and its gradients
void bind_lstm_layer(py::module_& m);  // lstm_layer.cpp: an LSTM layer over a sequence
void bind_attention(py::module_& m);  // attention.cpp: fused multi-head attention
void bind_dlpack(py::module_& m);  // dlpack.cpp: buffers over external memory (DLPack import)
void bind_random(py::module_& m);  // random_mt.cpp: NumPy's MT19937 stream as Bernoulli draws
}  // namespace needle_cpp

namespace {

using Release = py::call_guard<py::gil_scoped_release>;

std::unique_ptr<Array> alloc(int64_t size, const std::string& dtype) {
  const Dtype d = parse_dtype("alloc", dtype);
  if (size < 0) value_error("alloc", "negative size " + std::to_string(size));
  return std::make_unique<Array>(size, d);
}

/// A buffer over `size` elements of `parent` from element `offset`, sharing its memory.
/// The view holds a reference to the parent's Python object, dropped when the view dies,
/// so the parent's memory outlives every view of it. Kernels compare handles (`&out ==
/// &a`) to find in-place calls; two views over overlapping memory are distinct handles, so
/// a caller must never pass them to one call (needle.compile's planner never does: an
/// instruction's outputs never overlap its inputs).
std::unique_ptr<Array> buffer_view(const py::object& parent, int64_t offset, int64_t size) {
  const char* k = "buffer_view";
  if (!py::isinstance<Array>(parent))
    type_error(k, "expected a cpp buffer, got " +
                      std::string(py::str(py::type::of(parent).attr("__name__"))));
  const Array& a = parent.cast<const Array&>();
  check_nonneg(k, "offset", offset);
  check_nonneg(k, "size", size);
  const size_t item = dtype_bytes(a.dtype());
  if ((uint64_t)offset % (64 / item) != 0)
    value_error(k, "offset " + std::to_string(offset) + " is not a multiple of " +
                       std::to_string(64 / item) + " " + dtype_name(a.dtype()) +
                       " elements (64 bytes)");
  if (offset > a.size() || size > a.size() - offset)
    value_error(k, "elements " + std::to_string(offset) + " .. " + std::to_string(offset) + " + " +
                       std::to_string(size) + " reach past a buffer of " + std::to_string(a.size()));
  char* start = static_cast<char*>(a.raw()) + (a.size() ? (size_t)offset * item : 0);
  // The parent reference lives on the heap, released with the GIL held.
  auto* held = new py::object(parent);
  auto release = [held]() {
    py::gil_scoped_acquire gil;
    delete held;
  };
  return std::make_unique<Array>(start, size, a.dtype(), release);
}

void from_numpy(const py::object& src, Array& out) {
  with_dtype(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    // forcecast converts like NumPy's assignment does (the reference backend casts too).
    auto arr = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(src);
    if (!arr) {
      PyErr_Clear();
      type_error("from_numpy", std::string("cannot convert a ") +
                                   std::string(py::str(py::type::of(src).attr("__name__"))) +
                                   " to a " + dtype_name(out.dtype()) + " array");
    }
    if ((int64_t)arr.size() != out.size())
      value_error("from_numpy", "source has " + std::to_string(arr.size()) +
                                    " elements, buffer " + std::to_string(out.size()));
    // Batches of host data are usually read cold from memory (a data set larger than the
    // caches): more threads fetch them faster than one.
    const T* src = arr.data();
    T* dst = static_cast<T*>(out.raw());
    parallel_chunks(out.size(), kGrain / 4, threads_for(saturating_mul(out.size(), 4)),
                    [&](int64_t b, int64_t e) {
                      std::memcpy(dst + b, src + b, (size_t)(e - b) * sizeof(T));
                    });
  });
}

py::array to_numpy(const Array& a, const Shape& shape, const Shape& strides, int64_t offset) {
  const View v = make_view("to_numpy", a, shape, strides, offset);
  std::vector<py::ssize_t> dims(shape.begin(), shape.end());
  py::array result;
  try {  // NumPy refuses 4 TiB or (0, 2**62): say which kernel asked
    result = a.dtype() == Dtype::Float32 ? py::array(py::dtype::of<float>(), dims)
                                         : py::array(py::dtype::of<double>(), dims);
  } catch (py::error_already_set& e) {
    const std::string what = "to_numpy: " + std::string(py::str(e.value()));
    if (e.matches(PyExc_MemoryError)) {
      PyErr_SetString(PyExc_MemoryError, what.c_str());
      throw py::error_already_set();
    }
    throw std::invalid_argument(what);
  }
  void* dst = result.mutable_data();
  {
    py::gil_scoped_release release;
    gather_view(a, v, dst);
  }
  return result;
}

void set_num_threads(int n) {
  if (n < 1) value_error("set_num_threads", "need at least 1 thread, got " + std::to_string(n));
  omp_set_num_threads(n);
}

struct Named {
  int op;
  const char* ewise;
  const char* scalar;
};

const Named kBinary[] = {
    {kAdd, "ewise_add", "scalar_add"},       {kSub, "ewise_sub", "scalar_sub"},
    {kMul, "ewise_mul", "scalar_mul"},       {kDiv, "ewise_div", "scalar_div"},
    {kPower, "ewise_power", "scalar_power"}, {kMaximum, "ewise_maximum", "scalar_maximum"},
    {kEq, "ewise_eq", "scalar_eq"},          {kNe, "ewise_ne", "scalar_ne"},
    {kLt, "ewise_lt", "scalar_lt"},          {kLe, "ewise_le", "scalar_le"},
    {kGt, "ewise_gt", "scalar_gt"},          {kGe, "ewise_ge", "scalar_ge"},
};
const Named kUnary[] = {
    {kNeg, "ewise_neg", nullptr}, {kAbs, "ewise_abs", nullptr},   {kLog, "ewise_log", nullptr},
    {kExp, "ewise_exp", nullptr}, {kTanh, "ewise_tanh", nullptr}, {kSqrt, "ewise_sqrt", nullptr},
    {kSin, "ewise_sin", nullptr}, {kCos, "ewise_cos", nullptr},
};

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "needle-cpp kernels: flat buffers, destination-passing style (see needle.backends.contract)";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const TypeErrorEx& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    }
  });

  // The address as an int that can also be called: ``h.ptr`` (an int) and the course's
  // ``h.ptr()`` both work; the class is the contract's (needle.backends.contract).
  // Leaked on purpose: it must outlive the module at shutdown.
  auto* handle_ptr =
      new py::object(py::module_::import("needle.backends.contract").attr("HandlePtr"));
  m.attr("HandlePtr") = *handle_ptr;

  py::class_<Array>(m, "Array", "A flat, 64-byte aligned buffer of float32 or float64 elements.")
      .def_property_readonly("size", &Array::size, "Number of elements.")
      .def_property_readonly("dtype", [](const Array& a) { return dtype_name(a.dtype()); },
                             "'float32' or 'float64'.")
      .def_property_readonly(
          "ptr", [handle_ptr](const Array& a) { return (*handle_ptr)((uintptr_t)a.raw()); },
          "Address of the first element: an int, also callable as ptr() (the course API).")
      .def("__repr__", [](const Array& a) {
        return "Array(size=" + std::to_string(a.size()) + ", dtype=" + dtype_name(a.dtype()) + ")";
      });

  // --- buffers ---
  m.def("alloc", &alloc, py::arg("size"), py::arg("dtype"), "A new uninitialised buffer.");
  m.def("buffer_view", &buffer_view, py::arg("a"), py::arg("offset"), py::arg("size"),
        "A buffer of `size` elements over a's memory from element `offset` (64-byte aligned; "
        "keeps a alive).");
  m.def("from_numpy", &from_numpy, py::arg("src"), py::arg("out"), "Copy a NumPy array into out.");
  m.def("to_numpy", &to_numpy, py::arg("a"), py::arg("shape"), py::arg("strides"), py::arg("offset"),
        "A new NumPy array holding the strided view of a.");
  m.def("fill", &fill, py::arg("out"), py::arg("value"), Release(), "Set every element of out.");
  m.def("astype", &astype, py::arg("a"), py::arg("out"), Release(),
        "Convert the first out.size elements of a to out's dtype.");
  // --- layout ---
  m.def("compact", &compact, py::arg("a"), py::arg("out"), py::arg("shape"), py::arg("strides"),
        py::arg("offset"), Release(), "Write the strided view of a into out, row-major.");
  m.def("ewise_setitem", &ewise_setitem, py::arg("a"), py::arg("out"), py::arg("shape"),
        py::arg("strides"), py::arg("offset"), Release(), "Write compact a into a strided view of out.");
  m.def("scalar_setitem", &scalar_setitem, py::arg("size"), py::arg("value"), py::arg("out"),
        py::arg("shape"), py::arg("strides"), py::arg("offset"), Release(),
        "Set every element of a strided view of out to value.");
  // --- element-wise ---
  for (const Named& k : kBinary) {
    const int op = k.op;
    const char* en = k.ewise;
    const char* sn = k.scalar;
    m.def(en, [op, en](const Array& a, const Array& b, Array& out) { ewise_binary(op, en, a, b, out); },
          py::arg("a"), py::arg("b"), py::arg("out"), Release());
    m.def(sn, [op, sn](const Array& a, double value, Array& out) { scalar_binary(op, sn, a, value, out); },
          py::arg("a"), py::arg("value"), py::arg("out"), Release());
  }
  for (const Named& k : kUnary) {
    const int op = k.op;
    const char* en = k.ewise;
    m.def(en, [op, en](const Array& a, Array& out) { ewise_unary(op, en, a, out); }, py::arg("a"),
          py::arg("out"), Release());
  }
  m.def("ewise_where", &ewise_where, py::arg("cond"), py::arg("a"), py::arg("b"), py::arg("out"),
        Release(), "out = a where cond != 0 else b.");
  // --- reductions and matmul ---
  m.def("reduce_sum", &reduce_sum, py::arg("a"), py::arg("out"), py::arg("reduce_size"), Release());
  m.def("reduce_max", &reduce_max, py::arg("a"), py::arg("out"), py::arg("reduce_size"), Release());
  m.def("reduce_argmax", &reduce_argmax, py::arg("a"), py::arg("out"), py::arg("reduce_size"), Release());
  m.def("logsumexp_last", &logsumexp_last, py::arg("a"), py::arg("out"), py::arg("reduce_size"), Release());
  m.def("softmax_last", &softmax_last, py::arg("a"), py::arg("out"), py::arg("reduce_size"), Release());
  m.def("matmul", &matmul, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("m"), py::arg("n"),
        py::arg("p"), Release(), "Compact (m, n) @ (n, p) -> compact (m, p).");
  m.def("batched_matmul", &batched_matmul, py::arg("a"), py::arg("b"), py::arg("out"),
        py::arg("batch"), py::arg("m"), py::arg("n"), py::arg("p"), Release());
  m.def("conv2d_nhwc", &conv2d_nhwc, py::arg("x"), py::arg("w"), py::arg("out"), py::arg("n"),
        py::arg("h"), py::arg("w_"), py::arg("c_in"), py::arg("k"), py::arg("c_out"),
        py::arg("stride"), Release(), "Valid convolution of NHWC x with KKIO weights w.");
  m.def("synchronize", []() {}, "No-op: CPU kernels finish before they return.");
  // --- controls (not part of the contract) ---
  m.def("set_num_threads", &set_num_threads, py::arg("n"), "Threads for the parallel kernels.");
  m.def("get_num_threads", []() { return omp_get_max_threads(); });
  m.def("simd_level", &simd_level, "The instruction set in use: 'avx512', 'avx2' or 'scalar'.");
  m.def("best_simd_level", &best_simd_level, "The best instruction set this CPU supports.");
  m.def("set_simd_level", &set_simd_level, py::arg("level"),
        "Use a lower instruction set (for tests and comparisons).");
  bind_perf(m);
  bind_fused_norm(m);
  bind_fused_seq(m);
  bind_conv_ext(m);
  bind_lstm_layer(m);
  bind_attention(m);
  bind_dlpack(m);
  bind_random(m);
}
