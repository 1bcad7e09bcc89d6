// Bindings of the fused layer kernels (fused_norm.cpp); module.cpp calls bind_fused_norm.
#include <pybind11/pybind11.h>

#include "fused_norm.h"

namespace py = pybind11;

namespace needle_cpp {

void bind_fused_norm(py::module_& m) {
  using Release = py::call_guard<py::gil_scoped_release>;
  m.def("batchnorm_forward", &batchnorm_forward, py::arg("x"), py::arg("w"), py::arg("b"),
        py::arg("out"), py::arg("stats"), py::arg("m"), py::arg("c"), py::arg("eps"), Release(),
        "Training batch norm of compact x (m, c) per column; stats = [mean; biased var].");
  m.def("batchnorm_backward", &batchnorm_backward, py::arg("x"), py::arg("dy"), py::arg("w"),
        py::arg("stats"), py::arg("dx"), py::arg("dwb"), py::arg("m"), py::arg("c"),
        py::arg("eps"), Release(), "dx and dwb = [sum(dy xh); sum(dy)] of batchnorm_forward.");
  m.def("layernorm_forward", &layernorm_forward, py::arg("x"), py::arg("w"), py::arg("b"),
        py::arg("out"), py::arg("stats"), py::arg("rows"), py::arg("d"), py::arg("eps"),
        Release(), "Layer norm of each row of compact x (rows, d); stats = [means; vars].");
  m.def("layernorm_backward", &layernorm_backward, py::arg("x"), py::arg("dy"), py::arg("w"),
        py::arg("stats"), py::arg("dx"), py::arg("dwb"), py::arg("rows"), py::arg("d"),
        py::arg("eps"), Release(), "dx and dwb = [sum(dy xh); sum(dy)] of layernorm_forward.");
  m.def("softmax_xent", &softmax_xent, py::arg("a"), py::arg("labels"), py::arg("out"),
        py::arg("n"), py::arg("k"), Release(), "out (n) = logsumexp(row) - row[label].");
  m.def("softmax_xent_backward", &softmax_xent_backward, py::arg("a"), py::arg("labels"),
        py::arg("g"), py::arg("out"), py::arg("n"), py::arg("k"), Release(),
        "out (n, k) = (softmax(row) - one_hot(label)) * g[0].");
}

}  // namespace needle_cpp
