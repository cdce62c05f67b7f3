import { writeFileSync } from 'node:fs';
import { join, basename, dirname } from 'node:path';
import onnxProto from 'onnx-proto';
import { atomicFile, writeFileAtomic, type AtomicFile } from '../util/atomic.js';

const { onnx } = onnxProto;
type NodeProto = InstanceType<typeof onnx.NodeProto>;
type TensorProto = InstanceType<typeof onnx.TensorProto>;
type ValueInfoProto = InstanceType<typeof onnx.ValueInfoProto>;

export const DataType = { FLOAT: 1, INT32: 6, INT64: 7, BOOL: 9 } as const;
export type ElemType = (typeof DataType)[keyof typeof DataType];

/** An ONNX attribute value; plain numbers are ints, `floatAttr()` marks a float. */
export type AttrValue = number | readonly number[] | { readonly float: number } | { readonly text: string };
export const floatAttr = (value: number) => ({ float: value });
export const stringAttr = (text: string) => ({ text });

/** A symbolic or fixed dimension of a graph input or output. */
export type Dim = number | string;

/** A node as the builder recorded it: what graph passes (shape inference, differentiation) read. */
export interface GraphNode {
  readonly opType: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attrs: Readonly<Record<string, AttrValue>>;
}

/** The ONNX opset the graphs use: every op Tessera emits exists unchanged from opset 17 on. */
export const OPSET = 17;

/**
 * A small imperative builder for an ONNX graph: add inputs, initializers and nodes by name, then
 * serialise a ModelProto that any onnxruntime can load.
 */
export class GraphBuilder {
  private readonly nodes: NodeProto[] = [];
  private readonly records: GraphNode[] = [];
  /** Operator domains besides the standard one that nodes use (contrib ops). */
  private readonly domains = new Set<string>();
  /** Declared dimensions of inputs and initializers, and the values of small constants (axes, shapes, split sizes, scalars). */
  private readonly dims = new Map<string, readonly Dim[]>();
  private readonly values = new Map<string, readonly number[]>();
  private readonly initializers: { proto: TensorProto; bytes: Uint8Array }[] = [];
  private externalBytes = 0;
  private readonly inputs: ValueInfoProto[] = [];
  private readonly outputs: ValueInfoProto[] = [];
  private readonly used = new Set<string>();
  private readonly constants = new Map<string, string>();

  /**
   * `external`: a graph meant for a file from the start. Its large initializers are written to the external
   * data file as they are added and not kept, so building a graph of any size holds one tensor at a time;
   * `writeTo` that same path completes it.
   */
  constructor(
    readonly name: string,
    private readonly external?: ExternalData,
  ) {}

  /**
   * A builder whose large initializers stream into `graphPath`.data as they are added (see the constructor).
   * A `scratch` graph (one built only to open a session, then deleted) is not synced to disk: its files need
   * no durability, and flushing a stage's hundreds of megabytes cost seconds per session.
   */
  static streamingTo(name: string, graphPath: string, o: { scratch?: boolean } = {}): GraphBuilder {
    return new GraphBuilder(name, new ExternalData(graphPath, o.scratch ?? false));
  }

  /** A fresh tensor name with this prefix. */
  fresh(prefix: string): string {
    let name = prefix;
    for (let i = 1; this.used.has(name); i++) name = `${prefix}_${i}`;
    this.used.add(name);
    return name;
  }

  input(name: string, type: ElemType, dims: readonly Dim[]): string {
    this.used.add(name);
    this.dims.set(name, [...dims]);
    this.inputs.push(valueInfo(name, type, dims));
    return name;
  }

  output(name: string, type: ElemType, dims: readonly Dim[]): void {
    this.outputs.push(valueInfo(name, type, dims));
  }

  /** Exposes an internal tensor as a graph output under its own name (through Identity). */
  expose(tensor: string, outputName: string, dims: readonly Dim[]): void {
    this.used.add(outputName);
    this.nodes.push(onnx.NodeProto.create({ opType: 'Identity', input: [tensor], output: [outputName], name: `expose_${outputName}` }));
    this.records.push({ opType: 'Identity', inputs: [tensor], outputs: [outputName], attrs: {} });
    this.output(outputName, DataType.FLOAT, dims);
  }

