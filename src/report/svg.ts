import type { ModelConfig } from '../arch/config.js';
import { describeVariant, kindOf } from '../arch/variants/registry.js';
import { type Architecture, type AttentionVariant, type FfnVariant } from '../arch/variant.js';

/** Plain SVG drawings for the report: no library, no network, readable as files or inline in HTML. */

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Colour by kind, shade by how much of the parent is kept (darker = more): each kind picks its own. */
const attentionColour = (config: ModelConfig, v: AttentionVariant) => kindOf('attention', v).colour(config, v);
const ffnColour = (config: ModelConfig, v: FfnVariant) => kindOf('ffn', v).colour(config, v);

/** One row per layer, attention and FFN side by side, for each architecture given (parent first). */
export function architectureSvg(config: ModelConfig, columns: readonly { title: string; arch: Architecture }[]): string {
  const row = 18;
  const cell = 110;
  const colWidth = 2 * cell + 30;
  const top = 36;
  const width = 40 + columns.length * colWidth;
  const height = top + config.numLayers * row + 30;
  const parts: string[] = [];
  columns.forEach((c, k) => {
    const x0 = 40 + k * colWidth;
    parts.push(`<text x="${x0}" y="14" font-weight="bold">${esc(c.title)}</text>`, `<text x="${x0}" y="30" fill="#555">attention</text>`, `<text x="${x0 + cell + 4}" y="30" fill="#555">FFN</text>`);
    c.arch.forEach((b, i) => {
      const y = top + i * row;
      parts.push(
        `<rect x="${x0}" y="${y}" width="${cell}" height="${row - 2}" fill="${attentionColour(config, b.attention)}"><title>layer ${i} attention: ${esc(describeVariant('attention', b.attention))}</title></rect>`,
        `<text x="${x0 + 4}" y="${y + 12}" font-size="10">${esc(describeVariant('attention', b.attention))}</text>`,
        `<rect x="${x0 + cell + 4}" y="${y}" width="${cell}" height="${row - 2}" fill="${ffnColour(config, b.ffn)}"><title>layer ${i} FFN: ${esc(describeVariant('ffn', b.ffn))}</title></rect>`,
        `<text x="${x0 + cell + 8}" y="${y + 12}" font-size="10">${esc(describeVariant('ffn', b.ffn))}</text>`,
      );
    });
  });
  for (let i = 0; i < config.numLayers; i++) parts.push(`<text x="4" y="${top + i * row + 12}" font-size="10" fill="#555">${i}</text>`);
  parts.push(`<text x="4" y="${height - 8}" font-size="10" fill="#555">blue: GQA (darker = more KV heads) · green: SwiGLU (darker = wider) · amber: linear · grey: no-op</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">${parts.join('')}</svg>`;
}

export interface FrontierPoint {
  readonly speedup: number;
  readonly kl: number;
  readonly label: string;
}

export interface Series {
  readonly name: string;
  readonly colour: string;
  readonly points: readonly FrontierPoint[];
  /** Join the points with a line (a frontier), or only mark them. */
  readonly line: boolean;
  /** Label each point with its text beside it. */
  readonly labelled?: boolean;
}

export const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#4b5563'];

/** KL (lower is better) against speed-up, one series per method or role, with a legend. */
export function speedQualitySvg(series: readonly Series[], xLabel: string): string {
  const w = 760;
  const h = 360;
  const m = { l: 60, r: 200, t: 20, b: 50 };
  const all = series.flatMap((s) => s.points);
  const xMax = Math.max(1.1, ...all.map((p) => p.speedup)) * 1.05;
  const xMin = Math.min(1, ...all.map((p) => p.speedup));
  const yMax = Math.max(1e-3, ...all.map((p) => p.kl)) * 1.1;
  const x = (v: number) => m.l + ((v - xMin) / (xMax - xMin)) * (w - m.l - m.r);
  const y = (v: number) => h - m.b - (v / yMax) * (h - m.t - m.b);
  const parts: string[] = [
    `<line x1="${m.l}" y1="${h - m.b}" x2="${w - m.r}" y2="${h - m.b}" stroke="#333"/>`,
    `<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${h - m.b}" stroke="#333"/>`,
    `<text x="${m.l}" y="${h - 12}" font-size="11">${esc(xLabel)}</text>`,
    `<text x="14" y="${(h - m.b + m.t) / 2}" transform="rotate(-90 14 ${(h - m.b + m.t) / 2})" text-anchor="middle">KL from the parent (nats/token)</text>`,
  ];
  for (let k = 0; k <= 4; k++) {
    const xv = xMin + ((xMax - xMin) * k) / 4;
    const yv = (yMax * k) / 4;
    parts.push(`<text x="${x(xv)}" y="${h - m.b + 16}" text-anchor="middle" font-size="10">×${xv.toFixed(2)}</text>`, `<text x="${m.l - 6}" y="${y(yv) + 4}" text-anchor="end" font-size="10">${yv.toFixed(3)}</text>`);
  }
  series.forEach((s, k) => {
    const pts = [...s.points].sort((a, b) => a.speedup - b.speedup);
    if (s.line && pts.length > 1) parts.push(`<polyline fill="none" stroke="${s.colour}" stroke-width="2" points="${pts.map((p) => `${x(p.speedup)},${y(p.kl)}`).join(' ')}"/>`);
    for (const p of pts) {
      parts.push(s.line
        ? `<circle cx="${x(p.speedup)}" cy="${y(p.kl)}" r="3.5" fill="${s.colour}"><title>${esc(`${s.name}: ${p.label}`)}</title></circle>`
        : `<path d="M ${x(p.speedup) - 6} ${y(p.kl)} L ${x(p.speedup)} ${y(p.kl) - 6} L ${x(p.speedup) + 6} ${y(p.kl)} L ${x(p.speedup)} ${y(p.kl) + 6} Z" fill="${s.colour}"><title>${esc(`${s.name}: ${p.label}`)}</title></path>`);
      if (s.labelled) parts.push(`<text x="${x(p.speedup) + 8}" y="${y(p.kl) - 6}" font-size="10" fill="${s.colour}">${esc(p.label)}</text>`);
    }
    parts.push(`<rect x="${w - m.r + 12}" y="${m.t + k * 16}" width="10" height="10" fill="${s.colour}"/>`, `<text x="${w - m.r + 26}" y="${m.t + k * 16 + 9}" font-size="11">${esc(s.name)}</text>`);
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif" font-size="12">${parts.join('')}</svg>`;
}

/** The report's picture: the frontier as a line, chosen solutions as labelled marks. */
export function frontierSvg(frontier: readonly FrontierPoint[], solutions: readonly FrontierPoint[], xLabel: string): string {
  return speedQualitySvg([
    { name: 'frontier (MIP per budget)', colour: PALETTE[0], points: frontier, line: true },
    { name: 'solutions', colour: PALETTE[1], points: solutions, line: false, labelled: true },
  ], xLabel);
}
