import { DataType, stringAttr, type GraphBuilder, type GraphNode } from './graph-builder.js';
import { StaticShapes, type Shape } from './shapes.js';

/** The graph output holding d(loss)/d(name). */
export const gradName = (name: string) => `grad.${name}`;

const numel = (s: Shape) => s.reduce((p, d) => p * d, 1);
const same = (a: Shape, b: Shape) => a.length === b.length && a.every((d, i) => d === b[i]);

/** What a rule needs: the graph, shapes, and a few helpers that keep shapes static. */
interface Grad {
  readonly g: GraphBuilder;
  shape(t: string): Shape;
  /** Sums a gradient of shape `from` down to a broadcast operand's shape `to`. */
  sumTo(grad: string, to: Shape): string;
  ints(values: readonly number[]): string;
  zeros(shape: Shape): string;
  /** Swaps the last two axes. */
  transposeLast(t: string): string;
}

/** A vector-Jacobian product: the gradients of a node's inputs from those of its outputs (null: no gradient reaches it). */
type Rule = (d: Grad, node: GraphNode, dOut: readonly (string | null)[], needs: (input: number) => boolean) => (string | null)[];

const unary = (f: (d: Grad, node: GraphNode, dy: string) => string): Rule => (d, node, [dy]) => [f(d, node, dy!)];

/** A binary op's gradient, summed over broadcast axes to each operand's shape. */
const binary = (f: (d: Grad, node: GraphNode, dy: string, needs: (i: number) => boolean) => [string | null, string | null]): Rule => (d, node, [dy], needs) => {
  const [da, db] = f(d, node, dy!, needs);
  return [da === null ? null : d.sumTo(da, d.shape(node.inputs[0])), db === null ? null : d.sumTo(db, d.shape(node.inputs[1]))];
};

