/** One colour per top-level state, used by the diagram, the table, the timeline and the chart. */
export const PHASE_COLOR: Record<string, string> = {
  healthy: "#2f9e44",
  suspect: "#e8a400",
  recovered: "#74b816",
  fencing: "#e8590c",
  remediating: "#d6336c",
  rejoining: "#1c7ed6",
  paused: "#868e96",
  operator: "#7048e8",
  new: "#adb5bd",
};

export const colorOf = (path: string) => PHASE_COLOR[path.split(".")[0]!] ?? "#868e96";

/** A light tint of a colour (mixes it with white). */
export function tint(hex: string, amount: number): string {
  const n = Number.parseInt(hex.slice(1), 16);
  const mix = (c: number) => Math.round(c + (255 - c) * (1 - amount));
  return `rgb(${mix((n >> 16) & 255)}, ${mix((n >> 8) & 255)}, ${mix(n & 255)})`;
}
