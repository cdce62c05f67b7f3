import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** Files an exported child directory holds beside its model: its provenance, and its evaluation against the parent. */
export const childFiles = {
  provenance: (childDir: string) => join(childDir, 'tessera.json'),
  evaluation: (childDir: string) => join(childDir, 'evaluation.json'),
};

/**
 * The layout of a run directory, spelled out once:
 *
 *   <run>/library/      manifest.json, candidates/<layer>.<variant>.{safetensors,json}, scores.json, reference.{json,f32},
 *                       activations/ (while the library is built)
 *   <run>/measured/     <profile>.json            (tessera profile: candidates timed on this machine)
 *   <run>/solutions/    <id>/spec.json            (tessera solve; the report's frontier)
 *   <run>/children/     <id>/…, <id>-kd/…         (tessera export, tessera distill: model directories, and evaluation.json)
 *   <run>/report/       report.md, report.html, architectures.svg, frontier.svg
 */
export class RunPaths {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = resolve(dir);
  }

  get library(): string {
    return join(this.dir, 'library');
  }

  get manifest(): string {
    return join(this.library, 'manifest.json');
  }

  get candidates(): string {
    return join(this.library, 'candidates');
  }

  candidateWeights(key: string): string {
    return join(this.candidates, `${key}.safetensors`);
  }

  /** Written last, after the weights it vouches for: its presence marks a finished candidate. */
  candidateRecord(key: string): string {
    return join(this.candidates, `${key}.json`);
  }

  /** The parent's activations on one window set while the library is built (removed when it is complete). */
  activations(set: 'calibration' | 'validation'): string {
    return join(this.library, 'activations', set);
  }

  get scores(): string {
    return join(this.library, 'scores.json');
  }

  /** The parent's distribution on the validation windows: what every child is compared against. */
  get referenceRecord(): string {
    return join(this.library, 'reference.json');
  }

  get referenceData(): string {
    return join(this.library, 'reference.f32');
  }

  measured(profileName: string): string {
    return join(this.dir, 'measured', `${profileName}.json`);
  }

  get solutions(): string {
    return join(this.dir, 'solutions');
  }

  solution(id: string): string {
    return join(this.solutions, id);
  }

  spec(id: string): string {
    return join(this.solution(id), 'spec.json');
  }

  child(id: string): string {
    return join(this.dir, 'children', id);
  }

  /** The child of solution `id` after global distillation. */
  distilled(id: string): string {
    return this.child(`${id}-kd`);
  }

  evaluation(id: string): string {
    return childFiles.evaluation(this.child(id));
  }

  get report(): string {
    return join(this.dir, 'report');
  }

  reportFile(name: 'report.md' | 'report.html' | 'architectures.svg' | 'frontier.svg'): string {
    return join(this.report, name);
  }

  /** Ids of the solutions written so far, sorted. */
  solutionIds(): string[] {
    if (!existsSync(this.solutions)) return [];
    return readdirSync(this.solutions).filter((id) => existsSync(this.spec(id))).sort();
  }
}