  initializer(prefix: string, data: Float32Array | BigInt64Array, dims: readonly number[]): string {
    const name = this.fresh(prefix);
    const type = data instanceof Float32Array ? DataType.FLOAT : DataType.INT64;
    this.dims.set(name, [...dims]);
    if (data.length <= 16) this.values.set(name, Array.from(data, Number));
    const proto = onnx.TensorProto.create({ name, dataType: type, dims: [...dims] });
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (this.external !== undefined && bytes.byteLength >= EXTERNAL_MIN_BYTES) {
      this.external.append(proto, bytes);
      this.externalBytes += bytes.byteLength;
      this.initializers.push({ proto, bytes: new Uint8Array(0) });
    } else this.initializers.push({ proto, bytes });
    return name;
  }

  /** A shared int64 constant (1-D, or a scalar when `scalar` is set). */
  int64(values: readonly number[], scalar = false): string {
    const key = `i64:${scalar}:${values.join(',')}`;
    let name = this.constants.get(key);
    if (name === undefined) {
      name = this.initializer('const_i64', BigInt64Array.from(values.map(BigInt)), scalar ? [] : [values.length]);
      this.constants.set(key, name);
    }
    return name;
  }

  /** A shared float scalar constant. */
  float(value: number): string {
    const key = `f32:${value}`;
    let name = this.constants.get(key);
    if (name === undefined) {
      name = this.initializer('const_f32', Float32Array.of(value), []);
      this.constants.set(key, name);
    }
    return name;
  }

  /** Adds a node with `outputs` fresh outputs named after `prefix`; returns their names. */
  nodeN(opType: string, inputs: readonly string[], outputs: number, attrs: Record<string, AttrValue> = {}, prefix = opType.toLowerCase()): string[] {
    const outs = Array.from({ length: outputs }, (_, i) => this.fresh(outputs === 1 ? prefix : `${prefix}_${i}`));
    this.records.push({ opType, inputs: [...inputs], outputs: outs, attrs });
    // A contrib op is named with its domain ('com.microsoft.GroupQueryAttention'); the model then imports that domain.
    const dot = opType.lastIndexOf('.');
    const domain = dot < 0 ? '' : opType.slice(0, dot);
    if (domain !== '') this.domains.add(domain);
    this.nodes.push(
      onnx.NodeProto.create({
        opType: opType.slice(dot + 1),
        domain,
        input: [...inputs],
        output: outs,
        name: `${opType}_${outs[0]}`,
        attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
      }),
    );
    return outs;
  }

