// The one table that maps the opset's aten (and size) operators onto
// TensorFlow.js. Each entry names the op's parameters in schema order and a
// function of the bound arguments; the grid's opset lists exactly these ops
// under the "browser" target.
//
// TensorFlow.js has float32, int32 and bool: every integer dtype becomes
// int32 (values that do not fit are refused where tensors enter a plan) and
// float64 / float16 / bfloat16 are refused when a plan is loaded.

export const DTYPES = {
  1: 'float32', // FLOAT32
  5: 'int32', // INT64
  6: 'int32', // INT32
  7: 'int32', // INT16
  8: 'int32', // INT8
  9: 'int32', // UINT8
  10: 'bool', // BOOL
};
export const DTYPE_NAMES = {
  1: 'float32',
  2: 'float64',
  3: 'float16',
  4: 'bfloat16',
  5: 'int64',
  6: 'int32',
  7: 'int16',
  8: 'int8',
  9: 'uint8',
  10: 'bool',
};

const REDUCTION_NONE = 0;
const REDUCTION_MEAN = 1;
const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const GELU_KAPPA = 0.044715;

/** A decoded `dtype` argument (a DType code) as a TensorFlow.js dtype. */
export class DType {
  constructor(code) {
    this.code = code;
  }

  get tf() {
    const name = DTYPES[this.code];
    if (!name) {
      const label = DTYPE_NAMES[this.code] ?? `code ${this.code}`;
      throw new Error(`TensorFlow.js has no ${label}; the browser cannot run it`);
    }
    return name;
  }
}

/** The dtype of an existing tensor, standing in for a dtype argument. */
function dtypeLike(tensor) {
  return new DType({ float32: 1, int32: 6, bool: 10 }[tensor.dtype]);
}

function dtypeOf(value, fallback) {
  return value instanceof DType ? value.tf : fallback;
}

function axis(dim, rank) {
  const normal = dim < 0 ? dim + Math.max(rank, 1) : dim;
  if (normal < 0 || normal >= Math.max(rank, 1)) {
    throw new Error(`dimension ${dim} is out of range for a tensor of rank ${rank}`);
  }
  return normal;
}

function axes(dims, rank) {
  if (dims === null || dims === undefined) return null;
  const list = Array.isArray(dims) ? dims : [dims];
  if (list.length === 0) return null; // an empty dim list reduces every axis
  return list.map((dim) => axis(dim, rank));
}

/** A number as a scalar whose dtype follows the tensor it meets, as in torch. */
function scalarFor(tf, tensor, value) {
  if (typeof value === 'boolean') return tf.scalar(value, 'bool');
  const integral = tensor.dtype !== 'float32' && Number.isInteger(value);
  return tf.scalar(value, integral ? 'int32' : 'float32');
}

function tensorOf(tf, value, like) {
  if (value instanceof tf.Tensor) return value;
  return like ? scalarFor(tf, like, value) : tf.scalar(value);
}

function toFloat(tf, x) {
  return x.dtype === 'float32' ? x : tf.cast(x, 'float32');
}

function numeric(tf, x) {
  return x.dtype === 'bool' ? tf.cast(x, 'int32') : x;
}

function sameDtype(tf, a, b) {
  if (a.dtype === b.dtype) return [a, b];
  const wide = a.dtype === 'float32' || b.dtype === 'float32' ? 'float32' : 'int32';
  return [tf.cast(a, wide), tf.cast(b, wide)];
}

function scaled(tf, x, alpha) {
  return alpha === 1 ? x : tf.mul(x, scalarFor(tf, x, alpha));
}

function trueDivide(tf, a, b) {
  return tf.div(toFloat(tf, a), toFloat(tf, b));
}

function sizeOf(shape) {
  return shape.reduce((product, dim) => product * dim, 1);
}

function castTo(tf, x, dtype) {
  const name = dtypeOf(dtype, null);
  return name && name !== x.dtype ? tf.cast(x, name) : x;
}

function fill(tf, shape, value, dtype) {
  const name =
    dtypeOf(dtype, null) ?? (typeof value === 'boolean' ? 'bool' : 'float32');
  return tf.fill(shape, name === 'bool' ? Number(value) : value, name);
}

function reduceArgs(tf, x, dims, keepdim) {
  return [numeric(tf, x), axes(dims, x.rank), Boolean(keepdim)];
}

