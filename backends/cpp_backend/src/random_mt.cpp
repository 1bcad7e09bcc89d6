// bernoulli_mt19937: NumPy's legacy random_sample stream (MT19937), compared with p, written
// straight into a buffer. The values are bit for bit those of
// `RandomState.random_sample(n) <= p` from the state (key, pos); the state is advanced in place
// and the new pos returned, so the caller can hand the generator back to NumPy.
//
// MT19937 as NumPy's mt19937.c has it: a twist regenerates the 624 words of the key when pos
// reaches 624 (lazily, before the next output); an output is a key word tempered; a double
// is ((w0 >> 5) * 2^26 + (w1 >> 6)) / 2^53 from two consecutive outputs (a pair may straddle
// a twist). The twist is written branch-free and the tempering and comparison run in a loop
// of their own, so both vectorise; one copy per instruction set (fast_math.h), picked from
// the active kernel table like the fused kernels.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "array.h"
#include "fast_math.h"
#include "kernels.h"

namespace py = pybind11;

namespace needle_cpp {
namespace {

constexpr int64_t kN = 624;  // words of state
constexpr int64_t kM = 397;
constexpr uint32_t kMatrixA = 0x9908b0dfU;
constexpr uint32_t kUpper = 0x80000000U;
constexpr uint32_t kLower = 0x7fffffffU;

NEEDLE_ALWAYS_INLINE uint32_t twist_word(uint32_t hi, uint32_t lo, uint32_t far) {
  const uint32_t y = (hi & kUpper) | (lo & kLower);
  return far ^ (y >> 1) ^ ((0U - (y & 1U)) & kMatrixA);
}

/// Regenerate the 624 words (mt19937_gen). key[i] reads key[i + 1] before it is rewritten
/// and key[i + M] (first loop: not yet rewritten; second: rewritten 227 words earlier).
NEEDLE_ALWAYS_INLINE void twist(uint32_t* key) {
  int64_t i = 0;
  for (; i < kN - kM; ++i) key[i] = twist_word(key[i], key[i + 1], key[i + kM]);
  for (; i < kN - 1; ++i) key[i] = twist_word(key[i], key[i + 1], key[i + kM - kN]);
  key[kN - 1] = twist_word(key[kN - 1], key[0], key[kM - 1]);
}

NEEDLE_ALWAYS_INLINE uint32_t temper(uint32_t y) {
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680U;
  y ^= (y << 15) & 0xefc60000U;
  return y ^ (y >> 18);
}

/// 1 where the double of (w0, w1) is <= p, else 0 (NaN p: 0, as the comparison gives).
template <typename T>
NEEDLE_ALWAYS_INLINE T bernoulli(uint32_t w0, uint32_t w1, double p) {
  // w0 >> 5 and w1 >> 6 fit in an int32: their conversions vectorise.
  const double u = (static_cast<int32_t>(w0 >> 5) * 67108864.0 + static_cast<int32_t>(w1 >> 6)) /
                   9007199254740992.0;
  return u <= p ? T(1) : T(0);
}

/// Draws n values from (key, *pos) into out; *pos gets the new position.
template <typename T>
NEEDLE_ALWAYS_INLINE void bernoulli_run(uint32_t* key, int64_t* pos_io, double p, T* out,
                                        int64_t n) {
  alignas(64) uint32_t words[kN];
  int64_t pos = *pos_io;
  int64_t i = 0;
  while (i < n) {
    if (pos == kN) {
      twist(key);
      pos = 0;
    }
    if (pos == kN - 1) {  // the pair straddles a twist
      const uint32_t w0 = temper(key[kN - 1]);
      twist(key);
      out[i++] = bernoulli<T>(w0, temper(key[0]), p);
      pos = 1;
      continue;
    }
    const int64_t pairs = std::min((kN - pos) / 2, n - i);
    const uint32_t* src = key + pos;
    for (int64_t j = 0; j < 2 * pairs; ++j) words[j] = temper(src[j]);
    T* dst = out + i;
    for (int64_t j = 0; j < pairs; ++j) dst[j] = bernoulli<T>(words[2 * j], words[2 * j + 1], p);
    pos += 2 * pairs;
    i += pairs;
  }
  *pos_io = pos;
}

NEEDLE_ISA_COPIES(bernoulli_run, , (uint32_t* key, int64_t* pos, double p, T* out, int64_t n),
                  (key, pos, p, out, n))

/// The key array after checking it: a writeable, C-contiguous uint32 array of shape (624,).
uint32_t* key_words(const char* k, const py::object& key) {
  if (!py::isinstance<py::array>(key))
    type_error(k, "key must be a NumPy uint32 array of 624 elements, got " +
                      std::string(py::str(py::type::of(key).attr("__name__"))));
  auto arr = py::reinterpret_borrow<py::array>(key);
  if (!arr.dtype().equal(py::dtype::of<uint32_t>()))  // an equal dtype, native byte order
    type_error(k, "key must be a uint32 array, got dtype " + std::string(py::str(arr.dtype())));
  if (arr.ndim() != 1 || arr.size() != kN)
    value_error(k, "key must have shape (624,), got " + std::string(py::str(key.attr("shape"))));
  if (!(arr.flags() & py::array::c_style)) value_error(k, "key must be C-contiguous");
  if (!arr.writeable()) value_error(k, "key must be writeable (it is advanced in place)");
  return static_cast<uint32_t*>(arr.mutable_data());
}

int64_t bernoulli_mt19937(const py::object& key, int64_t pos, double p, Array& out, int64_t n) {
  const char* k = "bernoulli_mt19937";
  uint32_t* words = key_words(k, key);
  if (pos < 0 || pos > kN)
    value_error(k, "pos must lie in [0, 624], got " + std::to_string(pos));
  check_nonneg(k, "n", n);
  check_size(k, "out", out, n);
  py::gil_scoped_release release;
  with_dtype(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    NEEDLE_PICK(bernoulli_run, T)(words, &pos, p, out.data<T>(), n);
  });
  return pos;
}

}  // namespace

void bind_random(py::module_& m) {
  m.def("bernoulli_mt19937", &bernoulli_mt19937, py::arg("key"), py::arg("pos"), py::arg("p"),
        py::arg("out"), py::arg("n"),
        "out[i] = 1.0 if u_i <= p else 0.0 for the first n doubles u_i of NumPy's legacy "
        "MT19937 stream from state (key, pos); key is advanced in place, the new pos returned.");
}

}  // namespace needle_cpp
