import type ort from 'onnxruntime-node';
import type { ModelConfig } from '../arch/config.js';
import type { BlockConfig } from '../arch/variant.js';
import type { WindowSet } from '../data/sequences.js';
import { batchTokensFor } from '../lm/divergence.js';
import { layerAlone, type LayerWeights, type WeightSource } from '../model/weights.js';
import { gradName, appendGradients } from '../onnx/autodiff.js';
import { emitDecoder, HIDDEN_IN } from '../onnx/decoder-graph.js';
import { rmsNorm, tapName } from '../onnx/emit.js';
import { DataType, GraphBuilder } from '../onnx/graph-builder.js';
import { float32Tensor, int32Tensor, type Runtime } from '../onnx/runtime.js';
import { fail } from '../util/errors.js';
import type { DistillationSettings } from './distillation.js';
import { LOSS, lossTerm, type LossWeights } from './graph.js';
import { adapterInputs, adapterWeights, freshAdapter, type Adapter, type LoraSettings } from './lora.js';
import { batchIds, train, type Trainer, type TrainingResult } from './loop.js';
import { appendAdamW, optimizerFeeds, optimizerOutputs } from './optimizer.js';

export interface AdapterDistillationSettings extends DistillationSettings {
  readonly lora: LoraSettings;
}

/** A layer graph's use: the teacher's forward, the student's forward through its adapters, or its backward. */
type LayerMode = 'teacher' | 'student' | 'backward';

const GRAD_OUT = 'grad_out';
const LAYER_OUT = tapName({ layer: 1, site: 'residual' });
const FINAL_NORM = 'final_norm';
const LM_HEAD = 'lm_head';
const REFERENCE = 'reference_logprobs';
const TARGETS = 'targets';
const LOGPROBS = 'logprobs';

interface LayerSession {
  readonly session: ort.InferenceSession;
  /** The weights it takes, by key in a one-layer model (`0.<sub-block>.<role>`). */
  readonly frozen: readonly string[];
  /** The weights it adapts, with their shapes [out, in]. */
  readonly adapted: ReadonlyMap<string, readonly number[]>;
}

/**
 * One layer as a graph whose weights are all inputs, so that every layer of a block shares one session and no
 * session holds a weight: 'teacher' runs it as it is; 'student' through adapters; 'backward' takes the gradient
 * of the loss at its output (`grad_out`) and returns those at its input and of its adapters (recomputing its forward).
 */
function layerGraph(config: ModelConfig, layer: LayerWeights, batch: number, seq: number, mode: LayerMode, lora: LoraSettings): { graph: GraphBuilder; frozen: string[]; adapted: ReadonlyMap<string, readonly number[]> } {
  const g = new GraphBuilder(`tessera_layer_${mode}`);
  const writer = adapterWeights(mode === 'teacher' ? null : lora);
  emitDecoder(g, { ...config, numLayers: 1 }, layerAlone(layer), { hiddenInput: true, shape: { batch, seq }, logits: 'none' }, writer);
  if (mode === 'backward') {
    const dy = g.input(GRAD_OUT, DataType.FLOAT, [batch, seq, config.hiddenSize]);
    // ⟨output, grad_out⟩: its gradients are the vector-Jacobian products the chain rule needs.
    const surrogate = g.node('ReduceSum', [g.node('Mul', [LAYER_OUT, dy]), g.int64([0, 1, 2])], { keepdims: 0 }, 'surrogate');
    appendGradients(g, surrogate, [HIDDEN_IN, ...[...writer.adapted.keys()].flatMap((k) => Object.values(adapterInputs(k)))]);
  }
  return { graph: g, frozen: [...writer.keys.keys()], adapted: writer.adapted };
}

/**
 * The final norm and LM head over `rows` positions ([rows, hidden] in): the teacher's log-probabilities, or the
 * student's loss terms on them and the loss's gradient at its input. Each term is a sum over these rows divided
 * by its count over the whole batch, so the chunks of a batch add up to its loss.
 */
