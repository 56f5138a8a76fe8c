/**
 * The placeholders of the shared agent configuration (deploy/agent.json) and what fills them on
 * each node: its name and its address (an IPv6 address in brackets, as a URL needs). The
 * DaemonSet's init container does the same with sed; the chaos lab and the tests use this.
 */
export const NODE_NAME_PLACEHOLDER = "__NODE_NAME__";
export const NODE_IP_PLACEHOLDER = "__NODE_IP__";

export function renderAgentConfig(template: string, node: { name: string; ip?: string }): string {
  const ip = node.ip === undefined ? undefined : node.ip.includes(":") ? `[${node.ip}]` : node.ip;
  let text = template.replaceAll(NODE_NAME_PLACEHOLDER, node.name);
  if (ip !== undefined) text = text.replaceAll(NODE_IP_PLACEHOLDER, ip);
  return text;
}