  /**
   * A single-output node whose output is the graph output `outputName` (no Identity in between: for large
   * outputs, such as a training step's updated weights, a copy per step is worth avoiding).
   */
  nodeAsOutput(opType: string, inputs: readonly string[], outputName: string, dims: readonly Dim[], attrs: Record<string, AttrValue> = {}): string {
    if (this.used.has(outputName)) throw new Error(`"${outputName}" is already a tensor of the graph`);
    this.used.add(outputName);
    this.records.push({ opType, inputs: [...inputs], outputs: [outputName], attrs });
    this.nodes.push(onnx.NodeProto.create({ opType, input: [...inputs], output: [outputName], name: `${opType}_${outputName}`, attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)) }));
    this.output(outputName, DataType.FLOAT, dims);
    return outputName;
  }

  /** A single-output node. */
  node(opType: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}, prefix?: string): string {
    return this.nodeN(opType, inputs, 1, attrs, prefix)[0];
  }

  /** The graph's outputs so far, by name. */
  get outputNames(): string[] {
    return this.outputs.map((o) => o.name);
  }

  /** The nodes so far, in the order they were added (a topological order). */
  get nodeList(): readonly GraphNode[] {
    return this.records;
  }

  /** The declared dimensions of an input or initializer. */
  declaredDims(name: string): readonly Dim[] | undefined {
    return this.dims.get(name);
  }

  /** The values of a small constant initializer (at most 16 elements). */
  constantValues(name: string): readonly number[] | undefined {
    return this.values.get(name);
  }

  /** Bytes of all initializers: above ~2 GB a graph must keep them as external data (`writeTo`). */
  get initializerBytes(): number {
    return this.initializers.reduce((s, i) => s + i.bytes.byteLength, this.externalBytes);
  }

  /** The whole model as one self-contained protobuf (under protobuf's 2 GB limit). */
  toBytes(): Uint8Array {
    if (this.external !== undefined) throw new Error('a streaming graph lives in its file: use writeTo');
    for (const init of this.initializers) init.proto.rawData = init.bytes;
    return this.encode();
  }

  /**
   * Writes `path` (the graph) and `path.data` (every initializer of 1 KiB or more, as ONNX external
   * data), each atomically: the form for models of any size, loadable by path in any onnxruntime.
   */
  writeTo(path: string): void {
    if (this.external !== undefined) {
      if (path !== this.external.graphPath) throw new Error(`a streaming graph is written to ${this.external.graphPath}, not ${path}`);
      for (const init of this.initializers) if (init.proto.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) init.proto.rawData = init.bytes;
      this.external.finish();
      if (this.external.scratch) writeFileSync(path, this.encode());
      else writeFileAtomic(path, this.encode());
      return;
    }
    const dataFile = `${basename(path)}.data`;
    const chunks: Uint8Array[] = [];
    let offset = 0;
    for (const init of this.initializers) {
      if (init.bytes.byteLength < 1024) {
        init.proto.rawData = init.bytes;
        continue;
      }
      const pad = alignmentPad(offset);
      if (pad > 0) chunks.push(new Uint8Array(pad));
      offset += pad;
      markExternal(init.proto, dataFile, offset, init.bytes.byteLength);
      chunks.push(init.bytes);
      offset += init.bytes.byteLength;
    }
    writeFileAtomic(join(dirname(path), dataFile), chunks);
    writeFileAtomic(path, this.encode());
  }

  private encode(): Uint8Array {
    const graph = onnx.GraphProto.create({
      name: this.name,
      node: this.nodes,
      initializer: this.initializers.map((i) => i.proto),
      input: this.inputs,
      output: this.outputs,
    });
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: 'tessera',
      opsetImport: [{ domain: '', version: OPSET }, ...[...this.domains].map((domain) => ({ domain, version: 1 }))],
      graph,
    });
    return onnx.ModelProto.encode(model).finish();
  }
}

/** Initializers smaller than this stay inside the graph's protobuf. */
const EXTERNAL_MIN_BYTES = 1024;

/** Keeps every external tensor 64-byte aligned, for mmap-friendly loads. */
const alignmentPad = (offset: number) => (64 - (offset % 64)) % 64;

function markExternal(proto: TensorProto, dataFile: string, offset: number, length: number): void {
  proto.rawData = new Uint8Array(0);
  proto.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
  proto.externalData = [
    onnx.StringStringEntryProto.create({ key: 'location', value: dataFile }),
    onnx.StringStringEntryProto.create({ key: 'offset', value: String(offset) }),
    onnx.StringStringEntryProto.create({ key: 'length', value: String(length) }),
  ];
}

/** A graph's external data file, appended to as initializers are added and put in place when the graph is written. */
class ExternalData {
  private readonly file: string;
  private data: AtomicFile | null;
  private offset = 0;

  constructor(
    readonly graphPath: string,
    readonly scratch: boolean,
  ) {
    this.file = `${basename(graphPath)}.data`;
    this.data = atomicFile(join(dirname(graphPath), this.file), { scratch });
  }

  append(proto: TensorProto, bytes: Uint8Array): void {
    if (this.data === null) throw new Error(`${this.graphPath} is already written`);
    this.offset += alignmentPad(this.offset);
    this.data.write(bytes, this.offset);
    markExternal(proto, this.file, this.offset, bytes.byteLength);
    this.offset += bytes.byteLength;
  }

  finish(): void {
    this.data?.commit();
    this.data = null;
  }
}

function attribute(name: string, v: AttrValue) {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'number') return onnx.AttributeProto.create({ name, type: T.INT, i: v });
  if (Array.isArray(v)) return onnx.AttributeProto.create({ name, type: T.INTS, ints: [...v] });
  if ('text' in (v as object)) return onnx.AttributeProto.create({ name, type: T.STRING, s: new TextEncoder().encode((v as { text: string }).text) });
  return onnx.AttributeProto.create({ name, type: T.FLOAT, f: (v as { float: number }).float });
}

function valueInfo(name: string, type: ElemType, dims: readonly Dim[]): ValueInfoProto {
  return onnx.ValueInfoProto.create({
    name,
    type: {
      tensorType: {
        elemType: type,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  });
}