function headGraph(config: ModelConfig, rows: number, mode: 'teacher' | 'student', loss: LossWeights, batch: number, seq: number): GraphBuilder {
  const g = new GraphBuilder(`tessera_head_${mode}`);
  const E = config.hiddenSize;
  const V = config.vocabSize;
  const h = g.input(HIDDEN_IN, DataType.FLOAT, [rows, E]);
  g.input(FINAL_NORM, DataType.FLOAT, [E]);
  g.input(LM_HEAD, DataType.FLOAT, [V, E]);
  const normed = rmsNorm(g, h, () => FINAL_NORM, config.rmsNormEps, 'final_norm');
  const lp = g.node('LogSoftmax', [g.node('Gemm', [normed, LM_HEAD], { transB: 1 }, 'logits')], { axis: -1 }, 'lp');
  if (mode === 'teacher') {
    g.expose(lp, LOGPROBS, [rows, V]);
    return g;
  }
  const terms: [keyof LossWeights, string][] = [];
  if ((loss.kl ?? 0) > 0) {
    const ref = g.input(REFERENCE, DataType.FLOAT, [rows, V]);
    const sum = g.node('ReduceSum', [g.node('Mul', [g.node('Exp', [ref]), g.node('Sub', [ref, lp])]), g.int64([0, 1])], { keepdims: 0 });
    terms.push(['kl', g.node('Mul', [sum, g.float(1 / (batch * seq))], {}, 'kl')]);
  }
  if ((loss.lm ?? 0) > 0) {
    const targets = g.input(TARGETS, DataType.INT32, [rows]);
    const picked = g.node('Squeeze', [g.node('GatherElements', [lp, g.node('Unsqueeze', [targets, g.int64([-1])])], { axis: -1 }), g.int64([-1])]);
    // The last position of each window has no next token: it does not count.
    const mask = new Float32Array(rows).map((_, k) => (k % seq === seq - 1 ? 0 : 1));
    const sum = g.node('ReduceSum', [g.node('Mul', [picked, g.initializer('target_mask', mask, [rows])]), g.int64([0])], { keepdims: 0 });
    terms.push(['lm', g.node('Mul', [sum, g.float(-1 / (batch * (seq - 1)))], {}, 'lm')]);
  }
  const weighted = terms.map(([name, t]) => g.node('Mul', [t, g.float(loss[name]!)]));
  const total = weighted.length === 1 ? weighted[0] : g.node('Sum', weighted);
  g.expose(total, LOSS, []);
  for (const [name, t] of terms) g.expose(t, lossTerm(name), []);
  appendGradients(g, total, [HIDDEN_IN]);
  return g;
}

/** One AdamW step of the adapters from their gradients (graph inputs `grad.<key>`), clipped to a global norm. */
function optimizerGraph(keys: readonly string[], shapes: readonly (readonly number[])[], clip: number): GraphBuilder {
  const g = new GraphBuilder('tessera_adapter_optimizer');
  const weights = new Map(keys.map((k, i) => [k, { data: new Float32Array(0), shape: shapes[i] }]));
  for (const [k, i] of keys.map((key, index) => [key, index] as const)) g.input(k, DataType.FLOAT, shapes[i]);
  const grads = new Map(keys.map((k, i) => [k, g.input(gradName(k), DataType.FLOAT, shapes[i])]));
  appendAdamW(g, weights, grads, clip);
  return g;
}

/**
 * cos(h, p) summed over the positions of two residual streams [positions, E]; adds the gradient of
 * −scale·Σcos with respect to h into `grad`. (The cosine loss is 1 − the mean of these over layers and positions.)
 */
export function cosineSum(h: Float32Array, p: Float32Array, E: number, scale: number, grad: Float32Array): number {
  let total = 0;
  for (let o = 0; o < h.length; o += E) {
    let dot = 0;
    let hh = 0;
    let pp = 0;
    for (let k = o; k < o + E; k++) {
      dot += h[k] * p[k];
      hh += h[k] * h[k];
      pp += p[k] * p[k];
    }
    const norms = Math.sqrt(hh * pp);
    const cos = dot / norms;
    total += cos;
    for (let k = o; k < o + E; k++) grad[k] -= scale * (p[k] / norms - (cos * h[k]) / hh);
  }
  return total;
}

/** The rows of an embedding table [vocab, E] that token ids pick: the residual stream entering layer 0. */
function embedded(table: Float32Array, ids: Int32Array, E: number): Float32Array {
  const out = new Float32Array(ids.length * E);
  ids.forEach((id, t) => out.set(table.subarray(id * E, (id + 1) * E), t * E));
  return out;
}

