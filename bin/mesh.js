#!/usr/bin/env node
// The `mesh` command. TypeScript sources run through tsx's loader, so the
// package ships no build step.
import { register } from "tsx/esm/api";

register();
const command = process.argv[2];
const entry = command === "sidecar" ? "../sidecar/main.ts" : "../control/cli.ts";
const { main } = await import(new URL(entry, import.meta.url).href);
process.exitCode = await main(process.argv.slice(2));
