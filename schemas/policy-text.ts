/**
 * Reading a policy file's text into plain values, before any schema check.
 * A text whose first non-blank character is `{` or `[` is JSON (one object
 * or an array of objects); anything else is YAML, documents separated by `---`.
 * Duplicate keys are errors in both, as are syntax errors (with line and column).
 */
import { createRequire } from "node:module";
import type { Document, LineCounter } from "yaml";

/**
 * The yaml package, loaded on the first policy text parsed: a sidecar never
 * parses YAML, and loading it costs a start-up ~100 ms.
 */
let yamlModule: typeof import("yaml") | undefined;
const yaml = () => (yamlModule ??= createRequire(import.meta.url)("yaml") as typeof import("yaml"));

/** A value as YAML text (the CLI's output), through the same lazily loaded package. */
export function toYaml(value: unknown): string {
  return yaml().stringify(value);
}

export interface TextProblem {
  /** 0-based index of the document in the file; -1 = the whole file */
  document: number;
  message: string;
}

/** One document of a file; `index` counts every document, empty YAML ones included. */
export interface RawDocument {
  index: number;
  value: unknown;
}

export type ReadResult = { ok: true; documents: RawDocument[] } | { ok: false; problems: TextProblem[] };

export function readPolicyText(text: string): ReadResult {
  const trimmed = text.trimStart();
  const result = trimmed.startsWith("{") || trimmed.startsWith("[") ? readJson(text) : readYaml(text);
  if (!result.ok) return result;
  const documents = unwrapList(result.documents);
  if (documents.length === 0) {
    return { ok: false, problems: [{ document: -1, message: "the file holds no policy document" }] };
  }
  return { ok: true, documents };
}

/** A file holding one list is a list of documents. */
function unwrapList(documents: RawDocument[]): RawDocument[] {
  const only = documents.length === 1 ? documents[0]!.value : undefined;
  return Array.isArray(only) ? only.map((value: unknown, index) => ({ index, value })) : documents;
}

function readJson(text: string): ReadResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const at = lineColumn(text, jsonErrorOffset(text));
    return { ok: false, problems: [{ document: -1, message: `malformed JSON at ${at}: ${jsonMessage(err)}` }] };
  }
  // JSON.parse keeps the last of duplicate keys; YAML, a superset of JSON, finds them.
  const lines = new (yaml().LineCounter)();
  const doc = yaml().parseDocument(text, { uniqueKeys: true, prettyErrors: false, lineCounter: lines });
  const duplicates = doc.errors.filter((e) => e.code === "DUPLICATE_KEY");
  if (duplicates.length > 0) {
    return { ok: false, problems: duplicates.map((e) => ({ document: -1, message: duplicateKey(text, e.pos[0], lines) })) };
  }
  return { ok: true, documents: [{ index: 0, value }] };
}

function readYaml(text: string): ReadResult {
  const lines = new (yaml().LineCounter)();
  const docs = yaml().parseAllDocuments(text, { uniqueKeys: true, prettyErrors: false, lineCounter: lines });
  if (!Array.isArray(docs)) return { ok: true, documents: [] };
  const problems: TextProblem[] = [];
  const documents: RawDocument[] = [];
  docs.forEach((doc, index) => {
    const value = yamlValue(doc, index, text, lines, problems);
    if (value !== null && value !== undefined) documents.push({ index, value });
  });
  return problems.length > 0 ? { ok: false, problems } : { ok: true, documents };
}

/** The document's value; null for an empty document; undefined after recording its problems. */
function yamlValue(doc: Document, index: number, text: string, lines: LineCounter, problems: TextProblem[]): unknown {
  for (const e of doc.errors) {
    const message =
      e.code === "DUPLICATE_KEY" ? duplicateKey(text, e.pos[0], lines) : `malformed YAML at ${position(e.pos[0], lines)}: ${lowerFirst(e.message)}`;
    problems.push({ document: index, message });
  }
  if (doc.errors.length > 0) return undefined;
  try {
    return doc.toJS();
  } catch (err) {
    problems.push({ document: index, message: `malformed YAML: ${lowerFirst((err as Error).message)}` });
    return undefined;
  }
}

function duplicateKey(text: string, offset: number, lines: LineCounter): string {
  const key = /^("(?:[^"\\]|\\.)*"|'[^']*'|[^\s:,{}[\]]+)/.exec(text.slice(offset))?.[1];
  return `duplicate key${key ? ` ${key.startsWith('"') || key.startsWith("'") ? key : JSON.stringify(key)}` : ""} at ${position(offset, lines)}`;
}

function position(offset: number, lines: LineCounter): string {
  const { line, col } = lines.linePos(offset);
  return `line ${line}, column ${col}`;
}

function lineColumn(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  return `line ${line}, column ${offset - before.lastIndexOf("\n")}`;
}

/**
 * Where JSON.parse gave up. V8 names the position for most errors but not for
 * "Unexpected token"; then the shortest prefix that fails for a reason other
 * than ending too early ends at the offending character.
 */
function jsonErrorOffset(text: string): number {
  if (endsTooEarly(text)) return text.length;
  let lo = 0;
  let hi = text.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (endsTooEarly(text.slice(0, mid))) lo = mid + 1;
    else hi = mid;
  }
  return Math.max(0, lo - 1);
}

function endsTooEarly(prefix: string): boolean {
  try {
    JSON.parse(prefix);
    return true;
  } catch (err) {
    const message = (err as Error).message;
    if (message.includes("Unexpected end of JSON input")) return true;
    const at = /at position (\d+)/.exec(message);
    return at ? Number(at[1]) >= prefix.length : false;
  }
}

function jsonMessage(err: unknown): string {
  const message = (err as Error).message
    .replace(/ in JSON at position \d+.*$/s, "")
    .replace(/, (\.\.\.)?".*"(\.\.\.)? is not valid JSON$/s, "");
  return lowerFirst(message);
}

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}
