import type { ModelConfig } from '../arch/config.js';
import type { SubBlock } from '../arch/variant.js';
import type { LayerWeights, ModelWeights } from '../model/weights.js';
import { appendGradients } from '../onnx/autodiff.js';
import { appendAdamW } from './optimizer.js';
import { emitDecoder, INPUT_IDS } from '../onnx/decoder-graph.js';
import { tapName } from '../onnx/emit.js';
import { DataType, GraphBuilder } from '../onnx/graph-builder.js';
import { trainingWeights } from '../onnx/weight-writer.js';
import type { Tensor } from '../util/tensor.js';

/** How much each distillation loss weighs in the total (absent or 0: not computed). */
export interface LossWeights {
  /** KL(parent ‖ child) of the next-token distributions, mean per token. */
  readonly kl?: number;
  /** Cosine distance of the child's residual stream after each layer from the parent's, mean over layers and tokens. */
  readonly cosine?: number;
  /** The child's own LM loss on the next tokens. */
  readonly lm?: number;
}

export const REFERENCE_LOGPROBS = 'reference_logprobs';
export const REFERENCE_HIDDEN = (layer: number) => `reference_hidden.${layer}`;
export const TARGETS = 'targets';
export const LOSS = 'loss';
export const lossTerm = (name: string) => `loss.${name}`;
export const BLOCK_TARGET = 'block_target';

/** A training graph and what it takes: the key and tensor of every weight it trains. */
export interface TrainingGraph {
  readonly graph: GraphBuilder;
  readonly weights: ReadonlyMap<string, Tensor>;
  readonly terms: readonly string[];
  /** Whether the graph takes an optimizer step itself (AdamW after clipping to `clip`), or returns the gradients (`grad.<key>`). */
  readonly optimizer: { readonly clip: number } | null;
}

/** The gradients of the loss, and then either the optimizer's step or the gradients as outputs. */
function finish(g: GraphBuilder, loss: string, weights: ReadonlyMap<string, Tensor>, terms: readonly string[], optimizer: { clip: number } | null): TrainingGraph {
  const grads = appendGradients(g, loss, [...weights.keys()], { expose: optimizer === null });
  if (optimizer !== null) appendAdamW(g, weights, grads, optimizer.clip);
  return { graph: g, weights, terms, optimizer };
}

/**
 * The graph of one distillation step of a model: token ids [batch, seq] and the parent's targets (its
 * log-probabilities, its residual stream after each layer, the next tokens) in; the weighted loss, each term,
 * and the gradient of every weight (`grad.<key>`) out — or, with `optimizer`, every weight after one AdamW step. Written by the training writer: the same block
 * definitions as inference, with weights as inputs and nothing folded into them.
 */
