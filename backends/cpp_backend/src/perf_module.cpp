// Bindings of the issue-12 kernels (matmul_t, reduce_*_mid, buffer cache, conv controls) and
// the program kernels: program_compile checks a list of kernel calls once, program_run
// runs them all in C++ with the GIL released.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "conv_ext.h"
#include "attention.h"
#include "isa.h"
#include "fused_norm.h"
#include "fused_seq.h"
#include "perf_kernels.h"

namespace py = pybind11;

namespace needle_cpp {
namespace {

using Release = py::call_guard<py::gil_scoped_release>;

// --- programs --------------------------------------------------------------------------
/// The arguments of one instruction, parsed once: kinds 'A' buffer, 'i' int, 'f' float,
/// 'S' tuple of ints, in the order of the kernel's parameters.
struct Args {
  static constexpr int kBuffers = 13;  // lstm_layer_backward has the most
  Array* A[kBuffers] = {};
  int64_t I[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  double F[2] = {0, 0};
  Shape S[2];
};

struct Entry;
using CheckFn = void (*)(const Entry&, const Args&);
using RunFn = void (*)(const Entry&, const Args&);

struct Entry {
  std::string name;
  std::string kinds;
  int op;
  CheckFn check;
  RunFn run;
};

void rows(const char* k, const Array& a, const Array& out, int64_t rs, int64_t min_rs) {
  if (rs < min_rs)
    value_error(k, "reduce_size must be >= " + std::to_string(min_rs) + ", got " + std::to_string(rs));
  check_size(k, "input", a, checked_mul(k, out.size(), rs));
  check_same_dtype(k, a, out);
}

void no_check(const Entry&, const Args&) {}

std::vector<Entry> make_entries() {
  std::vector<Entry> e;
  auto add = [&](const char* name, const char* kinds, int op, CheckFn c, RunFn r) {
    // Args has room for 13 buffers, 8 ints, 2 floats and 2 shapes: a longer entry is a bug.
    const std::string k(kinds);
    auto n = [&](char ch) { return std::count(k.begin(), k.end(), ch); };
    if (n('A') > Args::kBuffers || n('i') > 8 || n('f') > 2 || n('S') > 2 || n('A') + n('i') + n('f') + n('S') != (long)k.size())
      throw std::logic_error(std::string("program table: entry ") + name + " does not fit Args");
    e.push_back(Entry{name, kinds, op, c, r});
  };
  static const char* kBin[] = {"add", "sub", "mul", "div", "power", "maximum",
                               "eq",  "ne",  "lt",  "le",  "gt",    "ge"};
  static_assert(sizeof(kBin) / sizeof(kBin[0]) == kBinaryCount, "binary op names");
  for (int op = 0; op < kBinaryCount; ++op) {
    add((std::string("ewise_") + kBin[op]).c_str(), "AAA", op,
        [](const Entry& en, const Args& g) { check_flat(en.name.c_str(), g.A[2]->size(), {g.A[0], g.A[1], g.A[2]}); },
        [](const Entry& en, const Args& g) { ewise_binary(en.op, en.name.c_str(), *g.A[0], *g.A[1], *g.A[2]); });
    add((std::string("scalar_") + kBin[op]).c_str(), "AfA", op,
        [](const Entry& en, const Args& g) { check_flat(en.name.c_str(), g.A[1]->size(), {g.A[0], g.A[1]}); },
        [](const Entry& en, const Args& g) { scalar_binary(en.op, en.name.c_str(), *g.A[0], g.F[0], *g.A[1]); });
  }
  static const char* kUn[] = {"neg", "abs", "log", "exp", "tanh", "sqrt", "sin", "cos"};
  static_assert(sizeof(kUn) / sizeof(kUn[0]) == kUnaryCount, "unary op names");
  for (int op = 0; op < kUnaryCount; ++op)
    add((std::string("ewise_") + kUn[op]).c_str(), "AA", op,
        [](const Entry& en, const Args& g) { check_flat(en.name.c_str(), g.A[1]->size(), {g.A[0], g.A[1]}); },
        [](const Entry& en, const Args& g) { ewise_unary(en.op, en.name.c_str(), *g.A[0], *g.A[1]); });
  add("ewise_where", "AAAA", 0,
      [](const Entry&, const Args& g) { check_flat("ewise_where", g.A[3]->size(), {g.A[0], g.A[1], g.A[2], g.A[3]}); },
      [](const Entry&, const Args& g) { ewise_where(*g.A[0], *g.A[1], *g.A[2], *g.A[3]); });
  add("fill", "Af", 0, no_check, [](const Entry&, const Args& g) { fill(*g.A[0], g.F[0]); });
  add("astype", "AA", 0,
      [](const Entry&, const Args& g) { check_size("astype", "source", *g.A[0], g.A[1]->size()); },
      [](const Entry&, const Args& g) { astype(*g.A[0], *g.A[1]); });
  add("compact", "AASSi", 0,
      [](const Entry&, const Args& g) {
        const View v = make_view("compact", *g.A[0], g.S[0], g.S[1], g.I[0]);
        check_same_dtype("compact", *g.A[0], *g.A[1]);
        check_size("compact", "output", *g.A[1], v.size);
      },
      [](const Entry&, const Args& g) { compact(*g.A[0], *g.A[1], g.S[0], g.S[1], g.I[0]); });
  add("ewise_setitem", "AASSi", 0,
      [](const Entry&, const Args& g) {
        const View v = make_view("ewise_setitem", *g.A[1], g.S[0], g.S[1], g.I[0]);
        check_same_dtype("ewise_setitem", *g.A[0], *g.A[1]);
        check_size("ewise_setitem", "source", *g.A[0], v.size);
      },
      [](const Entry&, const Args& g) { ewise_setitem(*g.A[0], *g.A[1], g.S[0], g.S[1], g.I[0]); });
  add("scalar_setitem", "ifASSi", 0,
      [](const Entry&, const Args& g) {
        const View v = make_view("scalar_setitem", *g.A[0], g.S[0], g.S[1], g.I[1]);
        if (v.size != g.I[0])
          value_error("scalar_setitem", "size " + std::to_string(g.I[0]) +
                                            " does not match the view's " + std::to_string(v.size) + " elements");
      },
      [](const Entry&, const Args& g) { scalar_setitem(g.I[0], g.F[0], *g.A[0], g.S[0], g.S[1], g.I[1]); });
  add("reduce_sum", "AAi", 0, [](const Entry&, const Args& g) { rows("reduce_sum", *g.A[0], *g.A[1], g.I[0], 0); },
      [](const Entry&, const Args& g) { reduce_sum(*g.A[0], *g.A[1], g.I[0]); });
  add("reduce_max", "AAi", 0, [](const Entry&, const Args& g) { rows("reduce_max", *g.A[0], *g.A[1], g.I[0], 1); },
      [](const Entry&, const Args& g) { reduce_max(*g.A[0], *g.A[1], g.I[0]); });
  add("reduce_argmax", "AAi", 0,
      [](const Entry&, const Args& g) { rows("reduce_argmax", *g.A[0], *g.A[1], g.I[0], 1); },
      [](const Entry&, const Args& g) { reduce_argmax(*g.A[0], *g.A[1], g.I[0]); });
  add("logsumexp_last", "AAi", 0,
      [](const Entry&, const Args& g) { rows("logsumexp_last", *g.A[0], *g.A[1], g.I[0], 0); },
      [](const Entry&, const Args& g) { logsumexp_last(*g.A[0], *g.A[1], g.I[0]); });
  add("softmax_last", "AAi", 0,
      [](const Entry&, const Args& g) {
        const int64_t rs = g.I[0];
        if (rs < 1) value_error("softmax_last", "reduce_size must be >= 1, got " + std::to_string(rs));
        check_size("softmax_last", "output", *g.A[1], g.A[0]->size() / rs * rs);
        check_same_dtype("softmax_last", *g.A[0], *g.A[1]);
      },
      [](const Entry&, const Args& g) { softmax_last(*g.A[0], *g.A[1], g.I[0]); });
  add("matmul", "AAAiii", 0, [](const Entry&, const Args& g) { check_gemm("matmul", *g.A[0], *g.A[1], *g.A[2], 1, g.I[0], g.I[1], g.I[2], 0, 0); },
      [](const Entry&, const Args& g) { matmul(*g.A[0], *g.A[1], *g.A[2], g.I[0], g.I[1], g.I[2]); });
  add("batched_matmul", "AAAiiii", 0,
      [](const Entry&, const Args& g) {
        check_gemm("batched_matmul", *g.A[0], *g.A[1], *g.A[2], g.I[0], g.I[1], g.I[2], g.I[3], 0, 0);
      },
      [](const Entry&, const Args& g) {
        batched_matmul(*g.A[0], *g.A[1], *g.A[2], g.I[0], g.I[1], g.I[2], g.I[3]);
      });
  add("matmul_t", "AAAiiiii", 0,
      [](const Entry&, const Args& g) {
        check_gemm("matmul_t", *g.A[0], *g.A[1], *g.A[2], 1, g.I[0], g.I[1], g.I[2], g.I[3], g.I[4]);
      },
      [](const Entry&, const Args& g) {
        matmul_t(*g.A[0], *g.A[1], *g.A[2], g.I[0], g.I[1], g.I[2], g.I[3], g.I[4]);
      });
  add("batched_matmul_t", "AAAiiiiii", 0,
      [](const Entry&, const Args& g) {
        check_gemm("batched_matmul_t", *g.A[0], *g.A[1], *g.A[2], g.I[0], g.I[1], g.I[2], g.I[3], g.I[4],
                   g.I[5]);
      },
      [](const Entry&, const Args& g) {
        batched_matmul_t(*g.A[0], *g.A[1], *g.A[2], g.I[0], g.I[1], g.I[2], g.I[3], g.I[4], g.I[5]);
      });
  for (int is_max = 0; is_max < 2; ++is_max)
    add(is_max ? "reduce_max_mid" : "reduce_sum_mid", "AAiii", is_max,
        [](const Entry& en, const Args& g) {
          check_reduce_mid(en.name.c_str(), en.op != 0, *g.A[0], *g.A[1], g.I[0], g.I[1], g.I[2]);
        },
        [](const Entry& en, const Args& g) {
          if (en.op) reduce_max_mid(*g.A[0], *g.A[1], g.I[0], g.I[1], g.I[2]);
          else reduce_sum_mid(*g.A[0], *g.A[1], g.I[0], g.I[1], g.I[2]);
        });
  add("conv2d_nhwc", "AAAiiiiiii", 0,
      [](const Entry&, const Args& g) {  // the kernel's own checks
        check_conv2d_nhwc(*g.A[0], *g.A[1], *g.A[2], g.I[0], g.I[1], g.I[2], g.I[3], g.I[4], g.I[5],
                          g.I[6]);
      },
      [](const Entry&, const Args& g) {
        conv2d_nhwc(*g.A[0], *g.A[1], *g.A[2], g.I[0], g.I[1], g.I[2], g.I[3], g.I[4], g.I[5], g.I[6]);
      });
  // padded convolution and its gradients (conv_ext.cpp): the kernels' own checks
  static const char* kConv[] = {"conv2d_nhwc_pad", "conv2d_nhwc_backward_input",
                                "conv2d_nhwc_backward_weight"};
  for (int op = 0; op < 3; ++op)
    add(kConv[op], "AAAiiiiiiii", op,
        [](const Entry& en, const Args& g) {
          const char* kn = en.name.c_str();
          const ConvGeom c = conv_geom(kn, g.I[0], g.I[1], g.I[2], g.I[3], g.I[4], g.I[5], g.I[6], g.I[7]);
          // buffers in parameter order: (x, w, out), (g, w, dx), (x, g, dw)
          if (en.op == 0) check_conv_ext(kn, *g.A[0], *g.A[1], *g.A[2], c);
          else if (en.op == 1) check_conv_ext(kn, *g.A[2], *g.A[1], *g.A[0], c);
          else check_conv_ext(kn, *g.A[0], *g.A[2], *g.A[1], c);
        },
        [](const Entry& en, const Args& g) {
          auto f = en.op == 0 ? &conv2d_nhwc_pad
                   : en.op == 1 ? &conv2d_nhwc_backward_input
                                : &conv2d_nhwc_backward_weight;
          f(*g.A[0], *g.A[1], *g.A[2], g.I[0], g.I[1], g.I[2], g.I[3], g.I[4], g.I[5], g.I[6], g.I[7]);
        });
  add("synchronize", "", 0, no_check, [](const Entry&, const Args&) {});
  // fused layers (fused_norm.cpp): the kernels' own checks, then the kernels
  add("batchnorm_forward", "AAAAAiif", 0,
      [](const Entry&, const Args& g) {
        check_batchnorm_forward(*g.A[0], *g.A[1], *g.A[2], *g.A[3], *g.A[4], g.I[0], g.I[1]);
      },
      [](const Entry&, const Args& g) {
        batchnorm_forward(*g.A[0], *g.A[1], *g.A[2], *g.A[3], *g.A[4], g.I[0], g.I[1], g.F[0]);
      });
  add("batchnorm_backward", "AAAAAAiif", 0,
      [](const Entry&, const Args& g) {
        check_batchnorm_backward(*g.A[0], *g.A[1], *g.A[2], *g.A[3], *g.A[4], *g.A[5], g.I[0], g.I[1]);
      },
      [](const Entry&, const Args& g) {
        batchnorm_backward(*g.A[0], *g.A[1], *g.A[2], *g.A[3], *g.A[4], *g.A[5], g.I[0], g.I[1], g.F[0]);
      });
  add("layernorm_forward", "AAAAAiif", 0,
      [](const Entry&, const Args& g) {
        check_layernorm_forward(*g.A[0], *g.A[1], *g.A[2], *g.A[3], *g.A[4], g.I[0], g.I[1]);
      },
      [](const Entry&, const Args& g) {
        layernorm_forward(*g.A[0], *g.A[1], *g.A[2], *g.A[3], *g.A[4], g.I[0], g.I[1], g.F[0]);
      });
  add("layernorm_backward", "AAAAAAiif", 0,
      [](const Entry&, const Args& g) {
        check_layernorm_backward(*g.A[0], *g.A[1], *g.A[2], *g.A[3], *g.A[4], *g.A[5], g.I[0], g.I[1]);
      },
      [](const Entry&, const Args& g) {
        layernorm_backward(*g.A[0], *g.A[1], *g.A[2], *g.A[3], *g.A[4], *g.A[5], g.I[0], g.I[1], g.F[0]);
      });
  add("softmax_xent", "AAAii", 0,
      [](const Entry&, const Args& g) {
        check_softmax_xent("softmax_xent", *g.A[0], *g.A[1], nullptr, *g.A[2], g.I[0], g.I[1], false);
      },
      [](const Entry&, const Args& g) { softmax_xent(*g.A[0], *g.A[1], *g.A[2], g.I[0], g.I[1]); });
  add("softmax_xent_backward", "AAAAii", 0,
      [](const Entry&, const Args& g) {
        check_softmax_xent("softmax_xent_backward", *g.A[0], *g.A[1], g.A[2], *g.A[3], g.I[0], g.I[1], false);
      },
      [](const Entry&, const Args& g) {
        softmax_xent_backward(*g.A[0], *g.A[1], *g.A[2], *g.A[3], g.I[0], g.I[1]);
      });
  // sequence layers (fused_seq.cpp): sizes checked here, ids by the kernels on every run
  for (int gather = 0; gather < 2; ++gather)
    add(gather ? "take_rows" : "scatter_add_rows", "AAAiii", gather,
        [](const Entry& en, const Args& g) {
          check_rows(en.name.c_str(), *g.A[0], *g.A[1], *g.A[2], g.I[0], g.I[1], g.I[2], en.op);
        },
        [](const Entry& en, const Args& g) {
          if (en.op) take_rows(*g.A[0], *g.A[1], *g.A[2], g.I[0], g.I[1], g.I[2]);
          else scatter_add_rows(*g.A[0], *g.A[1], *g.A[2], g.I[0], g.I[1], g.I[2]);
        });
  add("lstm_cell", "AAAAii", 0,
      [](const Entry&, const Args& g) { check_lstm_cell(*g.A[0], *g.A[1], *g.A[2], *g.A[3], g.I[0], g.I[1]); },
      [](const Entry&, const Args& g) { lstm_cell(*g.A[0], *g.A[1], *g.A[2], *g.A[3], g.I[0], g.I[1]); });
  add("lstm_cell_backward", "AAAAAAii", 0,
      [](const Entry&, const Args& g) {
        check_lstm_cell_backward(*g.A[0], *g.A[1], *g.A[2], *g.A[3], *g.A[4], *g.A[5], g.I[0], g.I[1]);
      },
      [](const Entry&, const Args& g) {
        lstm_cell_backward(*g.A[0], *g.A[1], *g.A[2], *g.A[3], *g.A[4], *g.A[5], g.I[0], g.I[1]);
      });
  add("lstm_layer", "AAAAAAAiii", 0,
      [](const Entry&, const Args& g) {
        check_lstm_layer(*g.A[0], *g.A[1], *g.A[2], *g.A[3], *g.A[4], *g.A[5], *g.A[6], g.I[0],
                         g.I[1], g.I[2]);
      },
      [](const Entry&, const Args& g) {
        lstm_layer(*g.A[0], *g.A[1], *g.A[2], *g.A[3], *g.A[4], *g.A[5], *g.A[6], g.I[0], g.I[1],
                   g.I[2]);
      });
  add("lstm_layer_backward", "AAAAAAAAAAAAAiii", 0,
      [](const Entry&, const Args& g) {
        check_lstm_layer_backward(*g.A[0], *g.A[1], *g.A[2], *g.A[3], *g.A[4], *g.A[5], *g.A[6],
                                  *g.A[7], *g.A[8], *g.A[9], *g.A[10], *g.A[11], *g.A[12],
                                  g.I[0], g.I[1], g.I[2]);
      },
      [](const Entry&, const Args& g) {
        lstm_layer_backward(*g.A[0], *g.A[1], *g.A[2], *g.A[3], *g.A[4], *g.A[5], *g.A[6],
                            *g.A[7], *g.A[8], *g.A[9], *g.A[10], *g.A[11], *g.A[12], g.I[0],
                            g.I[1], g.I[2]);
      });
  add("rnn_layer", "AAAAiiii", 0,
      [](const Entry&, const Args& g) {
        check_rnn_layer(*g.A[0], *g.A[1], *g.A[2], *g.A[3], g.I[0], g.I[1], g.I[2], g.I[3]);
      },
      [](const Entry&, const Args& g) {
        rnn_layer(*g.A[0], *g.A[1], *g.A[2], *g.A[3], g.I[0], g.I[1], g.I[2], g.I[3]);
      });
  add("rnn_layer_backward", "AAAAAAAiiii", 0,
      [](const Entry&, const Args& g) {
        check_rnn_layer_backward(*g.A[0], *g.A[1], *g.A[2], *g.A[3], *g.A[4], *g.A[5], *g.A[6],
                                 g.I[0], g.I[1], g.I[2], g.I[3]);
      },
      [](const Entry&, const Args& g) {
        rnn_layer_backward(*g.A[0], *g.A[1], *g.A[2], *g.A[3], *g.A[4], *g.A[5], *g.A[6], g.I[0],
                           g.I[1], g.I[2], g.I[3]);
      });
  add("attention_softmax", "AAiiifi", 0,
      [](const Entry&, const Args& g) {
        check_attention_softmax(*g.A[0], *g.A[1], g.I[0], g.I[1], g.I[2], g.I[3]);
      },
      [](const Entry&, const Args& g) {
        attention_softmax(*g.A[0], *g.A[1], g.I[0], g.I[1], g.I[2], g.F[0], g.I[3]);
      });
  // fused attention (attention.cpp)
  add("attention_forward", "AAAAAAiiiiiiiif", 0,
      [](const Entry&, const Args& g) {
        check_attention_forward(*g.A[0], *g.A[1], *g.A[2], *g.A[3], *g.A[4], *g.A[5], g.I[0],
                                g.I[1], g.I[2], g.I[3], g.I[4], g.I[5], g.I[6], g.I[7]);
      },
      [](const Entry&, const Args& g) {
        attention_forward(*g.A[0], *g.A[1], *g.A[2], *g.A[3], *g.A[4], *g.A[5], g.I[0], g.I[1],
                          g.I[2], g.I[3], g.I[4], g.I[5], g.I[6], g.I[7], g.F[0]);
      });
  add("attention_backward", "AAAAAAAAAiiiiiiiif", 0,
      [](const Entry&, const Args& g) {
        check_attention_backward(*g.A[0], *g.A[1], *g.A[2], *g.A[3], *g.A[4], *g.A[5], *g.A[6],
                                 *g.A[7], *g.A[8], g.I[0], g.I[1], g.I[2], g.I[3], g.I[4],
                                 g.I[5], g.I[6], g.I[7]);
      },
      [](const Entry&, const Args& g) {
        attention_backward(*g.A[0], *g.A[1], *g.A[2], *g.A[3], *g.A[4], *g.A[5], *g.A[6],
                           *g.A[7], *g.A[8], g.I[0], g.I[1], g.I[2], g.I[3], g.I[4], g.I[5],
                           g.I[6], g.I[7], g.F[0]);
      });
  return e;
}

const std::unordered_map<std::string, Entry>& registry() {
  static const auto* r = [] {
    auto* m = new std::unordered_map<std::string, Entry>;
    for (Entry& e : make_entries()) m->emplace(e.name, e);
    return m;
  }();
  return *r;
}

/// Module functions that are not kernels and may never appear in a program.
bool is_control(const std::string& name) {
  static const char* kControls[] = {"alloc", "from_numpy", "to_numpy", "buffer_view", "program_compile",
                                    "program_run", "program_set_scalars", "set_num_threads", "get_num_threads",
                                    "simd_level", "best_simd_level", "set_simd_level",
                                    "cache_info", "empty_cache", "set_cache_limit_mb",
                                    "conv_direct_max_pixels", "set_conv_direct_max_pixels"};
  for (const char* c : kControls)
    if (name == c) return true;
  return name.empty() || name[0] == '_';
}

struct Instr {
  const Entry* entry = nullptr;  // null: a kernel of the module this file does not know
  Args args;
  py::object fn;    // that kernel (called with the GIL held)
  py::tuple pyargs;
};

/// A checked list of kernel calls; holds references to every buffer it uses.
struct Program {
  std::vector<Instr> instrs;
  py::list keep;  // the instructions as given: buffers stay alive with the program
  int64_t python_calls = 0;
};

/// A Python int or an object with __index__ (NumPy integers), not a bool.
bool is_int(py::handle v) { return PyIndex_Check(v.ptr()) && !PyBool_Check(v.ptr()); }

[[noreturn]] void bad(size_t i, const std::string& kernel, const std::string& why) {
  throw std::invalid_argument("program_compile: instruction " + std::to_string(i) + " (" +
                              kernel + "): " + why);
}

std::unique_ptr<Program> program_compile(const py::module_& mod, const py::iterable& instructions) {
  auto prog = std::make_unique<Program>();
  size_t i = 0;
  for (py::handle item : instructions) {
    std::string name = "?";
    if (!py::isinstance<py::tuple>(item) && !py::isinstance<py::list>(item))
      bad(i, name, "expected a (kernel_name, args) pair, got " +
                       std::string(py::str(py::type::of(item).attr("__name__"))));
    py::sequence pair = py::reinterpret_borrow<py::sequence>(item);
    if (pair.size() != 2 || !py::isinstance<py::str>(pair[0]) || !py::isinstance<py::tuple>(pair[1]))
      bad(i, name, "expected a (kernel_name: str, args: tuple) pair");
    name = pair[0].cast<std::string>();
    py::tuple args = pair[1].cast<py::tuple>();
    Instr ins;
    const auto& reg = registry();
    auto it = reg.find(name);
    if (it == reg.end()) {
      if (is_control(name) || !py::hasattr(mod, name.c_str()))
        bad(i, name, "not a kernel of the cpp backend");
      ins.fn = mod.attr(name.c_str());
      ins.pyargs = args;
      ++prog->python_calls;
    } else {
      const Entry& e = it->second;
      ins.entry = &e;
      if (args.size() != e.kinds.size())
        bad(i, name, "takes " + std::to_string(e.kinds.size()) + " arguments, got " +
                         std::to_string(args.size()));
      int na = 0, ni = 0, nf = 0, ns = 0;
      for (size_t j = 0; j < e.kinds.size(); ++j) {
        py::handle v = args[j];
        const std::string where = "argument " + std::to_string(j) + " ";
        switch (e.kinds[j]) {
          case 'A':
            if (!py::isinstance<Array>(v))
              bad(i, name, where + "must be a cpp buffer, got " +
                               std::string(py::str(py::type::of(v).attr("__name__"))));
            ins.args.A[na++] = &v.cast<Array&>();
            break;
          case 'i':
            if (!is_int(v)) bad(i, name, where + "must be an int");
            try {
              ins.args.I[ni++] = v.cast<int64_t>();
            } catch (const py::cast_error&) {
              bad(i, name, where + "does not fit in int64");
            }
            break;
          case 'f':
            if (PyBool_Check(v.ptr()) || !(PyFloat_Check(v.ptr()) || is_int(v) ||
                                           PyObject_HasAttrString(v.ptr(), "__float__")))
              bad(i, name, where + "must be a float");
            try {
              ins.args.F[nf++] = v.cast<double>();
            } catch (const py::cast_error&) {
              bad(i, name, where + "must be a float");
            }
            break;
          case 'S': {
            if (!py::isinstance<py::tuple>(v) && !py::isinstance<py::list>(v))
              bad(i, name, where + "must be a tuple of ints");
            Shape s;
            for (py::handle x : v) {
              if (!is_int(x)) bad(i, name, where + "must be a tuple of ints");
              try {
                s.push_back(x.cast<int64_t>());
              } catch (const py::cast_error&) {
                bad(i, name, where + "holds an int that does not fit in int64");
              }
            }
            ins.args.S[ns++] = std::move(s);
            break;
          }
        }
      }
      try {
        e.check(e, ins.args);
      } catch (const std::exception& ex) {
        bad(i, name, ex.what());
      }
    }
    prog->keep.append(item);
    prog->instrs.push_back(std::move(ins));
    ++i;
  }
  return prog;
}

/// Replace float arguments of compiled instructions (dynamic scalars such as a learning
/// rate): slots[k] = (instruction, argument) gets values[k] for the next program_run calls.
void program_set_scalars(Program& prog, const py::sequence& slots, const py::sequence& values) {
  const char* k = "program_set_scalars";
  if (slots.size() != values.size())
    value_error(k, std::to_string(slots.size()) + " slots but " + std::to_string(values.size()) +
                       " values");
  // Everything is checked before anything changes: a bad slot leaves the program as it was.
  struct Patch {
    Instr* ins;
    size_t arg;
    int f_index;  // -1: a Python-run instruction, whose argument tuple is rebuilt
    double value;
  };
  std::vector<Patch> patches;
  patches.reserve(slots.size());
  for (size_t s = 0; s < slots.size(); ++s) {
    py::handle slot = slots[s];
    const std::string where = "slot " + std::to_string(s) + " ";
    if (!py::isinstance<py::tuple>(slot) || py::len(slot) != 2 || !is_int(slot[py::int_(0)]) ||
        !is_int(slot[py::int_(1)]))
      value_error(k, where + "must be an (instruction, argument) pair of ints");
    const int64_t i = slot[py::int_(0)].cast<int64_t>(), j = slot[py::int_(1)].cast<int64_t>();
    if (i < 0 || i >= (int64_t)prog.instrs.size())
      index_error(k, where + "names instruction " + std::to_string(i) + " of a program of " +
                         std::to_string(prog.instrs.size()));
    Instr& ins = prog.instrs[(size_t)i];
    py::handle v = values[s];
    if (PyBool_Check(v.ptr()) || !(PyFloat_Check(v.ptr()) || is_int(v)))
      type_error(k, "value " + std::to_string(s) + " must be a float");
    const double value = v.cast<double>();
    if (ins.entry) {
      const std::string& kinds = ins.entry->kinds;
      if (j < 0 || j >= (int64_t)kinds.size() || kinds[(size_t)j] != 'f')
        value_error(k, where + "argument " + std::to_string(j) + " of instruction " +
                           std::to_string(i) + " (" + ins.entry->name + ") is not a float argument");
      const int f = (int)std::count(kinds.begin(), kinds.begin() + j, 'f');
      patches.push_back(Patch{&ins, (size_t)j, f, value});
    } else {
      if (j < 0 || j >= (int64_t)ins.pyargs.size() || !PyFloat_Check(ins.pyargs[(size_t)j].ptr()))
        value_error(k, where + "argument " + std::to_string(j) + " of instruction " +
                           std::to_string(i) + " is not a float argument");
      patches.push_back(Patch{&ins, (size_t)j, -1, value});
    }
  }
  for (const Patch& p : patches) {
    if (p.f_index >= 0) {
      p.ins->args.F[p.f_index] = p.value;
    } else {
      py::list args(p.ins->pyargs);
      args[p.arg] = py::float_(p.value);
      p.ins->pyargs = py::tuple(args);
    }
  }
}

template <typename E>
[[noreturn]] void rethrow_at(size_t i, const std::string& name, const char* what) {
  throw E("program_run: instruction " + std::to_string(i) + " (" + name + "): " + what);
}

void program_run(Program& prog) {
  py::gil_scoped_release release;
  for (size_t i = 0; i < prog.instrs.size(); ++i) {
    Instr& ins = prog.instrs[i];
    const std::string* name = ins.entry ? &ins.entry->name : nullptr;
    try {
      if (ins.entry) {
        ins.entry->run(*ins.entry, ins.args);
      } else {
        py::gil_scoped_acquire gil;
        ins.fn(*ins.pyargs);
      }
    } catch (py::error_already_set& e) {
      throw;  // a Python kernel's exception: passed on as it is
    } catch (const TypeErrorEx& e) {
      rethrow_at<TypeErrorEx>(i, name ? *name : "kernel", e.what());
    } catch (const std::invalid_argument& e) {
      rethrow_at<std::invalid_argument>(i, name ? *name : "kernel", e.what());
    } catch (const std::out_of_range& e) {
      rethrow_at<std::out_of_range>(i, name ? *name : "kernel", e.what());
    }
  }
}

}  // namespace

void bind_perf(py::module_& m) {
  // --- kernels ---
  m.def("matmul_t", &matmul_t, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("m"),
        py::arg("n"), py::arg("p"), py::arg("trans_a"), py::arg("trans_b"), Release(),
        "out (m, p) = op(a) @ op(b); a is stored (n, m) when trans_a, b (p, n) when trans_b.");
  m.def("batched_matmul_t", &batched_matmul_t, py::arg("a"), py::arg("b"), py::arg("out"),
        py::arg("batch"), py::arg("m"), py::arg("n"), py::arg("p"), py::arg("trans_a"),
        py::arg("trans_b"), Release(), "batched matmul_t over compact stacks.");
  m.def("reduce_sum_mid", &reduce_sum_mid, py::arg("a"), py::arg("out"), py::arg("outer"),
        py::arg("reduce"), py::arg("inner"), Release(),
        "out (outer, inner) = sum over axis 1 of compact a (outer, reduce, inner).");
  m.def("reduce_max_mid", &reduce_max_mid, py::arg("a"), py::arg("out"), py::arg("outer"),
        py::arg("reduce"), py::arg("inner"), Release(),
        "out (outer, inner) = max over axis 1 of compact a (outer, reduce, inner).");
  // --- programs ---
  py::class_<Program>(m, "Program", "A checked list of kernel calls (program_compile).")
      .def("__len__", [](const Program& p) { return p.instrs.size(); })
      .def_property_readonly("python_calls", [](const Program& p) { return p.python_calls; },
                             "Instructions run through Python (kernels this module's program "
                             "table does not know).");
  py::module_ mod = m;
  m.def("program_compile",
        [mod](const py::iterable& instructions) { return program_compile(mod, instructions); },
        py::arg("instructions"),
        "Check a list of (kernel_name, args) calls once; returns a Program for program_run.");
  m.def("program_set_scalars", &program_set_scalars, py::arg("program"), py::arg("slots"),
        py::arg("values"),
        "Set float arguments of a Program: slots[k] = (instruction, argument) gets values[k].");
  m.def("program_run", &program_run, py::arg("program"),
        "Run every instruction of a Program in order, in C++ without the GIL.");
  // --- controls (not part of the contract) ---
  m.def("cache_info", []() {
    const CacheStats s = cache_stats();
    py::dict d;
    d["cached_bytes"] = s.cached_bytes;
    d["cached_buffers"] = s.cached_buffers;
    d["limit_bytes"] = s.limit_bytes;
    d["hits"] = s.hits;
    d["misses"] = s.misses;
    return d;
  }, "Statistics of the cache of freed buffers.");
  m.def("empty_cache", &cache_empty, Release(), "Free every cached buffer.");
  m.def("set_cache_limit_mb", [](int64_t mb) {
    if (mb < 0) value_error("set_cache_limit_mb", "need a non-negative size, got " + std::to_string(mb));
    cache_set_limit((size_t)mb << 20);
  }, py::arg("mb"), "Cap the bytes the buffer cache keeps (0 turns it off).");
  m.def("conv_direct_max_pixels", &conv_direct_max_pixels,
        "conv2d_nhwc packs patches straight from the image when h_out * w_out is at most this.");
  m.def("set_conv_direct_max_pixels", &set_conv_direct_max_pixels, py::arg("pixels"));
}

}  // namespace needle_cpp
