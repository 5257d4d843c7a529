// A plan interpreter: runs a downloaded op-list plan with TensorFlow.js.
import { tf } from './deps.js';
import { DType, DTYPE_NAMES, DTYPES, TRANSLATIONS } from './ops.js';
import { decodePlanFile, toNumber, valuesFromBytes } from './wire.js';

export const InputKind = { STATE: 1, DATA: 2, HYPERPARAMETER: 3, DIFF: 4 };
const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;

class Ref {
  constructor(name) {
    this.name = name;
  }
}

/** A layout, device or memory-format argument: nothing to do in TensorFlow.js. */
class Marker {
  constructor(kind, value) {
    this.kind = kind;
    this.value = value;
  }
}

function decodeArgument(argument, where) {
  switch (argument.kind) {
    case 'ref':
      return new Ref(argument.ref);
    case 'float_value':
      return argument.float_value;
    case 'int_value':
      return toNumber(argument.int_value);
    case 'bool_value':
      return argument.bool_value;
    case 'none':
      return null;
    case 'string_value':
      return argument.string_value;
    case 'dtype': {
      const dtype = new DType(argument.dtype);
      try {
        void dtype.tf;
      } catch (error) {
        throw new Error(`${where}: ${error.message}`);
      }
      return dtype;
    }
    case 'device':
      return new Marker('device', argument.device);
    case 'layout':
      return new Marker('layout', argument.layout);
    case 'memory_format':
      return new Marker('memory_format', argument.memory_format);
    case 'list':
      return argument.list.items.map((item) => decodeArgument(item, where));
    default:
      throw new Error(`${where}: unreadable argument (${argument.kind ?? 'empty'})`);
  }
}

function collectRefs(value, names) {
  if (value instanceof Ref) names.push(value.name);
  else if (Array.isArray(value)) value.forEach((item) => collectRefs(item, names));
  return names;
}

function inputTensor(lib, spec, value) {
  const dtype = DTYPES[spec.dtype];
  if (!dtype) {
    throw new Error(
      `input ${spec.name} is ${DTYPE_NAMES[spec.dtype]}; TensorFlow.js has no such dtype`,
    );
  }
  if (value instanceof lib.Tensor) {
    if (value.dtype !== dtype) {
      throw new Error(`input ${spec.name} has dtype ${value.dtype}; the plan expects ${dtype}`);
    }
    return value;
  }
  if (value instanceof BigInt64Array || value instanceof BigUint64Array) {
    const bytes = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    return lib.tensor(valuesFromBytes(5, bytes, `input ${spec.name}`).values, undefined, dtype);
  }
  if (typeof value === 'object' && value !== null && 'values' in value && 'shape' in value) {
    return inputTensor(lib, spec, lib.tensor(checkedValues(spec, value.values), value.shape, dtype));
  }
  return lib.tensor(checkedValues(spec, value), undefined, dtype);
}

function checkedValues(spec, values) {
  if (DTYPES[spec.dtype] !== 'int32') return values;
  const flat = typeof values === 'number' ? [values] : Array.from(values).flat(Infinity);
  for (const value of flat) {
    if (!Number.isInteger(Number(value)) || value < INT32_MIN || value > INT32_MAX) {
      throw new Error(
        `input ${spec.name} holds ${value}, which does not fit int32 (TensorFlow.js ` +
          'has no int64)',
      );
    }
  }
  return values;
}

/** A downloaded plan made runnable: `plan.run({name: value})` -> {name: tf.Tensor}. */
export class Plan {
  /** Decode and check PlanFile bytes; the error names what the browser cannot run. */
  static async fromBytes(bytes) {
    return new Plan(await decodePlanFile(bytes));
  }

  constructor(message) {
    this.name = message.name;
    this.kind = message.kind;
    this.inputs = message.inputs.map((input) => ({
      name: input.name,
      kind: input.kind,
      dtype: input.dtype,
      shape: input.shape.map((dim) => (dim.kind === 'symbol' ? dim.symbol : toNumber(dim.size))),
    }));
    this.outputs = message.outputs.map((output) => [output.name, output.ref]);
    const missing = [...new Set(message.nodes.map((node) => node.op))].filter(
      (op) => !(op in TRANSLATIONS),
    );
    if (missing.length) {
      throw new Error(
        `plan ${this.name} uses op ${missing[0]}, which has no TensorFlow.js ` +
          'translation: the browser worker cannot run it',
      );
    }
    const known = new Set(this.inputs.map((input) => input.name));
    this.constants = message.constants.map((item) => {
      known.add(item.name);
      return item;
    });
    this.nodes = message.nodes.map((node, index) => this._compile(node, index, known));
    for (const [name, ref] of this.outputs) {
      if (!known.has(ref)) throw new Error(`output ${name} refers to unknown value ${ref}`);
    }
    this._constantTensors = null;
  }