function logSoftmax(tf, x, dim) {
  const d = axis(dim, x.rank);
  const shifted = tf.sub(x, tf.max(x, d, true));
  return tf.sub(shifted, tf.log(tf.sum(tf.exp(shifted), d, true)));
}

function softmax(tf, x, dim) {
  const d = axis(dim, x.rank);
  const exps = tf.exp(tf.sub(x, tf.max(x, d, true)));
  return tf.div(exps, tf.sum(exps, d, true));
}

/** Per-row weights of nll_loss: 0 where ignored, weight[target] or 1 elsewhere. */
function nllParts(tf, input, target, weight, ignoreIndex) {
  const classes = input.shape[input.rank - 1];
  const rows = input.rank === 1 ? tf.reshape(input, [1, classes]) : input;
  const labels = tf.reshape(tf.cast(target, 'int32'), [-1]);
  const kept = tf.notEqual(labels, tf.scalar(ignoreIndex, 'int32'));
  const safe = tf.where(kept, labels, tf.zerosLike(labels));
  // equal-against-a-range rather than oneHot, whose dtype the wasm backend ignores
  const classIds = tf.range(0, classes, 1, 'int32');
  const picked = tf.cast(tf.equal(tf.expandDims(safe, 1), classIds), 'float32');
  const base = weight ? tf.gather(weight, safe) : tf.onesLike(labels, 'float32');
  const rowWeight = tf.mul(toFloat(tf, base), tf.cast(kept, 'float32'));
  return { rows, picked, rowWeight };
}

function nllLossForward(tf, { self, target, weight, reduction, ignore_index }) {
  const { rows, picked, rowWeight } = nllParts(tf, self, target, weight, ignore_index);
  const losses = tf.neg(tf.mul(tf.sum(tf.mul(rows, picked), 1), rowWeight));
  const total = tf.sum(rowWeight);
  if (reduction === REDUCTION_NONE) {
    return [self.rank === 1 ? tf.reshape(losses, []) : losses, total];
  }
  const summed = tf.sum(losses);
  return [reduction === REDUCTION_MEAN ? tf.div(summed, total) : summed, total];
}

function nllLossBackward(tf, args) {
  const { grad_output, self, target, weight, reduction, ignore_index } = args;
  const { picked, rowWeight } = nllParts(tf, self, target, weight, ignore_index);
  let scale = tf.neg(rowWeight);
  if (reduction === REDUCTION_NONE) {
    scale = tf.mul(scale, tf.reshape(grad_output, [-1]));
  } else {
    scale = tf.mul(scale, grad_output);
    if (reduction === REDUCTION_MEAN) scale = tf.div(scale, args.total_weight);
  }
  const grad = tf.mul(picked, tf.expandDims(scale, 1));
  return tf.reshape(grad, self.shape);
}

function mseScale(reduction, count) {
  return reduction === REDUCTION_MEAN ? 2 / count : 2;
}

function geluBackward(tf, grad, x, approximate) {
  if (approximate === 'tanh') {
    const square = tf.square(x);
    const inner = tf.mul(
      tf.scalar(SQRT_2_OVER_PI),
      tf.add(x, tf.mul(tf.scalar(GELU_KAPPA), tf.mul(square, x))),
    );
    const tanh = tf.tanh(inner);
    const left = tf.mul(tf.scalar(0.5), tf.add(tanh, tf.scalar(1)));
    const dInner = tf.mul(
      tf.scalar(SQRT_2_OVER_PI),
      tf.add(tf.scalar(1), tf.mul(tf.scalar(3 * GELU_KAPPA), square)),
    );
    const right = tf.mul(
      tf.mul(tf.mul(tf.scalar(0.5), x), tf.sub(tf.scalar(1), tf.square(tanh))),
      dInner,
    );
    return tf.mul(grad, tf.add(left, right));
  }
  const cdf = tf.mul(tf.scalar(0.5), tf.add(tf.scalar(1), tf.erf(tf.mul(x, SQRT1_2))));
  const pdf = tf.mul(tf.exp(tf.mul(tf.square(x), -0.5)), INV_SQRT_2PI);
  return tf.mul(grad, tf.add(cdf, tf.mul(x, pdf)));
}

function gelu(tf, x, approximate) {
  if (approximate === 'tanh') {
    const inner = tf.mul(
      tf.scalar(SQRT_2_OVER_PI),
      tf.add(x, tf.mul(tf.scalar(GELU_KAPPA), tf.pow(x, tf.scalar(3)))),
    );
    return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), tf.scalar(1)));
  }
  const cdf = tf.add(tf.scalar(1), tf.erf(tf.mul(x, SQRT1_2)));
  return tf.mul(tf.mul(x, 0.5), cdf);
}

