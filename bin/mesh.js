#!/usr/bin/env node
// The `mesh` command. TypeScript sources run through tsx's loader.
import { register } from "tsx/esm/api";

register();
const { main } = await import(new URL("../cli/main.ts", import.meta.url).href);
process.exitCode = await main(process.argv.slice(2));
