import { validatorOf } from "./documents.ts";
import type { SidecarConfig } from "./sidecar-config.generated.ts";
import { validateFrozen } from "./validate.ts";

/** See sidecar-config.schema.json for what each field means and what absence means. */
export type { SidecarConfig } from "./sidecar-config.generated.ts";

const validate = validatorOf("sidecar-config");

/** The one way a sidecar config enters: validated, defaults applied, frozen. */
export function parseSidecarConfig(input: unknown): Readonly<SidecarConfig> {
  return validateFrozen<SidecarConfig>(validate, "sidecar config", input);
}
