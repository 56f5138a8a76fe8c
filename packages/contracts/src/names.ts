import { z } from "zod";

/**
 * A node name: a DNS-1123 subdomain, as Kubernetes requires (lowercase alphanumerics, '-'
 * and '.', at most 253 characters).
 */
export const NodeName = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, "must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.')");
export type NodeName = z.infer<typeof NodeName>;

/**
 * NATS subject tokens cannot contain '.', so a node name is written into a subject with its
 * dots as '_' (which a DNS-1123 name never contains, so the mapping is reversible).
 */
export function nodeToken(node: string): string {
  return node.replaceAll(".", "_");
}

export function nodeFromToken(token: string): string {
  return token.replaceAll("_", ".");
}
