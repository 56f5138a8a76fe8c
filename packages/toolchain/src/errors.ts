/** Why a tool could not be provided; `step` names what failed (nats.js style: small, typed, with a code). */
// install: `go install pkg@version` (download and compile in one) or the binary missing afterwards.
export type ToolchainStep = "find-go" | "download" | "compile" | "install";

export class ToolchainError extends Error {
  override readonly name = "ToolchainError";
  constructor(
    readonly tool: string,
    readonly step: ToolchainStep,
    message: string,
  ) {
    super(`${tool}: ${step} failed: ${message}`);
  }
}
