/** A dense row-major float32 array with its shape. Weights keep HuggingFace's [out, in] layout. */
export interface Tensor {
  readonly data: Float32Array;
  readonly shape: readonly number[];
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function tensor(data: Float32Array, shape: readonly number[]): Tensor {
  if (data.length !== numel(shape)) {
    throw new Error(`tensor data has ${data.length} elements, shape [${shape.join(', ')}] needs ${numel(shape)}`);
  }
  return { data, shape: [...shape] };
}

export function zeros(shape: readonly number[]): Tensor {
  return { data: new Float32Array(numel(shape)), shape: [...shape] };
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Rows [from, to) of a 2-D tensor, as a view. */
export function rows(t: Tensor, from: number, to: number): Float32Array {
  const cols = t.shape[1];
  return t.data.subarray(from * cols, to * cols);
}