function sliceTensor(tf, { self, dim, start, end, step }) {
  const d = axis(dim, self.rank);
  const size = self.shape[d];
  const clamp = (value, fallback) => {
    let index = value === null || value === undefined ? fallback : value;
    if (index < 0) index += size;
    return Math.min(Math.max(index, 0), size);
  };
  const first = clamp(start, 0);
  const last = Math.max(clamp(end, size), first);
  const begin = self.shape.map((_, i) => (i === d ? first : 0));
  if (step === 1) {
    const sizes = self.shape.map((s, i) => (i === d ? last - first : s));
    return tf.slice(self, begin, sizes);
  }
  const stop = self.shape.map((s, i) => (i === d ? last : s));
  const strides = self.shape.map((_, i) => (i === d ? step : 1));
  return tf.stridedSlice(self, begin, stop, strides);
}

function expandShape(self, size) {
  const offset = size.length - self.rank;
  return size.map((dim, i) => (dim === -1 ? self.shape[i - offset] : dim));
}

function minMaxDim(tf, reduce, argReduce, { self, dim, keepdim }) {
  const d = axis(dim, self.rank);
  let values = reduce(self, d, false);
  let indices = argReduce(self, d);
  if (keepdim) {
    values = tf.expandDims(values, d);
    indices = tf.expandDims(indices, d);
  }
  return [values, indices];
}

function argReduce(tf, method, { self, dim, keepdim }) {
  if (dim === null || dim === undefined) {
    const flat = method(tf.reshape(self, [-1]), 0);
    return keepdim ? tf.reshape(flat, self.shape.map(() => 1)) : flat;
  }
  const d = axis(dim, self.rank);
  const found = method(self, d);
  return keepdim ? tf.expandDims(found, d) : found;
}

function variance(tf, { self, dim, correction, keepdim }) {
  const dims = axes(dim, self.rank) ?? self.shape.map((_, i) => i);
  const count = dims.reduce((product, d) => product * self.shape[d], 1);
  const centred = tf.sub(self, tf.mean(self, dims, true));
  const squares = tf.sum(tf.square(centred), dims, Boolean(keepdim));
  const dof = count - (correction === null || correction === undefined ? 1 : correction);
  return tf.div(squares, tf.scalar(Math.max(dof, 0)));
}

function layerNormAxes(input, normalizedShape) {
  return normalizedShape.map((_, i) => input.rank - normalizedShape.length + i);
}

function layerNorm(tf, { input, normalized_shape, weight, bias, eps }) {
  const dims = layerNormAxes(input, normalized_shape);
  const mean = tf.mean(input, dims, true);
  const centred = tf.sub(input, mean);
  const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(centred), dims, true), tf.scalar(eps)));
  let out = tf.mul(centred, rstd);
  if (weight) out = tf.mul(out, weight);
  if (bias) out = tf.add(out, bias);
  return [out, mean, rstd];
}

function layerNormBackward(tf, args) {
  const { grad_out, input, normalized_shape, mean, rstd, weight, output_mask } = args;
  const dims = layerNormAxes(input, normalized_shape);
  const leading = input.shape.slice(0, input.rank - normalized_shape.length);
  const outer = leading.map((_, i) => i);
  const count = sizeOf(normalized_shape);
  const normalized = tf.mul(tf.sub(input, mean), rstd);
  const g = weight ? tf.mul(grad_out, weight) : grad_out;
  const results = [null, null, null];
  if (output_mask[0]) {
    const total = tf.sum(g, dims, true);
    const dot = tf.sum(tf.mul(g, normalized), dims, true);
    const inner = tf.sub(tf.sub(tf.mul(g, count), total), tf.mul(normalized, dot));
    results[0] = tf.mul(tf.div(rstd, tf.scalar(count)), inner);
  }
  const sumOuter = (x) => (outer.length ? tf.sum(x, outer) : x);
  if (output_mask[1] && weight) results[1] = sumOuter(tf.mul(grad_out, normalized));
  if (output_mask[2] && args.bias) results[2] = sumOuter(grad_out);
  return results;
}

function pair(value) {
  return Array.isArray(value) ? (value.length === 1 ? [value[0], value[0]] : value) : [value, value];
}