const RULES: Record<string, Rule> = {
  Identity: unary((_d, _n, dy) => dy),
  Add: binary((_d, _n, dy) => [dy, dy]),
  Sum: (d, n, [dy]) => n.inputs.map((t) => d.sumTo(dy!, d.shape(t))),
  Sub: binary((d, _n, dy, needs) => [dy, needs(1) ? d.g.node('Neg', [dy]) : null]),
  Mul: binary((d, n, dy, needs) => [needs(0) ? d.g.node('Mul', [dy, n.inputs[1]]) : null, needs(1) ? d.g.node('Mul', [dy, n.inputs[0]]) : null]),
  // d(a/b) = da/b − (a/b)·db/b
  Div: binary((d, n, dy, needs) => [
    needs(0) ? d.g.node('Div', [dy, n.inputs[1]]) : null,
    needs(1) ? d.g.node('Neg', [d.g.node('Mul', [dy, d.g.node('Div', [n.outputs[0], n.inputs[1]])])]) : null,
  ]),
  Pow: (d, n, [dy]) => {
    const c = d.g.constantValues(n.inputs[1]);
    if (c === undefined || c.length !== 1) throw new Error('Pow is differentiated for a constant exponent only');
    const slope = c[0] === 2 ? d.g.node('Mul', [n.inputs[0], d.g.float(2)]) : d.g.node('Mul', [d.g.node('Pow', [n.inputs[0], d.g.float(c[0] - 1)]), d.g.float(c[0])]);
    return [d.sumTo(d.g.node('Mul', [dy!, slope]), d.shape(n.inputs[0])), null];
  },
  Sqrt: unary((d, n, dy) => d.g.node('Div', [dy, d.g.node('Mul', [n.outputs[0], d.g.float(2)])])),
  Neg: unary((d, _n, dy) => d.g.node('Neg', [dy])),
  Exp: unary((d, n, dy) => d.g.node('Mul', [dy, n.outputs[0]])),
  Sigmoid: unary((d, n, dy) => {
    const y = n.outputs[0];
    return d.g.node('Mul', [dy, d.g.node('Mul', [y, d.g.node('Sub', [d.g.float(1), y])])]);
  }),
  // dx = y ⊙ (dy − Σ dy ⊙ y)
  Softmax: unary((d, n, dy) => {
    const y = n.outputs[0];
    const dot = d.g.node('ReduceSum', [d.g.node('Mul', [dy, y]), d.ints([n.attrs.axis as number])], { keepdims: 1 });
    return d.g.node('Mul', [y, d.g.node('Sub', [dy, dot])]);
  }),
  // dx = dy − softmax(x) · Σ dy
  LogSoftmax: unary((d, n, dy) => {
    const total = d.g.node('ReduceSum', [dy, d.ints([n.attrs.axis as number])], { keepdims: 1 });
    return d.g.node('Sub', [dy, d.g.node('Mul', [d.g.node('Exp', [n.outputs[0]]), total])]);
  }),
  MatMul: (d, n, [dy], needs) => {
    const [a, b] = n.inputs;
    const [sa, sb] = [d.shape(a), d.shape(b)];
    const da = needs(0) ? d.sumTo(d.g.node('MatMul', [dy!, d.transposeLast(b)]), sa) : null;
    let db: string | null = null;
    if (needs(1)) {
      if (sb.length === 2 && sa.length > 2) {
        // A weight against a batch of rows: one [k, rows] × [rows, n] product instead of a batched one and a sum.
        const k = sa[sa.length - 1];
        const rows = d.g.node('Reshape', [a, d.ints([-1, k])]);
        db = d.g.node('MatMul', [d.g.node('Transpose', [rows], { perm: [1, 0] }), d.g.node('Reshape', [dy!, d.ints([-1, sb[1]])])]);
      } else {
        db = d.sumTo(d.g.node('MatMul', [d.transposeLast(a), dy!]), sb);
      }
    }
    return [da, db];
  },
  // Y = A·B (either transposed by its flag), two operands, unit scale: dA = dY·Bᵀ and dB = Aᵀ·dY, in Gemm's own flags.
  Gemm: (d, n, [dy], needs) => {
    const [a, b] = n.inputs;
    const [ta, tb] = [n.attrs.transA ?? 0, n.attrs.transB ?? 0];
    if (n.inputs.length > 2 || (n.attrs.alpha ?? 1) !== 1) throw new Error('Gemm is differentiated without a bias and at unit scale only');
    const da = !needs(0) ? null : ta === 1 ? d.g.node('Gemm', [b, dy!], { transA: tb, transB: 1 }) : d.g.node('Gemm', [dy!, b], { transB: tb === 1 ? 0 : 1 });
    const db = !needs(1) ? null : tb === 1 ? d.g.node('Gemm', [dy!, a], { transA: 1, transB: ta }) : d.g.node('Gemm', [a, dy!], { transA: ta === 1 ? 0 : 1 });
    return [da, db];
  },
  ReduceMean: unary((d, n, dy) => {
    const [sx, sy] = [d.shape(n.inputs[0]), d.shape(n.outputs[0])];
    return d.g.node('Expand', [d.g.node('Mul', [keptDims(d, dy, sy, sx, n), d.g.float(numel(sy) / numel(sx))]), d.ints(sx)]);
  }),
  ReduceSum: (d, n, [dy]) => {
    const [sx, sy] = [d.shape(n.inputs[0]), d.shape(n.outputs[0])];
    return [d.g.node('Expand', [keptDims(d, dy!, sy, sx, n), d.ints(sx)]), null];
  },
  Split: (d, n, dOut) => {
    const axis = (n.attrs.axis as number | undefined) ?? 0;
    const parts = dOut.map((dy, i) => dy ?? d.zeros(d.shape(n.outputs[i])));
    return [parts.length === 1 ? parts[0] : d.g.node('Concat', parts, { axis }), null];
  },
  Concat: (d, n, [dy]) => {
    const axis = n.attrs.axis as number;
    const rank = d.shape(n.inputs[0]).length;
    const sizes = n.inputs.map((t) => d.shape(t)[axis < 0 ? axis + rank : axis]);
    return n.inputs.length === 1 ? [dy] : d.g.nodeN('Split', [dy!, d.ints(sizes)], sizes.length, { axis });
  },
  Reshape: (d, n, [dy]) => [d.g.node('Reshape', [dy!, d.ints(d.shape(n.inputs[0]))]), null],
  Unsqueeze: (d, n, [dy]) => [d.g.node('Reshape', [dy!, d.ints(d.shape(n.inputs[0]))]), null],
  Squeeze: (d, n, [dy]) => [d.g.node('Reshape', [dy!, d.ints(d.shape(n.inputs[0]))]), null],
  Expand: (d, n, [dy]) => [d.sumTo(dy!, d.shape(n.inputs[0])), null],
  Transpose: unary((d, n, dy) => {
    const perm = n.attrs.perm as number[];
    const inverse = perm.map((_, i) => perm.indexOf(i));
    return d.g.node('Transpose', [dy], { perm: inverse });
  }),
  // Rows of a table picked by ids (the embedding): each row's gradient is the sum over the positions that picked it.
  Gather: (d, n, [dy]) => {
    if (((n.attrs.axis as number | undefined) ?? 0) !== 0) throw new Error('Gather is differentiated along axis 0 only');
    const ids = d.g.node('Unsqueeze', [d.g.node('Cast', [n.inputs[1]], { to: DataType.INT64 }), d.ints([-1])]);
    return [d.g.node('ScatterND', [d.zeros(d.shape(n.inputs[0])), ids, dy!], { reduction: stringAttr('add') }), null];
  },
  GatherElements: (d, n, [dy]) => [d.g.node('ScatterElements', [d.zeros(d.shape(n.inputs[0])), n.inputs[1], dy!], { axis: n.attrs.axis as number }), null],
};