/** `mine`, or `other` when it holds the same values (so that one copy is kept). */
function sameOr(other: Float32Array | null, mine: Float32Array): Float32Array {
  if (other === null || other.length !== mine.length) return mine;
  for (let i = 0; i < mine.length; i++) if (other[i] !== mine[i] && !(Number.isNaN(other[i]) && Number.isNaN(mine[i]))) return mine;
  return other;
}

/** Windows per head chunk: the most that divide a batch and keep a chunk's [positions, vocab] float32 logits near 64 MB. */
export function headChunkWindows(batch: number, seq: number, vocab: number): number {
  let w = batchTokensFor(vocab, seq, batch * seq) / seq;
  while (batch % w !== 0) w--;
  return w;
}

/** The layer's weights a layer session takes, by its one-layer keys. */
function frozenFeeds(layer: LayerWeights, keys: readonly string[]): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const key of keys) {
    const [, sub, ...role] = key.split('.');
    const t = layer[sub as keyof LayerWeights].tensors[role.join('.')];
    feeds[key] = float32Tensor(t.data, t.shape);
  }
  return feeds;
}

/**
 * Global knowledge distillation of a model too large to train whole in memory: its weights stay frozen where they
 * are (read a layer at a time from `student`) and low-rank adapters on every linear weight are trained toward the
 * teacher with the same losses as `distil`. Each step runs the teacher and the student a layer at a time, the head
 * a chunk of windows at a time, and the backward pass a layer at a time from the residual streams kept between
 * layers (each layer's inside recomputed) — memory holds one layer, the streams and the adapters. Returns the
 * trained adapters by `layerWeightKey`.
 */
export async function distilAdapters(
  config: ModelConfig,
  student: WeightSource,
  teacher: { config: ModelConfig; weights: WeightSource },
  windows: WindowSet,
  o: AdapterDistillationSettings,
): Promise<TrainingResult & { readonly adapters: ReadonlyMap<string, Adapter> }> {
  if (windows.count === 0) fail(`${windows.range.file}: too little text for one window of ${o.seqLen} tokens`);
  const training = await adapterTraining(config, student, teacher, o);
  try {
    const r = await train(training.trainer(windows), training.initial, { ...o, progressLabel: o.progressLabel ?? 'distillation steps' });
    const adapters = new Map<string, Adapter>();
    for (let k = 0; k < training.keys.length; k += 2) {
      adapters.set(training.keys[k].slice('lora_a.'.length), { a: { data: r.weights[k], shape: training.shapes[k] }, b: { data: r.weights[k + 1], shape: training.shapes[k + 1] } });
    }
    return { ...r, adapters };
  } finally {
    await training.release();
  }
}

/**
 * The parts of adapter distillation: the adapters' keys (`lora_a.<weight>`, `lora_b.<weight>` by `layerWeightKey`),
 * shapes and fresh values; the loss and every adapter's gradient on a batch; the trainer of a window set.
 */