/** A 2-D convolution over NCHW input and OIHW weight, as torch computes it. */
function conv2d(tf, input, weight, stride, padding, dilation) {
  const [padH, padW] = pair(padding);
  const pad = [[0, 0], [padH, padH], [padW, padW], [0, 0]];
  const x = tf.transpose(input, [0, 2, 3, 1]);
  const w = tf.transpose(weight, [2, 3, 1, 0]);
  const out = tf.conv2d(x, w, pair(stride), pad, 'NHWC', pair(dilation));
  return tf.transpose(out, [0, 3, 1, 2]);
}

function checkConvolution(input, transposed, groups) {
  if (input.rank !== 4 || transposed || groups !== 1) {
    throw new Error(
      'only 2-D convolutions with groups=1 and transposed=false have a translation',
    );
  }
}

function convolution(tf, args) {
  const { input, weight, bias, stride, padding, dilation, transposed, groups } = args;
  checkConvolution(input, transposed, groups);
  const out = conv2d(tf, input, weight, stride, padding, dilation);
  return bias ? tf.add(out, tf.reshape(bias, [1, -1, 1, 1])) : out;
}

/** Gradients of conv2d for its input, weight and bias (dilation 1). */
function convolutionBackward(tf, args) {
  const { grad_output, input, weight, stride, padding, dilation, output_mask } = args;
  checkConvolution(input, args.transposed, args.groups);
  if (pair(dilation).some((d) => d !== 1)) {
    throw new Error('the gradient of a dilated convolution has no translation');
  }
  const [padH, padW] = pair(padding);
  const [kh, kw] = weight.shape.slice(2);
  const dy = tf.transpose(grad_output, [0, 2, 3, 1]); // NHWC
  const results = [null, null, null];
  if (output_mask[0]) {
    const [n, c, h, w] = input.shape;
    const filter = tf.transpose(weight, [2, 3, 1, 0]); // HWIO
    const pad = [[0, 0], [padH, padH], [padW, padW], [0, 0]];
    const dx = tf.conv2dTranspose(dy, filter, [n, h, w, c], pair(stride), pad);
    results[0] = tf.transpose(dx, [0, 3, 1, 2]);
  }
  if (output_mask[1]) {
    // Correlate the input with the output gradient: batch becomes the channel.
    const x = tf.transpose(input, [1, 2, 3, 0]); // C_in, H, W, N
    const filter = tf.transpose(grad_output, [2, 3, 0, 1]); // H_out, W_out, N, C_out
    const pad = [[0, 0], [padH, padH], [padW, padW], [0, 0]];
    const full = tf.conv2d(x, filter, 1, pad, 'NHWC', pair(stride));
    const cut = tf.slice(full, [0, 0, 0, 0], [-1, kh, kw, -1]); // C_in, kh, kw, C_out
    results[1] = tf.transpose(cut, [3, 0, 1, 2]);
  }
  if (output_mask[2]) results[2] = tf.sum(grad_output, [0, 2, 3]);
  return results;
}

function floorMod(a, b) {
  return ((a % b) + b) % b;
}

/** op name -> { params: schema parameter names in order, run(tf, bound) }. */
const table = {};

function define(op, params, run, extra = {}) {
  table[op] = { params: params.split(' ').filter(Boolean), run, ...extra };
}

function unary(op, method) {
  define(op, 'self', (tf, { self }) => method(tf, self));
}

function binary(op, method) {
  define(op, 'self other', (tf, { self, other }) => {
    const [a, b] = sameDtype(tf, self, tensorOf(tf, other, self));
    return method(tf, a, b);
  });
}

function identity(op) {
  define(op, 'self memory_format', (_tf, { self }) => self.clone());
}

