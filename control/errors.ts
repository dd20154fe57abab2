import type { ControlErrorBody, PolicyProblem } from "../schemas/index.ts";

/** Longest message a refusal carries (control-error.schema.json); longer ones are cut. */
const MAX_MESSAGE = 16_384;

/** An error control answers a request with; `code` is stable (exit codes derive from it: docs/architecture.md §8). */
export class ControlError extends Error {
  readonly code: ControlErrorBody["code"];
  readonly problems: PolicyProblem[] | undefined;

  constructor(code: ControlErrorBody["code"], message: string, options?: ErrorOptions & { problems?: PolicyProblem[] }) {
    super(message, options);
    this.name = "ControlError";
    this.code = code;
    this.problems = options?.problems;
  }

  toBody(): ControlErrorBody {
    const message = this.message.length > MAX_MESSAGE ? `${this.message.slice(0, MAX_MESSAGE - 3)}...` : this.message;
    return { code: this.code, message, ...(this.problems ? { problems: this.problems } : {}) };
  }
}
