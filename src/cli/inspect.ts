import { attentionParams, ffnParams, kvCacheElementsPerToken, modelKvCacheElementsPerToken, modelParams, nonLayerParams } from '../arch/params.js';
import { describeVariant } from '../arch/variants/registry.js';
import type { Checkpoint } from '../model/checkpoint.js';
import { bytes, int, table } from '../util/format.js';

/** The text `tessera inspect` prints: the architecture, parameters per layer and sub-block, KV cache per token. */
export function inspectReport(ck: Checkpoint): string {
  const c = ck.config;
  const scaling = c.ropeScaling === null ? 'no scaling' : `${c.ropeScaling.type} scaling ×${c.ropeScaling.factor}`;
  const rows = ck.architecture.map((b, i) => [
    String(i),
    describeVariant('attention', b.attention),
    int(attentionParams(c, b.attention)),
    describeVariant('ffn', b.ffn),
    int(ffnParams(c, b.ffn)),
    int(kvCacheElementsPerToken(c, b.attention) * 4),
  ]);
  const kv = modelKvCacheElementsPerToken(c, ck.architecture);
  return [
    `model ${ck.dir} (${c.sourceArchitecture})`,
    `hidden ${c.hiddenSize} · ${c.numLayers} layers · ${c.numHeads} heads of dim ${c.headDim} · parent KV heads ${c.numKvHeads} · ` +
      `parent FFN ${c.intermediateSize} · vocab ${c.vocabSize} · ${c.tieEmbeddings ? 'tied' : 'untied'} embeddings`,
    `RoPE theta ${c.ropeTheta} (${scaling}) · RMSNorm eps ${c.rmsNormEps} · max positions ${c.maxPositions}` +
      (c.slidingWindow !== null ? ` · sliding window ${c.slidingWindow}` : ''),
    '',
    table(['layer', 'attention', 'params', 'FFN', 'params', 'KV bytes/token (fp32)'], rows),
    '',
    `embeddings, final norm${c.tieEmbeddings ? '' : ', LM head'}: ${int(nonLayerParams(c))} params`,
    `total: ${int(modelParams(c, ck.architecture))} params`,
    `KV cache per token: ${bytes(kv * 4)} at fp32, ${bytes(kv * 2)} at fp16/bf16`,
  ].join('\n');
}