// Elementwise arithmetic.
define('aten.add.Tensor', 'self other alpha', (tf, { self, other, alpha = 1 }) => {
  const [a, b] = sameDtype(tf, self, tensorOf(tf, other, self));
  return tf.add(a, scaled(tf, b, alpha));
});
define('aten.add.Scalar', 'self other alpha', (tf, { self, other, alpha = 1 }) =>
  tf.add(self, scalarFor(tf, self, other * alpha)),
);
define('aten.sub.Tensor', 'self other alpha', (tf, { self, other, alpha = 1 }) => {
  const [a, b] = sameDtype(tf, self, tensorOf(tf, other, self));
  return tf.sub(a, scaled(tf, b, alpha));
});
define('aten.sub.Scalar', 'self other alpha', (tf, { self, other, alpha = 1 }) =>
  tf.sub(self, scalarFor(tf, self, other * alpha)),
);
define('aten.rsub.Scalar', 'self other alpha', (tf, { self, other, alpha = 1 }) =>
  tf.sub(scalarFor(tf, self, other), scaled(tf, self, alpha)),
);
binary('aten.mul.Tensor', (tf, a, b) => tf.mul(a, b));
define('aten.mul.Scalar', 'self other', (tf, { self, other }) =>
  tf.mul(self, scalarFor(tf, self, other)),
);
define('aten.div.Tensor', 'self other', (tf, { self, other }) =>
  trueDivide(tf, self, tensorOf(tf, other, self)),
);
define('aten.div.Scalar', 'self other', (tf, { self, other }) =>
  trueDivide(tf, self, tf.scalar(other)),
);
define('aten.div.Tensor_mode', 'self other rounding_mode', (tf, args) => {
  const { self, rounding_mode: mode } = args;
  const other = tensorOf(tf, args.other, self);
  const quotient = trueDivide(tf, self, other);
  if (mode === null || mode === undefined) return quotient;
  const rounded = mode === 'floor' ? tf.floor(quotient) : tf.mul(tf.sign(quotient), tf.floor(tf.abs(quotient)));
  const integral = self.dtype !== 'float32' && other.dtype !== 'float32';
  return integral ? tf.cast(rounded, 'int32') : rounded;
});
define('aten.pow.Tensor_Scalar', 'self exponent', (tf, { self, exponent }) =>
  tf.pow(self, scalarFor(tf, self, exponent)),
);
binary('aten.pow.Tensor_Tensor', (tf, a, b) => tf.pow(a, b));
binary('aten.maximum.default', (tf, a, b) => tf.maximum(a, b));
binary('aten.minimum.default', (tf, a, b) => tf.minimum(a, b));
define('aten.clamp.default', 'self min max', (tf, { self, min = null, max = null }) => {
  let out = self;
  if (min !== null) out = tf.maximum(out, scalarFor(tf, self, min));
  if (max !== null) out = tf.minimum(out, scalarFor(tf, self, max));
  return out === self ? self.clone() : out;
});
define('aten.clamp_min.default', 'self min', (tf, { self, min }) =>
  tf.maximum(self, scalarFor(tf, self, min)),
);
define('aten.clamp_max.default', 'self max', (tf, { self, max }) =>
  tf.minimum(self, scalarFor(tf, self, max)),
);
unary('aten.abs.default', (tf, x) => tf.abs(x));
unary('aten.neg.default', (tf, x) => tf.neg(x));
unary('aten.sign.default', (tf, x) => tf.sign(x));
unary('aten.exp.default', (tf, x) => tf.exp(toFloat(tf, x)));
unary('aten.log.default', (tf, x) => tf.log(toFloat(tf, x)));
unary('aten.sqrt.default', (tf, x) => tf.sqrt(toFloat(tf, x)));
unary('aten.rsqrt.default', (tf, x) => tf.rsqrt(toFloat(tf, x)));
unary('aten.reciprocal.default', (tf, x) => tf.reciprocal(toFloat(tf, x)));
unary('aten.logical_not.default', (tf, x) =>
  tf.logicalNot(x.dtype === 'bool' ? x : tf.notEqual(x, tf.scalar(0, x.dtype))),
);
define('aten.where.self', 'condition self other', (tf, args) => {
  const [a, b] = sameDtype(tf, args.self, tensorOf(tf, args.other, args.self));
  return tf.where(tf.cast(args.condition, 'bool'), a, b);
});

// Comparisons.
for (const [name, method] of [
  ['eq', 'equal'],
  ['ne', 'notEqual'],
  ['lt', 'less'],
  ['le', 'lessEqual'],
  ['gt', 'greater'],
  ['ge', 'greaterEqual'],
]) {
  binary(`aten.${name}.Tensor`, (tf, a, b) => tf[method](a, b));
  define(`aten.${name}.Scalar`, 'self other', (tf, { self, other }) => {
    const [a, b] = sameDtype(tf, self, scalarFor(tf, self, other));
    return tf[method](a, b);
  });
}