/** A reduction's gradient with its reduced axes back in place (size 1), ready to broadcast to the input. */
function keptDims(d: Grad, dy: string, sy: Shape, sx: Shape, n: GraphNode): string {
  const keep = ((n.attrs.keepdims as number | undefined) ?? 1) === 1;
  if (keep) return dy;
  const axes = n.opType === 'ReduceMean' ? (n.attrs.axes as number[]) : (d.g.constantValues(n.inputs[1]) as number[]);
  const normalised = axes.map((a) => (a < 0 ? a + sx.length : a));
  return d.g.node('Reshape', [dy, d.ints(sx.map((dim, i) => (normalised.includes(i) ? 1 : dim)))]);
}

/**
 * Reverse-mode differentiation of a graph with fixed shapes: appends the nodes that compute d(loss)/d(x) for
 * each input in `wrt` and exposes each as the output `grad.<x>`. `loss` must be a scalar. Only nodes on a path
 * from a `wrt` input to the loss are differentiated; a gradient reaching a tensor along several paths is
 * summed. Returns the gradient tensor of each input (its output name, unless `expose` is false).
 */
export function appendGradients(g: GraphBuilder, loss: string, wrt: readonly string[], o: { expose?: boolean } = {}): Map<string, string> {
  const forward = [...g.nodeList];
  const shapes = new StaticShapes(g);
  if (shapes.of(loss).length !== 0) throw new Error(`the loss "${loss}" must be a scalar; it has shape [${shapes.of(loss)}]`);

  const needsGrad = new Set(wrt);
  for (const node of forward) if (node.inputs.some((i) => needsGrad.has(i))) for (const o of node.outputs) needsGrad.add(o);

  const grads = new Map<string, string[]>([[loss, [g.float(1)]]]);
  const d: Grad = {
    g,
    shape: (t) => shapes.of(t),
    sumTo: (grad, to) => {
      const from = shapes.of(grad);
      if (same(from, to)) return grad;
      const lead = from.length - to.length;
      const axes = from.map((_, i) => i).filter((i) => i < lead || (to[i - lead] === 1 && from[i] !== 1));
      return g.node('Reshape', [g.node('ReduceSum', [grad, g.int64(axes)], { keepdims: 1 }), g.int64(to.length === 0 ? [] : [...to])]);
    },
    ints: (values) => g.int64(values),
    zeros: (shape) => g.node('Expand', [g.float(0), g.int64([...shape])]),
    transposeLast: (t) => {
      const rank = d.shape(t).length;
      return g.node('Transpose', [t], { perm: [...Array.from({ length: rank - 2 }, (_, i) => i), rank - 1, rank - 2] });
    },
  };
  const total = (t: string): string | null => {
    const list = grads.get(t);
    if (list === undefined || list.length === 0) return null;
    return list.length === 1 ? list[0] : g.node('Sum', list);
  };

  for (let k = forward.length - 1; k >= 0; k--) {
    const node = forward[k];
    if (!node.outputs.some((o) => grads.has(o)) || !node.inputs.some((i) => needsGrad.has(i))) continue;
    const rule = RULES[node.opType];
    if (rule === undefined) throw new Error(`no gradient rule for ${node.opType} (node producing ${node.outputs[0]})`);
    const dIn = rule(d, node, node.outputs.map(total), (i) => needsGrad.has(node.inputs[i]));
    node.inputs.forEach((input, i) => {
      if (dIn[i] === null || dIn[i] === undefined || !needsGrad.has(input)) return;
      (grads.get(input) ?? grads.set(input, []).get(input)!).push(dIn[i]!);
    });
  }

  const out = new Map<string, string>();
  for (const w of wrt) {
    const dw = total(w) ?? d.zeros(d.shape(w));
    if (o.expose ?? true) g.expose(dw, gradName(w), [...d.shape(w)]);
    out.set(w, o.expose ?? true ? gradName(w) : dw);
  }
  return out;
}
