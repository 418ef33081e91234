/**
 * ONNX models as plain objects, their encoding to the ONNX protobuf format (onnx/onnx.proto, the
 * field numbers below) and back, and a structural check.
 *
 * Only what facegan's exporters use is modelled: float32 / int64 tensors with `raw_data`,
 * INT / FLOAT / INTS / FLOATS / STRING attributes, tensor-typed graph inputs and outputs with
 * fixed or symbolic dimensions, one default-domain opset.
 */
import os from 'node:os';
import { Message, readFields, repeatedFloats, repeatedInts, toInt, toText, type Field } from './proto.js';

/** TensorProto.DataType values used here. */
export const DataType = { FLOAT: 1, INT64: 7 } as const;
export type DataTypeCode = (typeof DataType)[keyof typeof DataType];

/** AttributeProto.AttributeType values used here. */
const AttrType = { FLOAT: 1, INT: 2, STRING: 3, FLOATS: 6, INTS: 7 } as const;

// Field numbers (onnx.proto).
const F = {
  model: { ir_version: 1, producer_name: 2, producer_version: 3, domain: 4, model_version: 5, doc_string: 6, graph: 7, opset_import: 8, metadata_props: 14 },
  opset: { domain: 1, version: 2 },
  entry: { key: 1, value: 2 },
  graph: { node: 1, name: 2, initializer: 5, doc_string: 10, input: 11, output: 12, value_info: 13 },
  node: { input: 1, output: 2, name: 3, op_type: 4, attribute: 5, doc_string: 6, domain: 7 },
  attr: { name: 1, f: 2, i: 3, s: 4, t: 5, floats: 7, ints: 8, type: 20 },
  tensor: { dims: 1, data_type: 2, float_data: 4, int64_data: 7, name: 8, raw_data: 9, data_location: 14 },
  valueInfo: { name: 1, type: 2, doc_string: 3 },
  typeProto: { tensor_type: 1 },
  typeTensor: { elem_type: 1, shape: 2 },
  shape: { dim: 1 },
  dim: { dim_value: 1, dim_param: 2 },
} as const;

export type Attr = { i: number } | { f: number } | { ints: readonly number[] } | { floats: readonly number[] } | { s: string };

export interface OnnxTensor {
  name: string;
  dims: readonly number[];
  dataType: DataTypeCode;
  /** Float32Array for FLOAT, BigInt64Array for INT64. */
  data: Float32Array | BigInt64Array;
}

export interface OnnxNode {
  op: string;
  name: string;
  inputs: readonly string[];
  outputs: readonly string[];
  attrs: Readonly<Record<string, Attr>>;
}

export interface OnnxValueInfo {
  name: string;
  elemType: DataTypeCode;
  /** Fixed sizes, or a string for a symbolic dimension (e.g. the batch `N`). */
  dims: readonly (number | string)[];
}

