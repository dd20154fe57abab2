// Every schema of the contract is a valid draft-07 JSON Schema. The product's
// ajv skips this check at load to start fast (schemas/validate.ts), so it is
// made here, with an instance that checks schemas, and each one compiles
// under the product's own strict instance.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Ajv } from "ajv";
import { SCHEMAS, validatorOf } from "../schemas/documents.ts";

test("every schema is valid against the draft-07 meta-schema and compiles strictly", () => {
  const checker = new Ajv({ strict: false, validateSchema: true });
  for (const [name, schema] of Object.entries(SCHEMAS)) {
    assert.ok(checker.validateSchema(schema), `${name}: ${checker.errorsText(checker.errors)}`);
    const validate = validatorOf(name);
    validate(undefined); // compiles it
  }
});
