import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import ort from 'onnxruntime-node';
import { parentArchitecture, type ModelConfig } from '../arch/config.js';
import { defaultTokens, distillationData, type DistillationData } from '../bld/data.js';
import type { ChannelRanking } from '../bld/derive.js';
import { BlockLibrary, LIBRARY_FORMAT, olderFingerprint, readLibraryManifest, type LibraryManifest } from '../bld/library.js';
import { CONTENT_FINGERPRINT } from '../model/tensor-source.js';
import { paragraphs, readText } from '../data/text.js';
import { loadHardwareProfile } from '../hardware/load.js';
import type { HardwareProfile } from '../hardware/types.js';
import { distributionOn, type ReferenceDistribution } from '../lm/divergence.js';
import { openCheckpoint, readModelSpec, type Checkpoint } from '../model/checkpoint.js';
import type { ModelSpec } from '../model/config.js';
import type { StoredDtype } from '../model/save.js';
import { loadTokenizer } from '../model/tokenizer.js';
import type { Runtime } from '../onnx/runtime.js';
import { loadSearchSpace } from '../space/expand.js';
import type { SearchSpace } from '../space/types.js';
import { fail } from '../util/errors.js';
import { sha256 } from '../util/hash.js';
import { TESSERA_VERSION } from '../util/project.js';
import { RunPaths } from './paths.js';
import { loadReference, referenceWriter, storedReferenceNll, storeReference, type ReferenceWriter } from './reference.js';
import { restrictSpace, type RuntimeTarget } from '../targets/runtimes.js';

/** What a run is built from: the parent, the search space, the text, and the options that define its block library. */
export interface RunInputs {
  readonly model: string;
  readonly space: string;
  readonly data: string;
  /** Default: by the parent's size (`defaultTokens`). */
  readonly calibTokens?: number;
  readonly validTokens?: number;
  readonly seqLen: number;
  readonly ranking: ChannelRanking;
  readonly ridgeGrid: readonly number[];
  readonly seed: number;
  /** Tokens of trained blockwise local distillation per candidate (0: closed-form fits only). */
  readonly bldTokens?: number;
  /** How the library stores candidates' weights. Default: as the parent is stored. */
  readonly weightsDtype?: StoredDtype;
}

const spaceHash = (space: SearchSpace) => sha256(JSON.stringify(space.layers));

/**
 * A run directory and the inputs every stage of it needs, each loaded once per process: the parent (opened
 * once; its weights read a stage at a time), the search space, the calibration and validation windows, the
 * block library, hardware profiles, and the parent's distribution on the validation windows, which is also
 * cached on disk beside the library. Inputs are checked against the manifest they were recorded in.
 */
export class Run {
  readonly paths: RunPaths;
  private parentCheckpoint?: Checkpoint;
  private modelSpec?: ModelSpec;
  private searchSpace?: SearchSpace;
  private windows?: DistillationData;
  private blockLibrary?: BlockLibrary;
  private readonly profiles = new Map<string, HardwareProfile>();
  private parentReference?: Promise<ReferenceDistribution>;

  private constructor(paths: RunPaths, readonly manifest: LibraryManifest, loaded: { parent?: Checkpoint; space?: SearchSpace; windows?: DistillationData; library?: BlockLibrary } = {}) {
    this.paths = paths;
    this.parentCheckpoint = loaded.parent;
    this.searchSpace = loaded.space;
    this.windows = loaded.windows;
    this.blockLibrary = loaded.library;
  }

  get dir(): string {
    return this.paths.dir;
  }

  /** A run for these inputs: its library is created, or resumed when it was built from the same inputs. */
  static create(dir: string, inputs: RunInputs): Run {
    // Absolute paths in the manifest, so later stages work from any directory.
    const [model, spaceFile, data] = [resolve(inputs.model), resolve(inputs.space), resolve(inputs.data)];
    if (existsSync(dir) && !statSync(dir).isDirectory()) fail(`${dir}: is a file; --out names the run's directory (made if missing)`);
    const parent = openCheckpoint(model);
    if (JSON.stringify(parent.architecture) !== JSON.stringify(parentArchitecture(parent.config))) {
      fail(`${model}: has per-layer block_configs; a block library is built from a uniform Llama-family parent`);
    }
    const space = loadSearchSpace(spaceFile, parent.config);
    if (inputs.seqLen > parent.config.maxPositions) fail(`option --seq-len: ${inputs.seqLen} exceeds the model's ${parent.config.maxPositions} positions`);
    const weightsDtype = inputs.weightsDtype ?? parent.dtype;
    const byDefault = defaultTokens(parent.config);
    const tokens = { calibTokens: inputs.calibTokens ?? byDefault.calibTokens, validTokens: inputs.validTokens ?? byDefault.validTokens };
    const windows = distillationData(loadTokenizer(model), paragraphs(readText(data)), data, { seqLen: inputs.seqLen, ...tokens });
    const manifest: LibraryManifest = {
      format: LIBRARY_FORMAT,
      version: 1,
      parent: { dir: model, configSha256: sha256(readFileSync(join(model, 'config.json'))), weightsFingerprint: parent.fingerprint, sourceArchitecture: parent.config.sourceArchitecture },
      space: { file: spaceFile, name: space.name, sha256: spaceHash(space) },
      data: { seqLen: inputs.seqLen, calibration: windows.calibration.range, validation: windows.validation.range },
      options: { ranking: inputs.ranking, ridgeGrid: inputs.ridgeGrid, seed: inputs.seed, ...(inputs.bldTokens ? { bldTokens: inputs.bldTokens } : {}), ...(weightsDtype !== 'F32' ? { weightsDtype } : {}) },
      versions: { tessera: TESSERA_VERSION, onnxruntime: ort.env.versions.common, node: process.version },
      created: new Date().toISOString(),
    };
    const paths = new RunPaths(dir);
    const library = BlockLibrary.open(paths, manifest);
    return new Run(paths, library.manifest, { parent, space, windows, library });
  }