// Activations and their gradients.
unary('aten.relu.default', (tf, x) => tf.relu(x));
define('aten.relu_.default', 'self', (tf, { self }) => tf.relu(self), { inPlace: 0 });
unary('aten.sigmoid.default', (tf, x) => tf.sigmoid(x));
unary('aten.tanh.default', (tf, x) => tf.tanh(x));
unary('aten.silu.default', (tf, x) => tf.mul(x, tf.sigmoid(x)));
define('aten.gelu.default', 'self approximate', (tf, { self, approximate = 'none' }) =>
  gelu(tf, self, approximate),
);
define('aten.leaky_relu.default', 'self negative_slope', (tf, args) =>
  tf.leakyRelu(args.self, args.negative_slope ?? 0.01),
);
define('aten.threshold_backward.default', 'grad_output self threshold', (tf, args) => {
  const { grad_output: grad, self, threshold } = args;
  const blocked = tf.lessEqual(self, scalarFor(tf, self, threshold));
  return tf.where(blocked, tf.zerosLike(grad), grad);
});
define('aten.sigmoid_backward.default', 'grad_output output', (tf, args) =>
  tf.mul(args.grad_output, tf.mul(args.output, tf.sub(tf.scalar(1), args.output))),
);
define('aten.tanh_backward.default', 'grad_output output', (tf, args) =>
  tf.mul(args.grad_output, tf.sub(tf.scalar(1), tf.square(args.output))),
);
define('aten.silu_backward.default', 'grad_output self', (tf, { grad_output, self }) => {
  const s = tf.sigmoid(self);
  const slope = tf.mul(s, tf.add(tf.scalar(1), tf.mul(self, tf.sub(tf.scalar(1), s))));
  return tf.mul(grad_output, slope);
});
define(
  'aten.leaky_relu_backward.default',
  'grad_output self negative_slope self_is_result',
  (tf, { grad_output, self, negative_slope }) =>
    tf.where(
      tf.greater(self, tf.scalar(0)),
      grad_output,
      tf.mul(grad_output, tf.scalar(negative_slope)),
    ),
);
define('aten.gelu_backward.default', 'grad_output self approximate', (tf, args) =>
  geluBackward(tf, args.grad_output, args.self, args.approximate ?? 'none'),
);

// Matrix products.
define('aten.mm.default', 'self mat2', (tf, { self, mat2 }) => tf.matMul(self, mat2));
define('aten.bmm.default', 'self mat2', (tf, { self, mat2 }) => tf.matMul(self, mat2));
define('aten.addmm.default', 'self mat1 mat2 beta alpha', (tf, args) => {
  const { self, mat1, mat2, beta = 1, alpha = 1 } = args;
  return tf.add(scaled(tf, self, beta), scaled(tf, tf.matMul(mat1, mat2), alpha));
});

// Shapes and copies. Transposes are explicit ops.
define('aten.view.default', 'self size', (tf, { self, size }) => tf.reshape(self, size));
define('aten.reshape.default', 'self shape', (tf, { self, shape }) =>
  tf.reshape(self, shape),
);
define('aten._unsafe_view.default', 'self size', (tf, { self, size }) =>
  tf.reshape(self, size),
);
define('aten.t.default', 'self', (tf, { self }) =>
  self.rank < 2 ? self.clone() : tf.transpose(self, [1, 0]),
);
define('aten.transpose.int', 'self dim0 dim1', (tf, { self, dim0, dim1 }) => {
  const perm = self.shape.map((_, i) => i);
  const [a, b] = [axis(dim0, self.rank), axis(dim1, self.rank)];
  [perm[a], perm[b]] = [perm[b], perm[a]];
  return self.rank < 2 ? self.clone() : tf.transpose(self, perm);
});
define('aten.permute.default', 'self dims', (tf, { self, dims }) =>
  tf.transpose(self, dims.map((d) => axis(d, self.rank))),
);
define('aten.expand.default', 'self size implicit', (tf, { self, size }) =>
  tf.broadcastTo(self, expandShape(self, size)),
);
define('aten.squeeze.dim', 'self dim', (tf, { self, dim }) => {
  const d = axis(dim, self.rank);
  return self.rank > 0 && self.shape[d] === 1 ? tf.squeeze(self, [d]) : self.clone();
});
define('aten.squeeze.dims', 'self dim', (tf, { self, dim }) => {
  const dims = (axes(dim, self.rank) ?? []).filter((d) => self.shape[d] === 1);
  return dims.length ? tf.squeeze(self, dims) : self.clone();
});
define('aten.unsqueeze.default', 'self dim', (tf, { self, dim }) =>
  tf.expandDims(self, axis(dim, self.rank + 1)),
);
define('aten.slice.Tensor', 'self dim start end step', (tf, args) =>
  sliceTensor(tf, { dim: 0, start: null, end: null, step: 1, ...args }),
);
define('aten.select.int', 'self dim index', (tf, { self, dim, index }) => {
  const d = axis(dim, self.rank);
  const at = index < 0 ? index + self.shape[d] : index;
  if (at < 0 || at >= self.shape[d]) {
    throw new Error(`index ${index} is out of range for dimension ${d}`);
  }
  const begin = self.shape.map((_, i) => (i === d ? at : 0));
  const sizes = self.shape.map((s, i) => (i === d ? 1 : s));
  return tf.squeeze(tf.slice(self, begin, sizes), [d]);
});
define('aten.cat.default', 'tensors dim', (tf, { tensors, dim = 0 }) => {
  const kept = tensors.filter((t) => !(t.rank === 1 && t.shape[0] === 0));
  const wide = kept.some((t) => t.dtype === 'float32') ? 'float32' : kept[0].dtype;
  const cast = kept.map((t) => (t.dtype === wide ? t : tf.cast(t, wide)));
  return tf.concat(cast, axis(dim, cast[0].rank));
});
define('aten.stack.default', 'tensors dim', (tf, { tensors, dim = 0 }) =>
  tf.stack(tensors, axis(dim, tensors[0].rank + 1)),
);
identity('aten.clone.default');
identity('aten.detach.default');
identity('aten.lift_fresh_copy.default');
define(
  'aten._to_copy.default',
  'self dtype layout device pin_memory non_blocking memory_format',
  (tf, { self, dtype }) => {
    const name = dtypeOf(dtype, self.dtype);
    return name === self.dtype ? self.clone() : tf.cast(self, name);
  },
);

