import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  ClosedConnectionError,
  InvalidArgumentError,
  NoRespondersError,
  PermissionViolationError,
  RequestError,
  TimeoutError,
} from "@nats-io/transport-node";
import {
  CLIENT_CLOSED,
  MESH_ERRORS,
  UNKNOWN_ERROR,
  Wire,
  classify,
  isOutcomeCode,
  replyStatus,
  type MeshErrorCode,
  type Outcome,
} from "../schemas/index.ts";
import { MeshError } from "../sidecar/errors.ts";
import { meshErrorFromNats } from "../sidecar/outbound/nats-errors.ts";
import { mayRetry } from "../sidecar/resilience/retry.ts";

/** A provider reply's wire headers, read like nats.js MsgHdrs (an absent header reads as ""). */
function reply(headers: Record<string, string>): Outcome {
  return classify({ reply: { get: (name) => headers[name] ?? "" } });
}

const CODES = Object.keys(MESH_ERRORS) as MeshErrorCode[];
const RETRIED = new Map<string, string>([["unavailable", "unavailable"], ["overloaded", "unavailable"], ["timeout", "timeout"], ["app_unreachable", "app_unreachable"]]);

describe("the outcome table", () => {
  test("codes and statuses are the ones the mesh has always answered with", () => {
    assert.deepEqual(Object.fromEntries(CODES.map((c) => [c, MESH_ERRORS[c].status])), {
      bad_target: 400, request_timeout: 408, forbidden: 403, payload_too_large: 413, quota_exceeded: 429, app_unreachable: 502,
      response_too_large: 502, bad_response: 502, unavailable: 503, circuit_open: 503, overloaded: 503, timeout: 504, fault_injected: 500,
    });
  });

  test("only unavailable, overloaded, timeout and app_unreachable are retried, and they are the breaker failures", () => {
    for (const code of CODES) {
      assert.equal(MESH_ERRORS[code].retryOn, RETRIED.get(code) ?? null, code);
      assert.equal(MESH_ERRORS[code].breakerFailure, RETRIED.has(code), code);
    }
  });
});

