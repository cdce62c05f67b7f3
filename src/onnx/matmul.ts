import type ort from 'onnxruntime-node';
import { DataType, GraphBuilder } from './graph-builder.js';
import { float32Tensor, type Runtime } from './runtime.js';

/** A row-major matrix. */
export interface Matrix {
  readonly data: Float32Array;
  readonly rows: number;
  readonly cols: number;
}

/**
 * Dense matrix products in onnxruntime, for the big reductions of local distillation (Gram matrices over
 * thousands of calibration tokens) that would crawl in JavaScript loops. One session per product kind,
 * reused for any shapes.
 */
export class MatrixOps {
  private constructor(
    private readonly ab: ort.InferenceSession,
    private readonly atb: ort.InferenceSession,
  ) {}

  static async create(runtime: Runtime): Promise<MatrixOps> {
    const build = (transA: boolean) => {
      const g = new GraphBuilder(transA ? 'matmul_at_b' : 'matmul_a_b');
      const a = g.input('a', DataType.FLOAT, transA ? ['k', 'n'] : ['n', 'k']);
      const b = g.input('b', DataType.FLOAT, ['k', 'm']);
      const y = transA ? g.node('Gemm', [a, b], { transA: 1 }) : g.node('MatMul', [a, b]);
      g.expose(y, 'y', ['n', 'm']);
      return runtime.session(g);
    };
    const ab = await build(false);
    try {
      return new MatrixOps(ab, await build(true));
    } catch (e) {
      await ab.release();
      throw e;
    }
  }

  /** A·B. */
  async matmul(a: Matrix, b: Matrix): Promise<Matrix> {
    if (a.cols !== b.rows) throw new Error(`matmul: ${a.rows}×${a.cols} · ${b.rows}×${b.cols}`);
    return this.run(this.ab, a, b, a.rows, b.cols);
  }

  /** Aᵀ·B: with A = B = X, the Gram matrix XᵀX. */
  async matmulTransA(a: Matrix, b: Matrix): Promise<Matrix> {
    if (a.rows !== b.rows) throw new Error(`matmulTransA: (${a.rows}×${a.cols})ᵀ · ${b.rows}×${b.cols}`);
    return this.run(this.atb, a, b, a.cols, b.cols);
  }

  private async run(session: ort.InferenceSession, a: Matrix, b: Matrix, rows: number, cols: number): Promise<Matrix> {
    const out = await session.run({
      a: float32Tensor(a.data, [a.rows, a.cols]),
      b: float32Tensor(b.data, [b.rows, b.cols]),
    });
    return { data: out.y.data as Float32Array, rows, cols };
  }

  async release(): Promise<void> {
    await Promise.all([this.ab.release(), this.atb.release()]);
  }
}
