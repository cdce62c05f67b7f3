import { atomicFile } from '../../util/atomic.js';

/**
 * The GGUF file format (version 3) as ggml's docs/gguf.md specifies it: little-endian; a header, typed
 * key–value metadata, tensor infos (dimensions innermost first: ggml's ne order), then tensor data, each tensor at
 * an offset aligned to `general.alignment` (32) and laid out in the order of the infos.
 */
export const GGUF_ALIGNMENT = 32;

/** ggml tensor types this writer produces. */
export const GGML_TYPE = { F32: 0, F16: 1, Q8_0: 8, BF16: 30 } as const;
export type GgmlType = keyof typeof GGML_TYPE;

/** Elements per block and bytes per block of each type (Q8_0: a float16 scale and 32 int8 values). */
const LAYOUT: Record<GgmlType, { block: number; bytes: number }> = { F32: { block: 1, bytes: 4 }, F16: { block: 1, bytes: 2 }, BF16: { block: 1, bytes: 2 }, Q8_0: { block: 32, bytes: 34 } };

/** A metadata value with its GGUF type. */
export type GgufValue =
  | { readonly type: 'u32' | 'i32' | 'f32'; readonly value: number }
  | { readonly type: 'bool'; readonly value: boolean }
  | { readonly type: 'string'; readonly value: string }
  | { readonly type: 'array'; readonly of: 'u32' | 'i32' | 'f32'; readonly value: readonly number[] }
  | { readonly type: 'array'; readonly of: 'string'; readonly value: readonly string[] };

const VALUE_TYPE = { u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9 } as const;

/** A tensor to write: its name, type and dimensions (innermost first), and its bytes, made when the writer reaches it. */
export interface GgufTensor {
  readonly name: string;
  readonly type: GgmlType;
  readonly dims: readonly number[];
  bytes(): Uint8Array;
}

export function tensorBytes(type: GgmlType, dims: readonly number[]): number {
  const { block, bytes } = LAYOUT[type];
  if (dims[0] % block !== 0) throw new Error(`a ${type} tensor needs its innermost dimension a multiple of ${block}; it is ${dims[0]}`);
  return (dims.reduce((p, d) => p * d, 1) / block) * bytes;
}

const pad = (n: number) => (GGUF_ALIGNMENT - (n % GGUF_ALIGNMENT)) % GGUF_ALIGNMENT;

/** Bytes of the header, the metadata and the tensor infos, built up in chunks. */
class Encoder {
  private readonly chunks: Uint8Array[] = [];
  length = 0;

  private push(b: Uint8Array): void {
    this.chunks.push(b);
    this.length += b.byteLength;
  }

  private scalar(bytes: number, write: (v: DataView) => void): void {
    const b = new Uint8Array(bytes);
    write(new DataView(b.buffer));
    this.push(b);
  }

  u32 = (v: number) => this.scalar(4, (d) => d.setUint32(0, v, true));
  i32 = (v: number) => this.scalar(4, (d) => d.setInt32(0, v, true));
  u64 = (v: number) => this.scalar(8, (d) => d.setBigUint64(0, BigInt(v), true));
  f32 = (v: number) => this.scalar(4, (d) => d.setFloat32(0, v, true));
  bool = (v: boolean) => this.push(Uint8Array.of(v ? 1 : 0));
  string = (s: string) => {
    const b = new TextEncoder().encode(s);
    this.u64(b.byteLength);
    this.push(b);
  };
  zeros = (n: number) => this.push(new Uint8Array(n));

  value(v: GgufValue): void {
    this.u32(VALUE_TYPE[v.type]);
    if (v.type !== 'array') return this.element(v.type, v.value);
    this.u32(VALUE_TYPE[v.of]);
    this.u64(v.value.length);
    for (const x of v.value) this.element(v.of, x);
  }

  private element(type: Exclude<GgufValue['type'], 'array'>, x: number | boolean | string): void {
    if (type === 'string') this.string(x as string);
    else if (type === 'bool') this.bool(x as boolean);
    else this[type](x as number);
  }

  bytes(): Uint8Array {
    return Buffer.concat(this.chunks);
  }
}

/**
 * Writes a GGUF file atomically: the header, metadata and tensor infos (sizes follow from types and
 * dimensions), then each tensor's bytes as the writer reaches it — a model passes through memory a tensor at a time.
 */
export function writeGguf(path: string, metadata: ReadonlyMap<string, GgufValue>, tensors: readonly GgufTensor[]): void {
  const head = new Encoder();
  head.u32(0x46554747); // "GGUF"
  head.u32(3);
  head.u64(tensors.length);
  head.u64(metadata.size + 1);
  head.string('general.alignment');
  head.value({ type: 'u32', value: GGUF_ALIGNMENT });
  for (const [key, value] of metadata) {
    head.string(key);
    head.value(value);
  }
  let offset = 0;
  const sizes = tensors.map((t) => tensorBytes(t.type, t.dims));
  tensors.forEach((t, i) => {
    if (new TextEncoder().encode(t.name).byteLength > 63) throw new Error(`GGUF tensor names are at most 63 bytes: ${t.name}`);
    head.string(t.name);
    head.u32(t.dims.length);
    for (const d of t.dims) head.u64(d);
    head.u32(GGML_TYPE[t.type]);
    head.u64(offset);
    offset += sizes[i] + pad(sizes[i]);
  });
  head.zeros(pad(head.length));
  const file = atomicFile(path);
  try {
    file.write(head.bytes());
    tensors.forEach((t, i) => {
      const bytes = t.bytes();
      if (bytes.byteLength !== sizes[i]) throw new Error(`${t.name}: ${bytes.byteLength} bytes for a ${t.type} tensor of [${t.dims}] (${sizes[i]} expected)`);
      file.write(bytes);
      file.write(new Uint8Array(pad(sizes[i])));
    });
    file.commit();
  } catch (e) {
    file.abort();
    throw e;
  }
}