export interface OnnxGraph {
  name: string;
  doc?: string;
  nodes: OnnxNode[];
  initializers: OnnxTensor[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
}

export interface OnnxModel {
  irVersion: number;
  opset: number;
  producerName: string;
  producerVersion: string;
  doc?: string;
  metadata?: Readonly<Record<string, string>>;
  graph: OnnxGraph;
}

/**
 * The IR version that goes with an ai.onnx opset: the version of the ONNX release that introduced
 * that opset (onnx 1.8/1.9 → IR 7, 1.10–1.13 → 8, 1.14/1.15 → 9, 1.16/1.17 → 10, 1.18+ → 11).
 */
export function irVersionForOpset(opset: number): number {
  if (opset <= 14) return 7;
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  if (opset <= 22) return 10;
  return 11;
}

const littleEndian = os.endianness() === 'LE';

function rawBytes(data: Float32Array | BigInt64Array): Uint8Array {
  const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (littleEndian) return view;
  // raw_data is little-endian whatever the host: swap each element's bytes.
  const size = data.BYTES_PER_ELEMENT;
  const out = new Uint8Array(view.length);
  for (let i = 0; i < view.length; i += size) for (let j = 0; j < size; j++) out[i + j] = view[i + size - 1 - j]!;
  return out;
}

function encodeTensor(t: OnnxTensor): Message {
  const count = t.dims.reduce((a, b) => a * b, 1);
  if (count !== t.data.length) throw new RangeError(`ONNX tensor ${t.name}: dims [${t.dims.join(', ')}] hold ${count} values, data has ${t.data.length}`);
  const m = new Message();
  m.ints(F.tensor.dims, t.dims);
  m.int(F.tensor.data_type, t.dataType);
  m.string(F.tensor.name, t.name);
  m.bytes(F.tensor.raw_data, rawBytes(t.data));
  return m;
}

function encodeAttr(name: string, a: Attr): Message {
  const m = new Message().string(F.attr.name, name);
  if ('i' in a) m.int(F.attr.type, AttrType.INT).int(F.attr.i, a.i);
  else if ('f' in a) m.int(F.attr.type, AttrType.FLOAT).float(F.attr.f, a.f);
  else if ('ints' in a) m.int(F.attr.type, AttrType.INTS).ints(F.attr.ints, a.ints);
  else if ('floats' in a) m.int(F.attr.type, AttrType.FLOATS).floats(F.attr.floats, a.floats);
  else m.int(F.attr.type, AttrType.STRING).string(F.attr.s, a.s);
  return m;
}

function encodeNode(n: OnnxNode): Message {
  const m = new Message();
  for (const i of n.inputs) m.string(F.node.input, i);
  for (const o of n.outputs) m.string(F.node.output, o);
  m.string(F.node.name, n.name);
  m.string(F.node.op_type, n.op);
  for (const [k, v] of Object.entries(n.attrs)) m.message(F.node.attribute, encodeAttr(k, v));
  return m;
}

function encodeValueInfo(v: OnnxValueInfo): Message {
  const shape = new Message();
  for (const d of v.dims) {
    const dim = new Message();
    if (typeof d === 'number') dim.int(F.dim.dim_value, d);
    else dim.string(F.dim.dim_param, d);
    shape.message(F.shape.dim, dim);
  }
  const tensorType = new Message().int(F.typeTensor.elem_type, v.elemType).message(F.typeTensor.shape, shape);
  const type = new Message().message(F.typeProto.tensor_type, tensorType);
  return new Message().string(F.valueInfo.name, v.name).message(F.valueInfo.type, type);
}

/** Serialises a model to ONNX protobuf bytes (one buffer; initializers inline as raw_data). */
export function encodeModel(model: OnnxModel): Uint8Array {
  const g = model.graph;
  const graph = new Message();
  for (const n of g.nodes) graph.message(F.graph.node, encodeNode(n));
  graph.string(F.graph.name, g.name);
  for (const t of g.initializers) graph.message(F.graph.initializer, encodeTensor(t));
  if (g.doc) graph.string(F.graph.doc_string, g.doc);
  for (const v of g.inputs) graph.message(F.graph.input, encodeValueInfo(v));
  for (const v of g.outputs) graph.message(F.graph.output, encodeValueInfo(v));

  const m = new Message();
  m.int(F.model.ir_version, model.irVersion);
  m.string(F.model.producer_name, model.producerName);
  m.string(F.model.producer_version, model.producerVersion);
  if (model.doc) m.string(F.model.doc_string, model.doc);
  m.message(F.model.graph, graph);
  m.message(F.model.opset_import, new Message().string(F.opset.domain, '').int(F.opset.version, model.opset));
  for (const [k, v] of Object.entries(model.metadata ?? {})) {
    m.message(F.model.metadata_props, new Message().string(F.entry.key, k).string(F.entry.value, v));
  }
  return m.finish();
}

// ---------------------------------------------------------------------------------------------
// Decoding (for checks and tests; it reads what encodeModel writes and ordinary ONNX files).

export interface DecodedTensor {
  name: string;
  dims: number[];
  dataType: number;
  /** raw_data when present (a view into the file). */
  raw?: Uint8Array;
  floatData?: number[];
  int64Data?: number[];
  external: boolean;
}

export interface DecodedNode {
  op: string;
  name: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, Attr | { type: number }>;
}

export interface DecodedValueInfo {
  name: string;
  elemType: number;
  dims: (number | string)[];
}

export interface DecodedModel {
  irVersion: number;
  opsets: { domain: string; version: number }[];
  producerName: string;
  producerVersion: string;
  doc: string;
  metadata: Record<string, string>;
  graph: {
    name: string;
    nodes: DecodedNode[];
    initializers: DecodedTensor[];
    inputs: DecodedValueInfo[];
    outputs: DecodedValueInfo[];
  };
}

function text(fields: Field[], field: number): string {
  let out = '';
  for (const f of fields) if (f.field === field && f.wire === 2) out = toText(f.value);
  return out;
}

function texts(fields: Field[], field: number): string[] {
  return fields.filter((f) => f.field === field && f.wire === 2).map((f) => toText(f.value as Uint8Array));
}

function int(fields: Field[], field: number, dflt = 0): number {
  let out = dflt;
  for (const f of fields) if (f.field === field && f.wire === 0) out = toInt(f.value);
  return out;
}

function messages(fields: Field[], field: number): Field[][] {
  return fields.filter((f) => f.field === field && f.wire === 2).map((f) => readFields(f.value as Uint8Array));
}

function decodeTensor(fields: Field[]): DecodedTensor {
  const raw = fields.find((f) => f.field === F.tensor.raw_data && f.wire === 2);
  const floats = repeatedFloats(fields, F.tensor.float_data);
  const ints = repeatedInts(fields, F.tensor.int64_data);
  return {
    name: text(fields, F.tensor.name),
    dims: repeatedInts(fields, F.tensor.dims),
    dataType: int(fields, F.tensor.data_type),
    raw: raw?.value as Uint8Array | undefined,
    floatData: floats.length > 0 ? floats : undefined,
    int64Data: ints.length > 0 ? ints : undefined,
    external: int(fields, F.tensor.data_location) === 1,
  };
}

function decodeAttr(fields: Field[]): [string, Attr | { type: number }] {
  const name = text(fields, F.attr.name);
  const type = int(fields, F.attr.type);
  switch (type) {
    case AttrType.INT: return [name, { i: int(fields, F.attr.i) }];
    case AttrType.FLOAT: return [name, { f: repeatedFloats(fields, F.attr.f)[0] ?? 0 }];
    case AttrType.INTS: return [name, { ints: repeatedInts(fields, F.attr.ints) }];
    case AttrType.FLOATS: return [name, { floats: repeatedFloats(fields, F.attr.floats) }];
    case AttrType.STRING: return [name, { s: text(fields, F.attr.s) }];
    default: return [name, { type }];
  }
}

function decodeValueInfo(fields: Field[]): DecodedValueInfo {
  const name = text(fields, F.valueInfo.name);
  const type = messages(fields, F.valueInfo.type)[0] ?? [];
  const tensor = messages(type, F.typeProto.tensor_type)[0] ?? [];
  const shape = messages(tensor, F.typeTensor.shape)[0] ?? [];
  const dims = messages(shape, F.shape.dim).map((d) => {
    const param = d.find((f) => f.field === F.dim.dim_param);
    return param ? text(d, F.dim.dim_param) : int(d, F.dim.dim_value);
  });
  return { name, elemType: int(tensor, F.typeTensor.elem_type), dims };
}

/** Parses ONNX protobuf bytes (the subset above). Throws RangeError on malformed protobuf. */
export function decodeModel(bytes: Uint8Array): DecodedModel {
  const m = readFields(bytes);
  const g = messages(m, F.model.graph)[0] ?? [];
  const metadata: Record<string, string> = {};
  for (const e of messages(m, F.model.metadata_props)) metadata[text(e, F.entry.key)] = text(e, F.entry.value);
  return {
    irVersion: int(m, F.model.ir_version),
    opsets: messages(m, F.model.opset_import).map((o) => ({ domain: text(o, F.opset.domain), version: int(o, F.opset.version) })),
    producerName: text(m, F.model.producer_name),
    producerVersion: text(m, F.model.producer_version),
    doc: text(m, F.model.doc_string),
    metadata,
    graph: {
      name: text(g, F.graph.name),
      nodes: messages(g, F.graph.node).map((n) => ({
        op: text(n, F.node.op_type),
        name: text(n, F.node.name),
        domain: text(n, F.node.domain),
        inputs: texts(n, F.node.input),
        outputs: texts(n, F.node.output),
        attrs: Object.fromEntries(messages(n, F.node.attribute).map(decodeAttr)),
      })),
      initializers: messages(g, F.graph.initializer).map(decodeTensor),
      inputs: messages(g, F.graph.input).map(decodeValueInfo),
      outputs: messages(g, F.graph.output).map(decodeValueInfo),
    },
  };
}

const ELEMENT_SIZE: Record<number, number> = { [DataType.FLOAT]: 4, [DataType.INT64]: 8 };

/**
 * Structural checks of a decoded model; returns the list of problems (empty when it is sound):
 * an IR version and a default-domain opset are present, every node input is a graph input, an
 * initializer or an earlier node's output (so the nodes are in topological order), every value is
 * produced once, every graph output is produced, initializers' data match their dims, the graph
 * inputs and outputs are typed tensors, and (when `allowedOps` is given) only those ops appear.
 */
export function checkModel(model: DecodedModel, allowedOps?: ReadonlySet<string>): string[] {
  const problems: string[] = [];
  if (model.irVersion < 3) problems.push(`ir_version ${model.irVersion} is missing or too old`);
  const onnxOpset = model.opsets.find((o) => o.domain === '' || o.domain === 'ai.onnx');
  if (!onnxOpset || onnxOpset.version < 1) problems.push('no ai.onnx opset_import');
  const g = model.graph;
  const defined = new Set<string>();
  const define = (name: string, what: string): void => {
    if (name === '') return;
    if (defined.has(name)) problems.push(`${what} redefines value '${name}'`);
    defined.add(name);
  };
  for (const v of g.inputs) {
    define(v.name, `graph input`);
    if (v.elemType === 0) problems.push(`graph input '${v.name}' has no element type`);
  }
  for (const t of g.initializers) {
    if (t.name === '') problems.push('an initializer has no name');
    if (!g.inputs.some((v) => v.name === t.name)) define(t.name, `initializer`);
    const count = t.dims.reduce((a, b) => a * b, 1);
    const size = ELEMENT_SIZE[t.dataType];
    if (size === undefined) problems.push(`initializer '${t.name}' has data type ${t.dataType}`);
    else if (t.external) problems.push(`initializer '${t.name}' uses external data`);
    else if (t.raw !== undefined && t.raw.length !== count * size) problems.push(`initializer '${t.name}' raw_data is ${t.raw.length} bytes, dims need ${count * size}`);
    else if (t.raw === undefined && (t.floatData?.length ?? t.int64Data?.length ?? 0) !== count) problems.push(`initializer '${t.name}' holds the wrong number of values`);
  }
  const names = new Set<string>();
  g.nodes.forEach((n, k) => {
    const label = `node ${k} (${n.op} '${n.name}')`;
    if (n.name !== '') {
      if (names.has(n.name)) problems.push(`${label}: duplicate node name`);
      names.add(n.name);
    }
    if (n.domain !== '' && n.domain !== 'ai.onnx') problems.push(`${label}: domain '${n.domain}' is not ai.onnx`);
    if (allowedOps && !allowedOps.has(n.op)) problems.push(`${label}: op ${n.op} is not in the allowed list`);
    for (const i of n.inputs) if (i !== '' && !defined.has(i)) problems.push(`${label}: input '${i}' is not defined before it`);
    for (const o of n.outputs) define(o, label);
    if (n.outputs.length === 0) problems.push(`${label}: no outputs`);
  });
  for (const o of g.outputs) {
    if (!defined.has(o.name)) problems.push(`graph output '${o.name}' is never produced`);
    if (o.elemType === 0) problems.push(`graph output '${o.name}' has no element type`);
  }
  return problems;
}
