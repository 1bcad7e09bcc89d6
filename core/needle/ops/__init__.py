"""needle.ops: every Tensor operation, as an ``Op`` class and a functional wrapper.

One file per family; each op's ``compute`` and ``gradient`` sit side by side.
"""

from __future__ import annotations

from .arithmetic import (
    AddScalar,
    DivScalar,
    EWiseAdd,
    EWiseDiv,
    EWiseMul,
    EWisePow,
    EWiseSub,
    MulScalar,
    Negate,
    PowerScalar,
    RPowerScalar,
    add,
    add_scalar,
    divide,
    divide_scalar,
    mul_scalar,
    multiply,
    negate,
    power,
    power_scalar,
    rpower_scalar,
    subtract,
)
from .compare import argmax, eq, ge, gt, le, lt, ne, one_hot
from .conv import Conv, conv
from .indexing import (
    Dilate,
    Flip,
    GetItem,
    Pad,
    ScatterZeros,
    SetItem,
    SetItemScalar,
    Undilate,
    dilate,
    flip,
    getitem,
    pad,
    setitem,
    undilate,
)
from .joining import Concatenate, Split, Stack, concatenate, split, stack
from .linalg import MatMul, matmul
from .logarithmic import LogSoftmax, LogSumExp, Softmax, logsoftmax, logsumexp, softmax
from .reduction import Max, Summation, max, mean, summation
from .selection import Maximum, MaximumScalar, Where, maximum, where
from .shape import BroadcastTo, Permute, Reshape, broadcast_to, permute, reshape, transpose
from .tuples import AsType, MakeTensorTuple, TupleGetItem, astype, make_tuple, tuple_get_item
from .unary import (
    Abs,
    Cos,
    Exp,
    Log,
    ReLU,
    Sigmoid,
    Sin,
    Sqrt,
    Tanh,
    abs,
    cos,
    exp,
    log,
    relu,
    sigmoid,
    sin,
    sqrt,
    tanh,
)

# Course-compatible aliases.
ewise_add = add
ewise_mul = multiply
ewise_div = divide
ewise_pow = power
