import type { ControlErrorBody, PolicyProblem } from "../schemas/index.ts";

/** An error control answers a request with; `code` is stable (DESIGN §2 exit codes derive from it). */
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
    return { code: this.code, message: this.message, ...(this.problems ? { problems: this.problems } : {}) };
  }
}
