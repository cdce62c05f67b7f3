import type { AttrValue, GraphBuilder, GraphNode } from './graph-builder.js';

/** A fully known tensor shape. */
export type Shape = readonly number[];

const normalise = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

/** Numpy-style broadcasting of shapes. */
export function broadcast(...shapes: Shape[]): Shape {
  const rank = Math.max(...shapes.map((s) => s.length));
  return Array.from({ length: rank }, (_, i) => {
    const dims = shapes.map((s) => s[s.length - rank + i] ?? 1);
    const big = Math.max(...dims);
    if (dims.some((d) => d !== 1 && d !== big)) throw new Error(`cannot broadcast ${shapes.map((s) => `[${s}]`).join(' with ')}`);
    return big;
  });
}

/**
 * The shape of every tensor of a graph whose inputs and initializers all have fixed dimensions (a training
 * graph), over the ops Tessera's decoder graphs and loss heads use. Nodes added after a lookup are inferred
 * at the next one, so a pass that grows the graph (differentiation) pays for each node once.
 */
export class StaticShapes {
  private readonly shapes = new Map<string, Shape>();
  private inferred = 0;

  constructor(private readonly g: GraphBuilder) {}

  of(name: string): Shape {
    const nodes = this.g.nodeList;
    for (; this.inferred < nodes.length; this.inferred++) {
      const node = nodes[this.inferred];
      const outs = nodeShapes(node, (n) => this.declared(n), (n) => this.constant(n));
      node.outputs.forEach((o, i) => this.shapes.set(o, outs[i]));
    }
    return this.declared(name);
  }

  private declared(name: string): Shape {
    let s = this.shapes.get(name);
    if (s === undefined) {
      const dims = this.g.declaredDims(name);
      if (dims === undefined || dims.some((d) => typeof d !== 'number')) throw new Error(`tensor "${name}" has no fixed shape`);
      this.shapes.set(name, (s = dims as number[]));
    }
    return s;
  }

  private constant(name: string): readonly number[] {
    const v = this.g.constantValues(name);
    if (v === undefined) throw new Error(`"${name}" is not a constant`);
    return v;
  }
}

const attr = (node: GraphNode, name: string, fallback: AttrValue): AttrValue => node.attrs[name] ?? fallback;

function nodeShapes(node: GraphNode, shapeOf: (n: string) => Shape, constant: (n: string) => readonly number[]): Shape[] {
  const x = node.inputs.length > 0 && node.inputs[0] !== '' ? shapeOf(node.inputs[0]) : [];
  switch (node.opType) {
    case 'Identity':
    case 'Sqrt':
    case 'Neg':
    case 'Exp':
    case 'Sigmoid':
    case 'Softmax':
    case 'LogSoftmax':
    case 'Cast':
      return [x];
    case 'Add':
    case 'Sub':
    case 'Mul':
    case 'Div':
    case 'Pow':
      return [broadcast(x, shapeOf(node.inputs[1]))];
    case 'Sum':
      return [broadcast(...node.inputs.map(shapeOf))];
    case 'MatMul': {
      const b = shapeOf(node.inputs[1]);
      if (x.length < 2 || b.length < 2) throw new Error('MatMul of vectors is not used');
      if (x[x.length - 1] !== b[b.length - 2]) throw new Error(`MatMul [${x}] × [${b}]`);
      return [[...broadcast(x.slice(0, -2), b.slice(0, -2)), x[x.length - 2], b[b.length - 1]]];
    }
    case 'Gemm': {
      // Two operands, no bias: what the LM head's product uses (A [n, k] · B [k, m], or Bᵀ with transB).
      const b = shapeOf(node.inputs[1]);
      const [n, k] = attr(node, 'transA', 0) === 1 ? [x[1], x[0]] : [x[0], x[1]];
      const [k2, m] = attr(node, 'transB', 0) === 1 ? [b[1], b[0]] : [b[0], b[1]];
      if (node.inputs.length > 2 || k !== k2) throw new Error(`Gemm [${x}] × [${b}] (bias-free, matching inner dimensions)`);
      return [[n, m]];
    }
    case 'Gather': {
      const axis = normalise(attr(node, 'axis', 0) as number, x.length);
      return [[...x.slice(0, axis), ...shapeOf(node.inputs[1]), ...x.slice(axis + 1)]];
    }
    case 'GatherElements':
      return [shapeOf(node.inputs[1])];
    case 'ScatterND':
    case 'ScatterElements':
      return [x];
    case 'ReduceMean':
    case 'ReduceSum': {
      const axes = (node.opType === 'ReduceMean' ? (attr(node, 'axes', []) as number[]) : constant(node.inputs[1])).map((a) => normalise(a, x.length));
      const keep = attr(node, 'keepdims', 1) === 1;
      return [keep ? x.map((d, i) => (axes.includes(i) ? 1 : d)) : x.filter((_, i) => !axes.includes(i))];
    }
    case 'Split': {
      const axis = normalise(attr(node, 'axis', 0) as number, x.length);
      return constant(node.inputs[1]).map((size) => x.map((d, i) => (i === axis ? size : d)));
    }
    case 'Concat': {
      const shapes = node.inputs.map(shapeOf);
      const axis = normalise(attr(node, 'axis', 0) as number, x.length);
      return [x.map((d, i) => (i === axis ? shapes.reduce((s, sh) => s + sh[axis], 0) : d))];
    }
    case 'Reshape': {
      const target = constant(node.inputs[1]).map((d, i) => (d === 0 ? x[i] : d));
      const known = target.reduce((p, d) => (d === -1 ? p : p * d), 1);
      const total = x.reduce((p, d) => p * d, 1);
      return [target.map((d) => (d === -1 ? total / known : d))];
    }
    case 'Transpose': {
      const perm = (attr(node, 'perm', x.map((_, i) => x.length - 1 - i)) as number[]);
      return [perm.map((p) => x[p])];
    }
    case 'Unsqueeze': {
      const rank = x.length + constant(node.inputs[1]).length;
      const axes = constant(node.inputs[1]).map((a) => normalise(a, rank));
      const out: number[] = [];
      for (let i = 0, k = 0; i < rank; i++) out.push(axes.includes(i) ? 1 : x[k++]);
      return [out];
    }
    case 'Squeeze': {
      const axes = constant(node.inputs[1]).map((a) => normalise(a, x.length));
      return [x.filter((_, i) => !axes.includes(i))];
    }
    case 'Expand':
      return [broadcast(x, constant(node.inputs[1]))];
    default:
      throw new Error(`no static shape rule for ${node.opType}`);
  }
}
