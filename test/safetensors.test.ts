import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SafetensorsFile, writeSafetensors } from '../src/model/safetensors.js';
import { tempDir } from './support/fixtures.js';

const dir = tempDir();

/** A raw safetensors file from a header object and data bytes, for files our writer would never make. */
function rawFile(name: string, header: unknown, data: Uint8Array, headerLenOverride?: number): string {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerLenOverride ?? json.length));
  const path = join(dir, name);
  writeFileSync(path, Buffer.concat([len, json, data]));
  return path;
}

describe('safetensors', () => {
  it('round-trips float32 tensors and metadata', () => {
    const path = join(dir, 'ok.safetensors');
    const a = { data: Float32Array.of(1, 2, 3, 4, 5, 6), shape: [2, 3] };
    const b = { data: Float32Array.of(-1.5), shape: [1] };
    writeSafetensors(path, new Map([['a', a], ['b', b]]), { format: 'pt' });
    const f = SafetensorsFile.open(path);
    expect(f.metadata).toEqual({ format: 'pt' });
    expect(f.read('a')).toEqual(a);
    expect(f.read('b')).toEqual(b);
    f.close();
  });

  it('reads F16 and BF16 tensors as float32', () => {
    const halves = Uint16Array.of(0x3c00, 0xc000); // 1, -2 in F16
    const brains = Uint16Array.of(0x3f80, 0x4040); // 1, 3 in BF16
    const data = new Uint8Array([...new Uint8Array(halves.buffer), ...new Uint8Array(brains.buffer)]);
    const path = rawFile('half.safetensors', {
      h: { dtype: 'F16', shape: [2], data_offsets: [0, 4] },
      b: { dtype: 'BF16', shape: [2], data_offsets: [4, 8] },
    }, data);
    const f = SafetensorsFile.open(path);
    expect(Array.from(f.read('h').data)).toEqual([1, -2]);
    expect(Array.from(f.read('b').data)).toEqual([1, 3]);
    f.close();
  });

  it('reads rows of a 2-D tensor on their own, as the whole tensor holds them', () => {
    const brains = Uint16Array.of(0x3f80, 0x4040, 0xbf80, 0x4000, 0x0000, 0x3f00); // [[1, 3], [-1, 2], [0, 0.5]] in BF16
    const path = rawFile('rows.safetensors', { t: { dtype: 'BF16', shape: [3, 2], data_offsets: [0, 12] } }, new Uint8Array(brains.buffer));
    const f = SafetensorsFile.open(path);
    expect(Array.from(f.readRows('t', [2, 0, 2]))).toEqual([0, 0.5, 1, 3, 0, 0.5]);
    expect(f.readRows('t', []).length).toBe(0);
    expect(() => f.readRows('t', [3])).toThrow(RangeError);
    f.close();
  });

  it('names an unsupported dtype', () => {
    const path = rawFile('int8.safetensors', { q: { dtype: 'I8', shape: [4], data_offsets: [0, 4] } }, new Uint8Array(4));
    const f = SafetensorsFile.open(path);
    expect(() => f.read('q')).toThrow(/int8\.safetensors: tensor "q" has dtype I8; expected one of F32, F16, BF16/);
    f.close();
  });

  it('refuses a header longer than the file', () => {
    const path = rawFile('short-header.safetensors', { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4), 1000);
    expect(() => SafetensorsFile.open(path)).toThrow(/short-header\.safetensors: truncated or corrupt safetensors header \(header claims 1000 bytes/);
  });

  it('refuses a header that is not JSON', () => {
    const path = join(dir, 'garbage.safetensors');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(5n);
    writeFileSync(path, Buffer.concat([len, Buffer.from('{"a":')]));
    expect(() => SafetensorsFile.open(path)).toThrow(/garbage\.safetensors: truncated or corrupt safetensors header \(header is not valid JSON\)/);
  });

  it('states an absurd header length exactly (2^62, not a rounded double)', () => {
    const path = join(dir, 'huge-header.safetensors');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(2n ** 62n);
    writeFileSync(path, Buffer.concat([len, Buffer.from('{}')]));
    expect(() => SafetensorsFile.open(path)).toThrow(/huge-header\.safetensors: truncated or corrupt safetensors header \(header length 4611686018427387904 is implausible\)/);
  });

  it('refuses a file shorter than 8 bytes', () => {
    const path = join(dir, 'tiny.safetensors');
    writeFileSync(path, Buffer.from([1, 2, 3]));
    expect(() => SafetensorsFile.open(path)).toThrow(/tiny\.safetensors: truncated or corrupt safetensors header/);
  });

  it('refuses a file whose tensor data is cut off', () => {
    const path = join(dir, 'cut.safetensors');
    writeSafetensors(path, new Map([['w', { data: new Float32Array(64), shape: [8, 8] }]]));
    const whole = readFileSync(path);
    writeFileSync(path, whole.subarray(0, whole.length - 10));
    expect(() => SafetensorsFile.open(path)).toThrow(/cut\.safetensors: file is truncated: tensor "w" ends at byte/);
  });

  it('refuses offsets that disagree with shape and dtype', () => {
    const path = rawFile('offsets.safetensors', { a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8));
    expect(() => SafetensorsFile.open(path)).toThrow(/tensor "a" spans 8 bytes, its shape and dtype need 12/);
  });
});
