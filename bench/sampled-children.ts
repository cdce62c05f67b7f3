/** Architectures of a search space drawn at random and priced by a profile, for benchmarks on random weights. */
import { parentArchitecture, type ModelConfig } from '../src/arch/config.js';
import type { Architecture } from '../src/arch/variant.js';
import { calibrationError } from '../src/hardware/calibrate.js';
import { costModelFor } from '../src/hardware/cost-model.js';
import { architectureCost } from '../src/hardware/model-cost.js';
import type { HardwareProfile } from '../src/hardware/types.js';
import type { SearchSpace } from '../src/space/types.js';
import { Rng } from '../src/util/rng.js';

export const SHAPE_DRAWS = 20000;

/**
 * The architecture of the space whose predicted speed-up (the least over the profile's scenarios, as a budget binds
 * every scenario), priced under each scenario's calibration error as the search prices a budget (`formulate`), is
 * nearest above each budget it reaches, among seeded draws: each draw keeps every layer's parent
 * block with a probability of its own (uniform in [0, 1]) and otherwise takes a block of that layer at random, so that
 * the draws range from the parent to the space's most-cut corner.
 */
export function sampledChildren(config: ModelConfig, space: SearchSpace, profile: HardwareProfile, budgets: readonly number[]): { budget: number; arch: Architecture; predicted: number[] }[] {
  const costs = costModelFor(config, profile);
  const parentArch = parentArchitecture(config);
  const parentSeconds = architectureCost(config, parentArch, profile, costs).map((c) => c.totalSeconds);
  const margins = profile.workload.scenarios.map((s) => {
    const c = profile.measured?.calibration?.[s.name];
    return c === undefined ? 0 : calibrationError(c);
  });
  const rng = new Rng(0x5a3b1e);
  const best = budgets.map((budget) => ({ budget, arch: parentArch, predicted: parentSeconds.map(() => 1), margin: Infinity }));
  for (let d = 0; d < SHAPE_DRAWS; d++) {
    const keep = rng.next();
    const arch = space.layers.map((l, i) => (rng.next() < keep ? parentArch[i] : l.blocks[rng.int(l.blocks.length)]));
    const predicted = architectureCost(config, arch, profile, costs).map((c, k) => parentSeconds[k] / c.totalSeconds);
    const least = Math.min(...predicted.map((p, k) => p / (1 + margins[k])));
    for (const b of best) if (least >= b.budget && least - b.budget < b.margin) Object.assign(b, { arch, predicted, margin: least - b.budget });
  }
  return best.filter((b) => b.margin < Infinity);
}
