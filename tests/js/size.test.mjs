// The SDK's size budget, which docs/sdk.md states instead of a measured size that goes stale.
// Every page that pastes the snippet downloads the whole file: growing past a budget is a decision
// to make on purpose (raise it here and in the docs, in the same commit), not by accident.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { SDK_SOURCE } from './harness.mjs';

const KB = 1024;
const bytes = Buffer.from(SDK_SOURCE, 'utf8');

test('as served (the gateway does not compress it): at most 46 KB', () => {
  assert.ok(bytes.length <= 46 * KB, `mailslot.js is ${bytes.length} bytes, over the 46 KB budget`);
});

test('gzipped, as a compressing proxy or CDN sends it: at most 14 KB', () => {
  const gzipped = gzipSync(bytes).length; // zlib's default level, 6
  assert.ok(gzipped <= 14 * KB, `mailslot.js is ${gzipped} bytes gzipped, over the 14 KB budget`);
});
