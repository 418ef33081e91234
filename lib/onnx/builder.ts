/**
 * A small ONNX graph builder: unique value names, initializers, nodes, and the few ops whose
 * signature changed between the opsets the exporters support (13 and later):
 * ReduceMean takes `axes` as an attribute before opset 18 and as an input from 18 on.
 */
import { DataType, irVersionForOpset, type Attr, type OnnxGraph, type OnnxModel, type OnnxNode, type OnnxTensor, type OnnxValueInfo } from './model.js';

export class GraphBuilder {
  readonly nodes: OnnxNode[] = [];
  readonly initializers: OnnxTensor[] = [];
  readonly inputs: OnnxValueInfo[] = [];
  readonly outputs: OnnxValueInfo[] = [];
  readonly #used = new Set<string>();
  readonly #scalars = new Map<string, string>();
  readonly #ints = new Map<string, string>();

  constructor(readonly opset: number) {}

  /** A value name not used yet: `base`, else `base_1`, `base_2`, … */
  unique(base: string): string {
    let name = base;
    for (let k = 1; this.#used.has(name); k++) name = `${base}_${k}`;
    this.#used.add(name);
    return name;
  }

  /** Declares a float32 (default) graph input; returns its name (exactly `name`). */
  input(name: string, dims: readonly (number | string)[], elemType: OnnxValueInfo['elemType'] = DataType.FLOAT): string {
    if (this.#used.has(name)) throw new Error(`ONNX builder: input name '${name}' is taken`);
    this.#used.add(name);
    this.inputs.push({ name, elemType, dims });
    return name;
  }

  /** Declares `value` (already produced) as a graph output. */
  output(value: string, dims: readonly (number | string)[], elemType: OnnxValueInfo['elemType'] = DataType.FLOAT): void {
    this.outputs.push({ name: value, elemType, dims });
  }

  /** A float32 initializer; returns its (unique) name. */
  tensor(name: string, dims: readonly number[], data: Float32Array): string {
    const n = this.unique(name);
    this.initializers.push({ name: n, dims: dims.slice(), dataType: DataType.FLOAT, data });
    return n;
  }

  /** An int64 initializer (shapes, axes, indices). Identical ones are shared. */
  int64(dims: readonly number[], values: readonly number[]): string {
    const k = `${dims.join('x')}:${values.join(',')}`;
    let n = this.#ints.get(k);
    if (n === undefined) {
      n = this.unique(`const_i64_${values.join('_').replace(/-/g, 'm')}`);
      this.initializers.push({ name: n, dims: dims.slice(), dataType: DataType.INT64, data: BigInt64Array.from(values, (v) => BigInt(v)) });
      this.#ints.set(k, n);
    }
    return n;
  }

  /** A float32 scalar (rank 0) initializer, shared by value. `value` is rounded to float32. */
  scalar(value: number): string {
    const v = Math.fround(value);
    const k = Object.is(v, -0) ? '-0' : String(v);
    let n = this.#scalars.get(k);
    if (n === undefined) {
      n = this.unique(`const_f32_${this.#scalars.size}`);
      this.initializers.push({ name: n, dims: [], dataType: DataType.FLOAT, data: Float32Array.of(v) });
      this.#scalars.set(k, n);
    }
    return n;
  }

  /** Adds a node with one output (named `out`, exactly, when given) and returns that output. */
  op(op: string, inputs: readonly string[], attrs: Readonly<Record<string, Attr>> = {}, out?: string): string {
    let output: string;
    if (out !== undefined) {
      if (this.#used.has(out)) throw new Error(`ONNX builder: value name '${out}' is taken`);
      this.#used.add(out);
      output = out;
    } else {
      output = this.unique(`${op.toLowerCase()}_${this.nodes.length}`);
    }
    this.nodes.push({ op, name: `${op}_${this.nodes.length}`, inputs: inputs.slice(), outputs: [output], attrs });
    return output;
  }

  // Ops whose form depends on the opset.

  reduceMean(x: string, axes: readonly number[], keepdims: boolean): string {
    if (this.opset >= 18) return this.op('ReduceMean', [x, this.int64([axes.length], axes)], { keepdims: { i: keepdims ? 1 : 0 } });
    return this.op('ReduceMean', [x], { axes: { ints: axes }, keepdims: { i: keepdims ? 1 : 0 } });
  }

  unsqueeze(x: string, axes: readonly number[]): string {
    return this.op('Unsqueeze', [x, this.int64([axes.length], axes)]);
  }

  clip(x: string, min: number, max: number): string {
    return this.op('Clip', [x, this.scalar(min), this.scalar(max)]);
  }

  graph(name: string, doc?: string): OnnxGraph {
    return { name, doc, nodes: this.nodes, initializers: this.initializers, inputs: this.inputs, outputs: this.outputs };
  }

  model(name: string, meta: { producerVersion: string; doc?: string; metadata?: Record<string, string> }): OnnxModel {
    return {
      irVersion: irVersionForOpset(this.opset),
      opset: this.opset,
      producerName: 'facegan-native',
      producerVersion: meta.producerVersion,
      doc: meta.doc,
      metadata: meta.metadata,
      graph: this.graph(name, meta.doc),
    };
  }
}
