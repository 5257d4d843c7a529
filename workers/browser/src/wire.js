// The grid's binary formats: length-framed protobuf messages, model state
// streams (StateChunk parts), plan files and report bodies.
import { protobuf, tf } from './deps.js';
import descriptor from './protos.js';
import { DTYPE_NAMES } from './ops.js';

export const CHUNK_BYTES = 1024 * 1024;
const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;
const DTYPE_CODES = { float32: 1, int64: 5, int32: 6, int16: 7, int8: 8, uint8: 9, bool: 10 };
const ITEM_BYTES = { 1: 4, 2: 8, 3: 2, 4: 2, 5: 8, 6: 4, 7: 2, 8: 1, 9: 1, 10: 1 };

let types = null;

/** The protobufjs message types of fedgrid.v1 the worker reads and writes. */
export function messages() {
  if (!types) {
    const root = protobuf().Root.fromJSON(descriptor);
    const type = (name) => root.lookupType(`fedgrid.v1.${name}`);
    types = {
      Plan: type('Plan'),
      PlanFile: type('PlanFile'),
      Report: type('Report'),
      StateChunk: type('StateChunk'),
    };
  }
  return types;
}

/** An int64 field as a JavaScript number, whichever form protobufjs gave. */
export function toNumber(value) {
  if (typeof value === 'number') return value;
  if (value && typeof value.toNumber === 'function') return value.toNumber();
  return Number(value);
}

/** One message preceded by its length as a 4-byte big-endian integer. */
export function frame(bytes) {
  const out = new Uint8Array(4 + bytes.length);
  new DataView(out.buffer).setUint32(0, bytes.length, false);
  out.set(bytes, 4);
  return out;
}

/** Split framed bytes into the messages' bytes; refuse a truncated body. */
export function* readFrames(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 0;
  while (offset < bytes.length) {
    if (offset + 4 > bytes.length) {
      throw new Error(`a frame header is cut off at byte ${offset}`);
    }
    const length = view.getUint32(offset, false);
    if (offset + 4 + length > bytes.length) {
      throw new Error(`a frame of ${length} bytes at byte ${offset} is cut off`);
    }
    yield bytes.subarray(offset + 4, offset + 4 + length);
    offset += 4 + length;
  }
}