export async function adapterTraining(config: ModelConfig, student: WeightSource, teacher: { config: ModelConfig; weights: WeightSource }, o: AdapterDistillationSettings) {
  if (teacher.weights.numLayers !== student.numLayers && (o.loss.cosine ?? 0) > 0) fail(`the cosine loss compares layer by layer: the child has ${student.numLayers} layers, its parent ${teacher.weights.numLayers}`);
  const { batch, seqLen: seq } = o;
  const E = config.hiddenSize;
  const L = student.numLayers;
  const runtime: Runtime = o.runtime;
  const sessions = new Map<string, LayerSession>();
  const layerSession = async (block: BlockConfig, layer: () => LayerWeights, mode: LayerMode): Promise<LayerSession> => {
    const id = JSON.stringify([mode, block]);
    let s = sessions.get(id);
    if (s === undefined) {
      const { graph, frozen, adapted } = layerGraph(config, layer(), batch, seq, mode, o.lora);
      s = { session: await runtime.session(graph), frozen, adapted };
      sessions.set(id, s);
    }
    return s;
  };
  /** A one-layer graph's weight key (`0.<sub-block>.<role>`) as layer `i`'s in the model. */
  const inModel = (i: number, local: string) => `${i}${local.slice(local.indexOf('.'))}`;
  const isNoop = (b: BlockConfig) => b.attention.kind === 'noop' && b.ffn.kind === 'noop';

  // The adapters: every linear weight of every layer the student computes, in layer order.
  const keys: string[] = [];
  const shapes: (readonly number[])[] = [];
  const initial: Float32Array[] = [];
  for (let i = 0; i < L; i++) {
    const block = student.architecture[i];
    if (isNoop(block)) continue;
    const s = await layerSession(block, () => student.layer(i), 'student');
    for (const [local, shape] of s.adapted) {
      const key = inModel(i, local);
      const fresh = freshAdapter(key, shape, o.lora.rank, o.seed);
      const names = adapterInputs(key);
      keys.push(names.a, names.b);
      shapes.push(fresh.a.shape, fresh.b.shape);
      initial.push(fresh.a.data, fresh.b.data);
    }
  }
  if (keys.length === 0) fail('the child computes nothing to adapt: every layer is a no-op');
  const index = new Map(keys.map((k, i) => [k, i]));

  const chunk = headChunkWindows(batch, seq, config.vocabSize);
  const rows = chunk * seq;
  const onLogits = (o.loss.kl ?? 0) > 0 || (o.loss.lm ?? 0) > 0;
  const teacherHead = (o.loss.kl ?? 0) > 0 ? await runtime.session(headGraph(teacher.config, rows, 'teacher', o.loss, batch, seq)) : null;
  const studentHead = onLogits ? await runtime.session(headGraph(config, rows, 'student', o.loss, batch, seq)) : null;
  const optimizer = await runtime.session(optimizerGraph(keys, shapes, o.clip));
  const cosine = (o.loss.cosine ?? 0) > 0;
  const terms = (['kl', 'cosine', 'lm'] as const).filter((t) => (o.loss[t] ?? 0) > 0);
  // A child keeps its parent's embedding and head: one copy serves both when the values are the same.
  const teacherEmbed = teacher.weights.embed().data;
  const studentEmbed = sameOr(teacherEmbed, student.embed().data);
  const teacherEnds = { norm: teacher.weights.finalNorm(), head: teacher.weights.tiedHead ? null : teacher.weights.lmHead() };
  const untied = student.tiedHead ? null : student.lmHead();
  const studentEnds = { norm: student.finalNorm(), head: untied === null ? null : { ...untied, data: sameOr(teacherEnds.head?.data ?? null, untied.data) } };
  const headOf = (ends: typeof teacherEnds, embed: Float32Array) => ends.head ?? { data: embed, shape: [config.vocabSize, E] };
  const stream = (data: Float32Array) => float32Tensor(data, [batch, seq, E]);

  /** The residual stream after each layer of a model (index 0: the embedding), through its sessions of `mode`. */
  const forward = async (source: WeightSource, embed: Float32Array, ids: Int32Array, mode: LayerMode, adapters: readonly Float32Array[] | null, keep: boolean) => {
    const streams: Float32Array[] = [embedded(embed, ids, E)];
    let h = streams[0];
    for (let i = 0; i < source.numLayers; i++) {
      const block = source.architecture[i];
      if (!isNoop(block)) {
        const layer = source.layer(i);
        const s = await layerSession(block, () => layer, mode);
        const feeds = { ...frozenFeeds(layer, s.frozen), [HIDDEN_IN]: stream(h), ...(adapters === null ? {} : adapterFeeds(i, s, adapters)) };
        h = (await s.session.run(feeds, [LAYER_OUT]))[LAYER_OUT].data as Float32Array;
      }
      if (keep || i === source.numLayers - 1) streams.push(h);
      else streams[0] = h;
    }
    return streams;
  };
  const adapterFeeds = (layer: number, s: LayerSession, adapters: readonly Float32Array[]) => {
    const feeds: Record<string, ort.Tensor> = {};
    for (const local of s.adapted.keys()) {
      const [inLayer, inGraph] = [adapterInputs(inModel(layer, local)), adapterInputs(local)];
      const [a, b] = [index.get(inLayer.a)!, index.get(inLayer.b)!];
      feeds[inGraph.a] = float32Tensor(adapters[a], shapes[a]);
      feeds[inGraph.b] = float32Tensor(adapters[b], shapes[b]);
    }
    return feeds;
  };

  /** The loss on a batch of token ids [batch, seq], each term, and the gradient of every adapter. */
  const gradients = async (ids: Int32Array, adapters: readonly Float32Array[]) => {
    const taught = await forward(teacher.weights, teacherEmbed, ids, 'teacher', null, cosine);
    const streams = await forward(student, studentEmbed, ids, 'student', adapters, true);

    // The head, a chunk of windows at a time: the teacher's log-probabilities, then the student's loss and gradient.
    const grad = new Float32Array(batch * seq * E);
    const sums: Record<string, number> = {};
    let loss = 0;
    const [tHead, sHead] = [headOf(teacherEnds, teacherEmbed), headOf(studentEnds, studentEmbed)];
    for (let from = 0; studentHead !== null && from < batch * seq; from += rows) {
      const part = (h: Float32Array) => float32Tensor(h.subarray(from * E, (from + rows) * E), [rows, E]);
      const feeds: Record<string, ort.Tensor> = { [HIDDEN_IN]: part(streams[L]), [FINAL_NORM]: float32Tensor(studentEnds.norm.data, [E]), [LM_HEAD]: float32Tensor(sHead.data, sHead.shape) };
      if (teacherHead !== null) {
        const t = await teacherHead.run({ [HIDDEN_IN]: part(taught[taught.length - 1]), [FINAL_NORM]: float32Tensor(teacherEnds.norm.data, [E]), [LM_HEAD]: float32Tensor(tHead.data, tHead.shape) });
        feeds[REFERENCE] = t[LOGPROBS];
      }
      if ((o.loss.lm ?? 0) > 0) {
        const next = new Int32Array(rows);
        for (let k = 0; k < rows; k++) next[k] = (k + 1) % seq === 0 ? 0 : ids[from + k + 1];
        feeds[TARGETS] = int32Tensor(next, [rows]);
      }
      const out = await studentHead.run(feeds);
      loss += out[LOSS].data[0] as number;
      for (const t of terms) if (t !== 'cosine') sums[t] = (sums[t] ?? 0) + (out[lossTerm(t)].data[0] as number);
      grad.set(out[gradName(HIDDEN_IN)].data as Float32Array, from * E);
    }

    // Backward, layer by layer from the last: each layer's cosine term joins the gradient at its output.
    const weight = o.loss.cosine ?? 0;
    const scale = weight / (L * batch * seq);
    let cosines = 0;
    const grads: Float32Array[] = new Array<Float32Array>(keys.length);
    let dh: Float32Array = grad;
    for (let i = L - 1; i >= 0; i--) {
      if (cosine) cosines += cosineSum(streams[i + 1], taught[i + 1], E, scale, dh);
      const block = student.architecture[i];
      if (isNoop(block)) continue;
      const layer = student.layer(i);
      const s = await layerSession(block, () => layer, 'backward');
      const feeds = { ...frozenFeeds(layer, s.frozen), [HIDDEN_IN]: stream(streams[i]), [GRAD_OUT]: stream(dh), ...adapterFeeds(i, s, adapters) };
      const out = await s.session.run(feeds);
      for (const local of s.adapted.keys()) {
        const [inLayer, inGraph] = [adapterInputs(inModel(i, local)), adapterInputs(local)];
        grads[index.get(inLayer.a)!] = out[gradName(inGraph.a)].data as Float32Array;
        grads[index.get(inLayer.b)!] = out[gradName(inGraph.b)].data as Float32Array;
      }
      dh = out[gradName(HIDDEN_IN)].data as Float32Array;
    }
    if (cosine) {
      sums.cosine = 1 - cosines / (L * batch * seq);
      loss += weight * sums.cosine;
    }
    return { loss, terms: sums, grads };
  };

  const trainer = (windows: WindowSet): Trainer => ({
    keys,
    shapes,
    terms,
    step: async (step, scalars, state) => {
      const { loss, terms: sums, grads } = await gradients(batchIds(windows, batch, seq, o.seed, step), state.weights);
      const feeds = optimizerFeeds(scalars, keys, shapes, state);
      keys.forEach((k, i) => (feeds[gradName(k)] = float32Tensor(grads[i], shapes[i])));
      return { ...optimizerOutputs(await optimizer.run(feeds), keys), loss, terms: sums };
    },
  });
  const release = async () => {
    await Promise.all([...[...sessions.values()].map((s) => s.session.release()), teacherHead?.release(), studentHead?.release(), optimizer.release()]);
  };
  return { keys, shapes, initial, gradients, trainer, release };
}
