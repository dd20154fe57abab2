import { RE2JS } from "re2js";

/**
 * Header regexes of Route documents (`match.headersRegex`) run in the
 * calling sidecar on every request, on values the application (or whoever
 * talks to it) chooses. They are compiled with RE2 (re2js), whose matching
 * time is linear in the input, never with `RegExp`, whose backtracking lets
 * one pattern such as `^(a+)+$` and a 34-character header freeze the sidecar.
 * RE2 syntax is JavaScript's minus backreferences and lookaround.
 */

/** Longest pattern a Route may give (characters); also the schema's `maxLength`. */
export const HEADER_REGEX_MAX_PATTERN = 256;
/** A header value longer than this (characters) never matches a header regex. */
export const HEADER_REGEX_MAX_INPUT = 8 * 1024;

export type HeaderRegex = (value: string) => boolean;

/** Why `source` cannot be a header regex, or undefined when it can. */
export function headerRegexProblem(source: string): string | undefined {
  const got = `got ${JSON.stringify(source.length > 80 ? `${source.slice(0, 77)}...` : source)}`;
  if (source.length > HEADER_REGEX_MAX_PATTERN) {
    return `must be at most ${HEADER_REGEX_MAX_PATTERN} characters, ${got}`;
  }
  try {
    RE2JS.compile(source);
    return undefined;
  } catch (err) {
    const reason = (err as Error).message.replace(/^error parsing regexp: /, "").replace(/: `.*`$/s, "");
    return `must be a valid regular expression in RE2 syntax (${reason}), ${got}`;
  }
}

/** Compiles a header regex (unanchored search); throws on one headerRegexProblem rejects. */
export function compileHeaderRegex(source: string): HeaderRegex {
  const problem = headerRegexProblem(source);
  if (problem) throw new Error(`invalid header regex: ${problem}`);
  const re = RE2JS.compile(source);
  return (value) => value.length <= HEADER_REGEX_MAX_INPUT && re.test(value);
}