export function buildTrainingGraph(config: ModelConfig, weights: ModelWeights, batch: number, seq: number, loss: LossWeights, optimizer: { clip: number } | null = null): TrainingGraph {
  const g = new GraphBuilder('tessera_training');
  const writer = trainingWeights();
  const L = weights.layers.length;
  const layers = Array.from({ length: L }, (_, i) => i + 1);
  const cosine = (loss.cosine ?? 0) > 0;
  const { logits } = emitDecoder(g, config, weights, { shape: { batch, seq }, logits: 'all', taps: cosine ? layers.map((layer) => ({ layer, site: 'residual' })) : [] }, writer);
  const lp = g.node('LogSoftmax', [logits!], { axis: -1 }, 'logprobs');
  const V = config.vocabSize;
  const terms: [keyof LossWeights, string][] = [];

  if ((loss.kl ?? 0) > 0) {
    const ref = g.input(REFERENCE_LOGPROBS, DataType.FLOAT, [batch, seq, V]);
    const perToken = g.node('ReduceSum', [g.node('Mul', [g.node('Exp', [ref], {}, 'ref_probs'), g.node('Sub', [ref, lp], {}, 'log_ratio')]), g.int64([-1])], { keepdims: 0 }, 'kl_tokens');
    terms.push(['kl', g.node('ReduceMean', [perToken], { axes: [0, 1], keepdims: 0 }, 'kl')]);
  }
  if ((loss.lm ?? 0) > 0) {
    const targets = g.input(TARGETS, DataType.INT32, [batch, seq]);
    const picked = g.node('GatherElements', [lp, g.node('Unsqueeze', [targets, g.int64([-1])])], { axis: -1 }, 'target_lp');
    // The last position of each window has no next token: it does not count.
    const mask = new Float32Array(batch * seq).map((_, k) => (k % seq === seq - 1 ? 0 : 1));
    const nll = g.node('Mul', [g.node('Squeeze', [picked, g.int64([-1])]), g.initializer('target_mask', mask, [batch, seq])]);
    terms.push(['lm', g.node('Mul', [g.node('Neg', [g.node('ReduceSum', [nll, g.int64([0, 1])], { keepdims: 0 })]), g.float(1 / (batch * (seq - 1)))], {}, 'lm')]);
  }
  if (cosine) {
    const distances = layers.map((layer) => {
      const h = tapName({ layer, site: 'residual' });
      const p = g.input(REFERENCE_HIDDEN(layer), DataType.FLOAT, [batch, seq, config.hiddenSize]);
      const last = g.int64([-1]);
      const dot = g.node('ReduceSum', [g.node('Mul', [h, p]), last], { keepdims: 0 });
      const norms = g.node('Mul', [g.node('Sqrt', [g.node('ReduceSum', [g.node('Mul', [h, h]), last], { keepdims: 0 })]), g.node('Sqrt', [g.node('ReduceSum', [g.node('Mul', [p, p]), last], { keepdims: 0 })])]);
      return g.node('ReduceMean', [g.node('Div', [dot, norms])], { axes: [0, 1], keepdims: 0 });
    });
    const meanCos = g.node('Mul', [distances.length === 1 ? distances[0] : g.node('Sum', distances), g.float(1 / distances.length)]);
    terms.push(['cosine', g.node('Sub', [g.float(1), meanCos], {}, 'cosine')]);
  }
  if (terms.length === 0) throw new Error('a training graph needs at least one loss term with a positive weight');
  const weighted = terms.map(([name, t]) => g.node('Mul', [t, g.float(loss[name]!)]));
  const total = weighted.length === 1 ? g.node('Identity', weighted) : g.node('Sum', weighted);
  g.expose(total, LOSS, []);
  for (const [name, t] of terms) g.expose(t, lossTerm(name), []);
  return finish(g, total, writer.keys, terms.map(([name]) => name), optimizer);
}

/**
 * The graph of one step of blockwise local distillation: a sub-block alone, from its input [batch, seq,
 * hidden] (`hidden_in`) to what it adds to the residual stream, against the parent block's output
 * (`block_target`); the loss is their normalised MSE, Σ(ŷ − y)² / Σy², and every weight of the sub-block gets a gradient.
 */
export function buildBlockTrainingGraph(config: ModelConfig, layer: LayerWeights, sub: SubBlock, batch: number, seq: number, optimizer: { clip: number } | null = null): TrainingGraph {
  const g = new GraphBuilder('tessera_block_training');
  const writer = trainingWeights();
  const site = `${sub}.output` as const;
  const noLayers = { embed: { data: new Float32Array(0), shape: [0, config.hiddenSize] }, finalNorm: { data: new Float32Array(0), shape: [0] } };
  emitDecoder(g, { ...config, numLayers: 1 }, { ...noLayers, lmHead: noLayers.embed, layers: [layer] }, { hiddenInput: true, shape: { batch, seq }, logits: 'none', taps: [{ layer: 0, site }] }, writer);
  const y = g.input(BLOCK_TARGET, DataType.FLOAT, [batch, seq, config.hiddenSize]);
  const every = g.int64([0, 1, 2]);
  const error = g.node('ReduceSum', [g.node('Pow', [g.node('Sub', [tapName({ layer: 0, site }), y]), g.float(2)]), every], { keepdims: 0 });
  const nmse = g.node('Div', [error, g.node('ReduceSum', [g.node('Pow', [y, g.float(2)]), every], { keepdims: 0 })], {}, 'nmse');
  g.expose(nmse, LOSS, []);
  g.expose(nmse, lossTerm('nmse'), []);
  return finish(g, nmse, writer.keys, ['nmse'], optimizer);
}

export { INPUT_IDS };
