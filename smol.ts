import { copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parentArchitecture } from '/work/main/src/arch/config.js';
import { buildLibrary, RIDGE_GRID } from '/work/main/src/bld/run.js';
import { parseModelConfig } from '/work/main/src/model/config.js';
import { llamaConfigJson, randomWeights } from '/work/main/src/model/random.js';
import { writeCheckpoint } from '/work/main/src/model/save.js';
import { Rng } from '/work/main/src/util/rng.js';
const scratch = mkdtempSync(join(tmpdir(), 'smol-'));
const dir = join(scratch, 'm');
const json = llamaConfigJson({ hidden: 576, layers: 30, heads: 9, kvHeads: 3, intermediate: 1536, vocab: 49152, maxPositions: 8192, ropeTheta: 100000 });
const config = parseModelConfig('c', json);
writeCheckpoint(dir, json, config, parentArchitecture(config), randomWeights(config, parentArchitecture(config), new Rng(135)));
for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join('/work/shared/models/stories260K', f), join(dir, f));
const t0 = performance.now();
let last = performance.now();
const r = await buildLibrary({ model: dir, space: '/work/main/search-spaces/puzzle.json', data: '/work/shared/corpus/tinystories_valid_head.txt', out: join(scratch, 'lib'), calibTokens: 4096, validTokens: 512, seqLen: 128, workers: 2, ranking: 'activation', ridgeGrid: RIDGE_GRID, seed: 0,
  onStage: (s) => console.log(((performance.now() - t0) / 1000).toFixed(1), s),
  onProgress: (d, t) => { if (performance.now() - last > 20000) { last = performance.now(); console.log(((performance.now() - t0) / 1000).toFixed(1), d, '/', t); } } });
console.log('done', r.seconds, (performance.now() - t0) / 1000);
