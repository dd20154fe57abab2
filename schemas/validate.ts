import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";

/** One ajv instance for the repo: defaults applied, unknown keys rejected, all errors reported. */
export const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true });

export interface Problem {
  /** JSON path of the offending value, e.g. `rules[1].backends[0].weight` */
  path: string;
  message: string;
}

/** Turns ajv's errors into `path: message` problems a person can act on. */
export function problemsOf(errors: ErrorObject[] | null | undefined): Problem[] {
  return (errors ?? []).map((e) => {
    let path = e.instancePath
      .split("/")
      .slice(1)
      .map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`))
      .join("")
      .replace(/^\./, "");
    let message = e.message ?? "is invalid";
    if (e.keyword === "additionalProperties") {
      const key = (e.params as { additionalProperty: string }).additionalProperty;
      path = path ? `${path}.${key}` : key;
      message = "is not a known field";
    }
    return { path: path || "(root)", message };
  });
}

export class ValidationError extends Error {
  readonly problems: Problem[];
  constructor(what: string, problems: Problem[]) {
    super(`invalid ${what}: ${problems.map((p) => `${p.path}: ${p.message}`).join("; ")}`);
    this.name = "ValidationError";
    this.problems = problems;
  }
}

/** Validates (applying defaults) and freezes; throws ValidationError. */
export function validateFrozen<T>(validate: ValidateFunction, what: string, input: unknown): Readonly<T> {
  const copy = structuredClone(input);
  if (!validate(copy)) throw new ValidationError(what, problemsOf(validate.errors));
  return deepFreeze(copy as T);
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object") {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