  /** The run in `dir`, as its manifest recorded it; refuses inputs that changed since. */
  static open(dir: string): Run {
    const paths = new RunPaths(dir);
    const manifest = readLibraryManifest(paths);
    const config = join(manifest.parent.dir, 'config.json');
    let bytes: Buffer;
    try {
      bytes = readFileSync(config);
    } catch {
      fail(`${config}: the parent of the run in ${paths.dir} is not readable any more`);
    }
    if (sha256(bytes) !== manifest.parent.configSha256) fail(`${config}: changed since the library in ${paths.dir} was built; rebuild the library`);
    return new Run(paths, manifest);
  }

  /** The parent checkpoint, opened once per process (its weights are read as stages use them). */
  parent(): Checkpoint {
    if (this.parentCheckpoint === undefined) {
      const ck = openCheckpoint(this.manifest.parent.dir);
      if (!this.manifest.parent.weightsFingerprint.startsWith(CONTENT_FINGERPRINT)) fail(olderFingerprint(this.paths.manifest));
      if (ck.fingerprint !== this.manifest.parent.weightsFingerprint) fail(`${ck.dir}: its weights changed since the library in ${this.dir} was built; rebuild the library`);
      this.parentCheckpoint = ck;
    }
    return this.parentCheckpoint;
  }

  /** The parent's config and layers, from the loaded parent or config.json alone (no weights read). */
  parentSpec(): ModelSpec {
    this.modelSpec ??= this.parentCheckpoint ?? readModelSpec(this.manifest.parent.dir);
    return this.modelSpec;
  }

  get config(): ModelConfig {
    return this.parentSpec().config;
  }

  /** The run's search space; with a runtime target, only the blocks that runtime runs (see targets/runtimes.ts). */
  space(target?: RuntimeTarget): SearchSpace {
    if (this.searchSpace === undefined) {
      const space = loadSearchSpace(this.manifest.space.file, this.config);
      if (spaceHash(space) !== this.manifest.space.sha256) fail(`${this.manifest.space.file}: changed since the library in ${this.dir} was built; rebuild the library`);
      this.searchSpace = space;
    }
    return target === undefined ? this.searchSpace : restrictSpace(this.config, this.searchSpace, target);
  }

  /** The calibration and validation windows, tokenised once. */
  data(): DistillationData {
    if (this.windows === undefined) {
      const m = this.manifest.data;
      const data = distillationData(loadTokenizer(this.manifest.parent.dir), paragraphs(readText(m.calibration.file)), m.calibration.file, {
        seqLen: m.seqLen,
        calibTokens: m.calibration.tokens,
        validTokens: m.validation.tokens,
      });
      if (JSON.stringify(data.validation.range) !== JSON.stringify(m.validation)) fail(`${m.validation.file}: changed since the library in ${this.dir} was built; rebuild the library`);
      this.windows = data;
    }
    return this.windows;
  }

  library(): BlockLibrary {
    this.blockLibrary ??= BlockLibrary.read(this.paths, this.manifest);
    return this.blockLibrary;
  }

  /** A hardware profile, parsed once per file. */
  profile(file: string): HardwareProfile {
    const path = resolve(file);
    let p = this.profiles.get(path);
    if (p === undefined) this.profiles.set(path, (p = loadHardwareProfile(path)));
    return p;
  }

  /**
   * The parent's next-token distribution on the validation windows: what every child is scored against. Read
   * from the library when stored there for these windows and weights; otherwise computed and stored.
   */
  reference(runtime: Runtime): Promise<ReferenceDistribution> {
    this.parentReference ??= (async () => {
      const { validation } = this.data();
      const { seqLen } = this.manifest.data;
      const fingerprint = this.manifest.parent.weightsFingerprint;
      const stored = loadReference(this.paths, validation.ids, seqLen, this.config.vocabSize, fingerprint);
      if (stored !== null) return stored;
      const ck = this.parent();
      const computed = await distributionOn(ck.config, ck.source, validation, seqLen, runtime);
      storeReference(this.paths, computed, validation.ids, fingerprint);
      return computed;
    })();
    return this.parentReference;
  }

  /** The parent's validation NLL when its reference is stored for these windows and weights (null: compute it). */
  storedReferenceNll(): number | null {
    const { seqLen } = this.manifest.data;
    return storedReferenceNll(this.paths, this.data().validation.ids, seqLen, this.config.vocabSize, this.manifest.parent.weightsFingerprint);
  }

  /**
   * Streams in the reference computed elsewhere (the block library's validation pass computes the same numbers,
   * in order); later stages read it back from disk, so it is never held in memory meanwhile.
   */
  referenceWriter(): ReferenceWriter {
    this.parentReference = undefined;
    const { seqLen } = this.manifest.data;
    const ids = this.data().validation.ids;
    return referenceWriter(this.paths, { windows: ids.length / seqLen, seqLen, vocab: this.config.vocabSize }, ids, this.manifest.parent.weightsFingerprint);
  }
}