// Reductions.
define('aten.sum.default', 'self dtype', (tf, { self, dtype }) =>
  castTo(tf, tf.sum(numeric(tf, self)), dtype),
);
define('aten.sum.dim_IntList', 'self dim keepdim dtype', (tf, args) => {
  const [x, dims, keep] = reduceArgs(tf, args.self, args.dim, args.keepdim);
  return castTo(tf, tf.sum(x, dims, keep), args.dtype);
});
define('aten.mean.default', 'self dtype', (tf, { self, dtype }) =>
  tf.mean(castTo(tf, self, dtype)),
);
define('aten.mean.dim', 'self dim keepdim dtype', (tf, args) => {
  const [x, dims, keep] = reduceArgs(tf, args.self, args.dim, args.keepdim);
  return tf.mean(castTo(tf, x, args.dtype), dims, keep);
});
define('aten.amax.default', 'self dim keepdim', (tf, args) => {
  const [x, dims, keep] = reduceArgs(tf, args.self, args.dim ?? [], args.keepdim);
  return tf.max(x, dims, keep);
});
define('aten.amin.default', 'self dim keepdim', (tf, args) => {
  const [x, dims, keep] = reduceArgs(tf, args.self, args.dim ?? [], args.keepdim);
  return tf.min(x, dims, keep);
});
define('aten.argmax.default', 'self dim keepdim', (tf, args) =>
  argReduce(tf, (x, d) => tf.argMax(x, d), args),
);
define('aten.argmin.default', 'self dim keepdim', (tf, args) =>
  argReduce(tf, (x, d) => tf.argMin(x, d), args),
);
define(
  'aten.max.dim',
  'self dim keepdim',
  (tf, args) => minMaxDim(tf, (x, d, k) => tf.max(x, d, k), (x, d) => tf.argMax(x, d), args),
  { multiple: true },
);
define(
  'aten.min.dim',
  'self dim keepdim',
  (tf, args) => minMaxDim(tf, (x, d, k) => tf.min(x, d, k), (x, d) => tf.argMin(x, d), args),
  { multiple: true },
);
define('aten.var.correction', 'self dim correction keepdim', (tf, args) =>
  variance(tf, args),
);

