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
    private readonly abt: ort.InferenceSession,
  ) {}

  static async create(runtime: Runtime): Promise<MatrixOps> {
    const build = (form: 'ab' | 'atb' | 'abt') => {
      const g = new GraphBuilder(`matmul_${form}`);
      const a = g.input('a', DataType.FLOAT, form === 'atb' ? ['k', 'n'] : ['n', 'k']);
      const b = g.input('b', DataType.FLOAT, form === 'abt' ? ['m', 'k'] : ['k', 'm']);
      const y = form === 'ab' ? g.node('MatMul', [a, b]) : g.node('Gemm', [a, b], form === 'atb' ? { transA: 1 } : { transB: 1 });
      g.expose(y, 'y', ['n', 'm']);
      return runtime.session(g);
    };
    const built: ort.InferenceSession[] = [];
    try {
      for (const form of ['ab', 'atb', 'abt'] as const) built.push(await build(form));
    } catch (e) {
      for (const s of built) await s.release();
      throw e;
    }
    return new MatrixOps(built[0], built[1], built[2]);
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

  /** A·Bᵀ: with A = B = X, the kernel matrix XXᵀ. */
  async matmulTransB(a: Matrix, b: Matrix): Promise<Matrix> {
    if (a.cols !== b.cols) throw new Error(`matmulTransB: ${a.rows}×${a.cols} · (${b.rows}×${b.cols})ᵀ`);
    return this.run(this.abt, a, b, a.rows, b.rows);
  }

  private async run(session: ort.InferenceSession, a: Matrix, b: Matrix, rows: number, cols: number): Promise<Matrix> {
    const out = await session.run({
      a: float32Tensor(a.data, [a.rows, a.cols]),
      b: float32Tensor(b.data, [b.rows, b.cols]),
    });
    return { data: out.y.data as Float32Array, rows, cols };
  }

  async release(): Promise<void> {
    await Promise.all([this.ab.release(), this.atb.release(), this.abt.release()]);
  }
}