  _compile(node, index, known) {
    const where = `plan ${this.name}, node ${index} (${node.op})`;
    const entry = TRANSLATIONS[node.op];
    const args = node.args.map((argument) => decodeArgument(argument, where));
    if (args.length > entry.params.length) {
      throw new Error(`${where}: ${args.length} arguments; the op takes ${entry.params.length}`);
    }
    const kwargs = {};
    for (const item of node.kwargs) {
      if (!entry.params.includes(item.name)) {
        throw new Error(`${where}: unknown keyword argument ${item.name}`);
      }
      kwargs[item.name] = decodeArgument(item.value, where);
    }
    for (const name of collectRefs([args, Object.values(kwargs)], [])) {
      if (!known.has(name)) throw new Error(`${where}: unknown ref ${name}`);
    }
    node.outputs.filter(Boolean).forEach((name) => known.add(name));
    const inPlace = entry.inPlace === undefined ? null : args[entry.inPlace];
    return { op: node.op, where, entry, args, kwargs, outputs: node.outputs, inPlace };
  }

  /** Names of the inputs that are model state, in model order. */
  get stateNames() {
    return this.inputs.filter((i) => i.kind === InputKind.STATE).map((i) => i.name);
  }

  /** The distinct ops the plan uses. */
  get ops() {
    return [...new Set(this.nodes.map((node) => node.op))];
  }

  _constants(lib) {
    if (!this._constantTensors) {
      this._constantTensors = new Map();
      for (const item of this.constants) {
        const shape = item.tensor.shape.map(toNumber);
        const { values, dtype } = valuesFromBytes(
          item.tensor.dtype,
          item.tensor.data,
          `constant ${item.name}`,
        );
        this._constantTensors.set(item.name, lib.tensor(values, shape, dtype));
      }
    }
    return this._constantTensors;
  }

  _bind(lib, inputs, env, given) {
    const symbols = {};
    for (const spec of this.inputs) {
      if (!(spec.name in inputs)) throw new Error(`plan ${this.name}: missing input ${spec.name}`);
      const tensor = inputTensor(lib, spec, inputs[spec.name]);
      if (tensor.rank !== spec.shape.length) {
        throw new Error(
          `input ${spec.name} has shape [${tensor.shape}]; the plan expects ` +
            `${spec.shape.length} dimensions [${spec.shape}]`,
        );
      }
      spec.shape.forEach((expected, axis) => {
        const size = tensor.shape[axis];
        if (typeof expected === 'string') {
          symbols[expected] ??= [size, spec.name];
          if (symbols[expected][0] !== size) {
            throw new Error(
              `input ${spec.name} has ${expected} size ${size}; input ` +
                `${symbols[expected][1]} has ${symbols[expected][0]}`,
            );
          }
        } else if (size !== expected) {
          throw new Error(
            `input ${spec.name} has size ${size} on dimension ${axis}; the plan expects ${expected}`,
          );
        }
      });
      env.set(spec.name, tensor);
      if (tensor === inputs[spec.name]) given.add(tensor);
    }
    const extra = Object.keys(inputs).filter((key) => !this.inputs.some((s) => s.name === key));
    if (extra.length) throw new Error(`plan ${this.name}: unknown input ${extra[0]}`);
  }

  /**
   * Run the plan once. Every intermediate tensor is freed before it returns;
   * the caller owns (and disposes) the returned tensors.
   */
  run(inputs) {
    const lib = tf();
    const constants = this._constants(lib);
    return lib.tidy(() => {
      const env = new Map(constants);
      const given = new Set();
      this._bind(lib, inputs, env, given);
      const resolve = (value) => {
        if (value instanceof Ref) return env.get(value.name);
        if (Array.isArray(value)) return value.map(resolve);
        return value;
      };
      for (const node of this.nodes) {
        const bound = {};
        node.args.forEach((value, i) => {
          bound[node.entry.params[i]] = resolve(value);
        });
        for (const [key, value] of Object.entries(node.kwargs)) bound[key] = resolve(value);
        let result;
        try {
          result = node.entry.run(lib, bound);
        } catch (error) {
          throw new Error(`${node.where} failed: ${error.message}`);
        }
        if (node.entry.multiple) {
          node.outputs.forEach((name, i) => name && env.set(name, result[i]));
        } else {
          env.set(node.outputs[0], result);
        }
        if (node.inPlace instanceof Ref) env.set(node.inPlace.name, result);
      }
      const outputs = {};
      for (const [name, ref] of this.outputs) {
        const value = env.get(ref);
        outputs[name] = given.has(value) || constants.get(ref) === value ? value.clone() : value;
      }
      return outputs;
    });
  }

  /** Free the plan's constants. */
  dispose() {
    if (this._constantTensors) {
      for (const tensor of this._constantTensors.values()) tensor.dispose();
      this._constantTensors = null;
    }
  }
}