// Softmax, losses and normalisation; log-softmax works on any axis.
define('aten._log_softmax.default', 'self dim half_to_float', (tf, { self, dim }) =>
  logSoftmax(tf, self, dim),
);
define('aten._softmax.default', 'self dim half_to_float', (tf, { self, dim }) =>
  softmax(tf, self, dim),
);
define(
  'aten._log_softmax_backward_data.default',
  'grad_output output dim input_dtype',
  (tf, { grad_output, output, dim }) => {
    const d = axis(dim, output.rank);
    return tf.sub(grad_output, tf.mul(tf.exp(output), tf.sum(grad_output, d, true)));
  },
);
define(
  'aten._softmax_backward_data.default',
  'grad_output output dim input_dtype',
  (tf, { grad_output, output, dim }) => {
    const d = axis(dim, output.rank);
    const dot = tf.sum(tf.mul(grad_output, output), d, true);
    return tf.mul(output, tf.sub(grad_output, dot));
  },
);
define(
  'aten.nll_loss_forward.default',
  'self target weight reduction ignore_index',
  nllLossForward,
  { multiple: true },
);
define(
  'aten.nll_loss_backward.default',
  'grad_output self target weight reduction ignore_index total_weight',
  nllLossBackward,
);
define('aten.mse_loss.default', 'self target reduction', (tf, args) => {
  const { self, target, reduction = REDUCTION_MEAN } = args;
  const squares = tf.square(tf.sub(self, target));
  if (reduction === REDUCTION_NONE) return squares;
  return reduction === REDUCTION_MEAN ? tf.mean(squares) : tf.sum(squares);
});
define('aten.mse_loss_backward.default', 'grad_output self target reduction', (tf, args) => {
  const { grad_output, self, target, reduction } = args;
  const factor = tf.scalar(mseScale(reduction, self.size));
  return tf.mul(tf.mul(tf.sub(self, target), factor), grad_output);
});
define(
  'aten.native_layer_norm.default',
  'input normalized_shape weight bias eps',
  layerNorm,
  { multiple: true },
);
define(
  'aten.native_layer_norm_backward.default',
  'grad_out input normalized_shape mean rstd weight bias output_mask',
  layerNormBackward,
  { multiple: true },
);
define(
  'aten.convolution.default',
  'input weight bias stride padding dilation transposed output_padding groups',
  convolution,
);
define(
  'aten.convolution_backward.default',
  'grad_output input weight bias_sizes stride padding dilation transposed ' +
    'output_padding groups output_mask',
  convolutionBackward,
  { multiple: true },
);
define(
  'aten.embedding.default',
  'weight indices padding_idx scale_grad_by_freq sparse',
  (tf, { weight, indices }) => tf.gather(weight, tf.cast(indices, 'int32')),
);

// New tensors.
const CREATE = 'dtype layout device pin_memory';
define('aten.full.default', `size fill_value ${CREATE}`, (tf, args) =>
  fill(tf, args.size, args.fill_value, args.dtype),
);
define('aten.full_like.default', `self fill_value ${CREATE} memory_format`, (tf, args) =>
  fill(tf, args.self.shape, args.fill_value, args.dtype ?? dtypeLike(args.self)),
);
define('aten.ones.default', `size ${CREATE}`, (tf, args) =>
  fill(tf, args.size, 1, args.dtype),
);
define('aten.zeros.default', `size ${CREATE}`, (tf, args) =>
  fill(tf, args.size, 0, args.dtype),
);
define('aten.ones_like.default', `self ${CREATE} memory_format`, (tf, args) =>
  fill(tf, args.self.shape, 1, args.dtype ?? dtypeLike(args.self)),
);
define('aten.zeros_like.default', `self ${CREATE} memory_format`, (tf, args) =>
  fill(tf, args.self.shape, 0, args.dtype ?? dtypeLike(args.self)),
);
define('aten.scalar_tensor.default', `s ${CREATE}`, (tf, args) =>
  fill(tf, [], args.s, args.dtype),
);

// Sizes: plain numbers, not tensors.
define('aten.sym_size.int', 'self dim', (_tf, { self, dim }) =>
  self.shape[axis(dim, self.rank)],
);
define('aten.sym_numel.default', 'self', (_tf, { self }) => self.size);
const SYM = {
  'sym.add': (a, b) => a + b,
  'sym.sub': (a, b) => a - b,
  'sym.mul': (a, b) => a * b,
  'sym.floordiv': (a, b) => Math.floor(a / b),
  'sym.mod': floorMod,
  'sym.max': (a, b) => Math.max(a, b),
  'sym.min': (a, b) => Math.min(a, b),
};
for (const [op, method] of Object.entries(SYM)) {
  define(op, 'a b', (_tf, { a, b }) => method(a, b));
}
define('sym.neg', 'a', (_tf, { a }) => -a);

export const TRANSLATIONS = Object.freeze(table);

/** The ops of a plan the browser cannot run, in order of first use. */
export function untranslatable(ops) {
  return [...new Set(ops)].filter((op) => !(op in TRANSLATIONS));
}