export function concat(parts) {
  const total = parts.reduce((sum, part) => sum + part.length, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function aligned(bytes) {
  return bytes.slice().buffer; // a copy starts at offset 0, so any view aligns
}

/** Tensor values for TensorFlow.js from little-endian bytes of a wire dtype. */
export function valuesFromBytes(code, bytes, where) {
  switch (code) {
    case 1:
      return { values: new Float32Array(aligned(bytes)), dtype: 'float32' };
    case 5: {
      const wide = new BigInt64Array(aligned(bytes));
      const values = new Int32Array(wide.length);
      for (let i = 0; i < wide.length; i += 1) {
        const value = wide[i];
        if (value < INT32_MIN || value > INT32_MAX) {
          throw new Error(
            `${where} holds ${value}, which does not fit int32 (TensorFlow.js has ` +
              'no int64)',
          );
        }
        values[i] = Number(value);
      }
      return { values, dtype: 'int32' };
    }
    case 6:
      return { values: new Int32Array(aligned(bytes)), dtype: 'int32' };
    case 7:
      return { values: Int32Array.from(new Int16Array(aligned(bytes))), dtype: 'int32' };
    case 8:
      return { values: Int32Array.from(new Int8Array(aligned(bytes))), dtype: 'int32' };
    case 9:
      return { values: Int32Array.from(bytes), dtype: 'int32' };
    case 10:
      return { values: Uint8Array.from(bytes), dtype: 'bool' };
    default:
      throw new Error(
        `${where} is ${DTYPE_NAMES[code] ?? `dtype ${code}`}; TensorFlow.js has ` +
          'float32, int32 and bool only',
      );
  }
}

/** Little-endian bytes of a tensor's values in a wire dtype. */
export function bytesFromValues(code, values) {
  let array;
  switch (code) {
    case 1:
      array = Float32Array.from(values);
      break;
    case 5:
      array = BigInt64Array.from(values, (value) => BigInt(value));
      break;
    case 6:
      array = Int32Array.from(values);
      break;
    case 7:
      array = Int16Array.from(values);
      break;
    case 8:
      array = Int8Array.from(values);
      break;
    case 9:
    case 10:
      array = Uint8Array.from(values);
      break;
    default:
      throw new Error(`cannot write ${DTYPE_NAMES[code] ?? code} values`);
  }
  return new Uint8Array(array.buffer);
}

/**
 * A framed state stream as {tensors: {name: tf.Tensor}, dtypes: {name: code}};
 * dtypes keeps each tensor's wire dtype so a diff goes back in the same one.
 */
export function decodeState(bytes) {
  const { StateChunk } = messages();
  const entries = [];
  let open = null;
  const close = () => {
    if (!open) return;
    const expected = open.count * ITEM_BYTES[open.dtype];
    const received = open.parts.reduce((sum, part) => sum + part.length, 0);
    if (received !== expected) {
      throw new Error(
        `tensor ${open.name} has ${received} data bytes; its header says ${expected}`,
      );
    }
    entries.push(open);
    open = null;
  };
  for (const part of readFrames(bytes)) {
    const chunk = StateChunk.decode(part);
    if (chunk.part === 'header') {
      close();
      const shape = chunk.header.shape.map(toNumber);
      open = {
        name: chunk.header.name,
        dtype: chunk.header.dtype,
        shape,
        count: shape.reduce((a, b) => a * b, 1),
        parts: [],
      };
    } else if (chunk.part === 'data') {
      if (!open) throw new Error('a state stream starts with data, not a header');
      open.parts.push(chunk.data);
    }
  }
  close();
  const lib = tf();
  const tensors = {};
  const dtypes = {};
  for (const entry of entries) {
    const where = `tensor ${entry.name}`;
    const { values, dtype } = valuesFromBytes(entry.dtype, concat(entry.parts), where);
    tensors[entry.name] = lib.tensor(values, entry.shape, dtype);
    dtypes[entry.name] = entry.dtype;
  }
  return { tensors, dtypes };
}

/** Framed StateChunk parts of named tensors, each in its wire dtype. */
export function encodeState(tensors, dtypes = {}, chunkBytes = CHUNK_BYTES) {
  const { StateChunk } = messages();
  const parts = [];
  for (const [name, tensor] of Object.entries(tensors)) {
    const code = dtypes[name] ?? DTYPE_CODES[tensor.dtype];
    const header = { name, dtype: code, shape: tensor.shape };
    parts.push(frame(StateChunk.encode({ header }).finish()));
    const data = bytesFromValues(code, tensor.dataSync());
    for (let start = 0; start < data.length; start += chunkBytes) {
      const piece = data.subarray(start, start + chunkBytes);
      parts.push(frame(StateChunk.encode({ data: piece }).finish()));
    }
  }
  return concat(parts);
}

async function sha256(bytes) {
  const digest = await globalThis.crypto.subtle.digest('SHA-256', bytes);
  return new Uint8Array(digest);
}

/** The Plan message inside PlanFile bytes, after checking its digest. */
export async function decodePlanFile(bytes) {
  const { Plan, PlanFile } = messages();
  let envelope;
  try {
    envelope = PlanFile.decode(bytes);
  } catch (error) {
    throw new Error(`plan bytes are truncated or not a plan (${bytes.length} bytes)`);
  }
  if (!envelope.sha256 || envelope.sha256.length !== 32) {
    throw new Error('plan bytes are truncated or not a plan: the digest is missing');
  }
  const digest = await sha256(envelope.plan);
  if (digest.some((byte, i) => byte !== envelope.sha256[i])) {
    throw new Error('plan bytes are damaged: the digest does not match');
  }
  return Plan.decode(envelope.plan);
}

/** A report body: the framed Report, then the framed diff state stream. */
export function reportBody(requestKey, sampleCount, metrics, diff, dtypes) {
  const { Report } = messages();
  const report = Report.encode({
    request_key: requestKey,
    sample_count: sampleCount,
    metrics,
  }).finish();
  return concat([frame(report), encodeState(diff, dtypes)]);
}
