#!/usr/bin/env node
// Entry point of the `mandate` command: loads the TypeScript CLI through tsx's ESM loader.
import { setFlagsFromString } from 'node:v8';
import { register } from 'tsx/esm/api';

// V8 on Node 20 can crash ("unreachable code" in the deoptimiser) when it inlines JS→WebAssembly calls into
// hot functions that call cedar-wasm; turning that inlining off before any such code is compiled avoids it.
setFlagsFromString('--no-turbo-inline-js-wasm-calls');
register();
await import('../src/cli/main.ts');