describe("classify", () => {
  test("a mesh error: its code, its status (a fault's own), its class", () => {
    for (const code of CODES) {
      const o = classify({ meshError: new MeshError(code, "x") });
      assert.deepEqual(o, { status: MESH_ERRORS[code].status, code, meshError: code, retryOn: MESH_ERRORS[code].retryOn, breakerFailure: MESH_ERRORS[code].breakerFailure }, code);
    }
    assert.equal(classify({ meshError: new MeshError("fault_injected", "x", { status: 418 }) }).status, 418);
  });

  test("the application's status: 5xx is the 5xx condition and a breaker failure, anything else a success", () => {
    for (const status of [500, 502, 503, 504, 599]) {
      const want: Outcome = { status, code: String(status), meshError: undefined, retryOn: "5xx", breakerFailure: true };
      assert.deepEqual(reply({ [Wire.status]: String(status) }), want);
      assert.deepEqual(classify({ appStatus: status }), want);
    }
    for (const status of [200, 201, 204, 302, 304, 400, 404, 429, 499]) {
      const want: Outcome = { status, code: String(status), meshError: undefined, retryOn: null, breakerFailure: false };
      assert.deepEqual(reply({ [Wire.status]: String(status) }), want);
      assert.deepEqual(classify({ appStatus: status }), want);
    }
  });

  test("a provider's @error is believed only when it is a code of the table, with the status it came with", () => {
    assert.deepEqual(reply({ [Wire.status]: "503", [Wire.error]: "overloaded" }), { status: 503, code: "overloaded", meshError: "overloaded", retryOn: "unavailable", breakerFailure: true });
    assert.deepEqual(reply({ [Wire.status]: "403", [Wire.error]: "forbidden" }), { status: 403, code: "forbidden", meshError: "forbidden", retryOn: null, breakerFailure: false });
    assert.deepEqual(reply({ [Wire.status]: "503", [Wire.error]: "made_up_RANDOM" }), { status: 503, code: UNKNOWN_ERROR, meshError: UNKNOWN_ERROR, retryOn: null, breakerFailure: false });
    assert.deepEqual(reply({ [Wire.status]: "200", [Wire.error]: "toString" }), { status: 200, code: UNKNOWN_ERROR, meshError: UNKNOWN_ERROR, retryOn: null, breakerFailure: false }, "no prototype key is a code");
  });

  test("a reply whose @status the application may not see is bad_response, whatever its @error says", () => {
    const bad: Outcome = { status: 502, code: "bad_response", meshError: "bad_response", retryOn: null, breakerFailure: false };
    for (const status of ["101", "199", "600", "200.5", "abc", "", " 200", "0200", "2e2", "-500"]) {
      assert.deepEqual(reply({ [Wire.status]: status }), bad, JSON.stringify(status));
      assert.deepEqual(reply({ [Wire.status]: status, [Wire.error]: "unavailable" }), bad, JSON.stringify(status));
      assert.equal(replyStatus(status), undefined, JSON.stringify(status));
    }
    assert.deepEqual(reply({}), bad);
    assert.deepEqual(classify({ reply: undefined }), bad);
  });

  test("a client that went away is client_closed with status 0, and nothing else", () => {
    assert.deepEqual(classify({ clientClosed: true }), { status: 0, code: CLIENT_CLOSED, meshError: undefined, retryOn: null, breakerFailure: false });
  });

  test("a failed NATS request is classified after its mapping to a mesh error", () => {
    const of = (err: unknown) => classify({ meshError: meshErrorFromNats(err, "pricing", "v1", 100) });
    const cases: [unknown, string, string | null, boolean][] = [
      [new TimeoutError(), "timeout", "timeout", true],
      [new RequestError("no responders", { cause: new NoRespondersError("mesh.rpc.pricing.v1.x") }), "unavailable", "unavailable", true],
      [new ClosedConnectionError(), "unavailable", "unavailable", true],
      [new PermissionViolationError("denied", "publish", "mesh.rpc.pricing.v1.x"), "forbidden", null, false],
      [new InvalidArgumentError("message exceeds max_payload"), "payload_too_large", null, false],
      [new Error("anything else"), "unavailable", "unavailable", true],
    ];
    for (const [err, code, retryOn, breakerFailure] of cases) {
      const o = of(err);
      assert.deepEqual([o.code, o.retryOn, o.breakerFailure], [code, retryOn, breakerFailure], (err as Error).constructor.name);
    }
  });

  test("every label classify produces is a known code; anything else is not", () => {
    const produced = [
      ...CODES.map((c) => classify({ meshError: new MeshError(c, "x") }).code),
      reply({ [Wire.status]: "503", [Wire.error]: "nope" }).code,
      classify({ clientClosed: true }).code,
      ...[200, 404, 503, 599].map((s) => classify({ appStatus: s }).code),
    ];
    for (const code of produced) assert.ok(isOutcomeCode(code), code);
    for (const code of ["_other", "made_up", "99", "1000", "", "toString", "200 "]) assert.equal(isOutcomeCode(code), false, code);
  });

  test("mayRetry reads the class: retried only under a listed condition", () => {
    const base = { method: "GET", retryNonIdempotent: false, attempt: 1, maxAttempts: 3 };
    assert.equal(mayRetry({ ...base, on: ["5xx"], outcome: classify({ appStatus: 503 }) }), true);
    assert.equal(mayRetry({ ...base, on: ["unavailable"], outcome: classify({ appStatus: 503 }) }), false);
    assert.equal(mayRetry({ ...base, on: ["unavailable"], outcome: reply({ [Wire.status]: "503", [Wire.error]: "overloaded" }) }), true);
    assert.equal(mayRetry({ ...base, on: ["unavailable", "timeout", "5xx", "app_unreachable"], outcome: reply({ [Wire.status]: "abc" }) }), false);
  });
});
