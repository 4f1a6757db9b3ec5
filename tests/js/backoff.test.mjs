// Retry timing: exponential backoff from 1 s to 60 s with jitter, never sooner than Retry-After.
// Watched through the poll loop: the gap between two poll requests is the delay the SDK chose.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createPage, settle } from './harness.mjs';

// A page that identified `u1` and whose polls get `answer`; returns it after the first poll.
async function pollingPage(answer, random) {
  const page = createPage({
    random,
    answer: (r) => (r.path === '/v1/poll' ? answer(r) : { status: 202, body: {} }),
  });
  page.loadSnippet();
  page.mailslot.identify('u1');
  page.loadSdk();
  await settle();
  assert.equal(page.sent('/v1/poll').length, 1, 'load and identify poll once at once');
  return page;
}

function gaps(page) {
  const at = page.sent('/v1/poll').map((r) => r.at);
  return at.slice(1).map((t, i) => t - at[i]);
}

const unavailable = () => ({ status: 503, body: { error: { code: 'unavailable', message: 'busy' } } });

test('backoff doubles from about 1 s per failure and stops growing at 60 s', async () => {
  const page = await pollingPage(unavailable, () => 0.5); // jitter in the middle: 3/4 of the cap
  await page.advance(10 * 60_000);
  assert.deepEqual(gaps(page).slice(0, 9), [750, 1500, 3000, 6000, 12000, 24000, 45000, 45000, 45000]);
});

test('jitter stays within half the cap and the cap, and never passes 60 s', async () => {
  for (const [random, first, last] of [[() => 0, 500, 30000], [() => 0.999999, 1000, 60000]]) {
    const page = await pollingPage(unavailable, random);
    await page.advance(30 * 60_000);
    const g = gaps(page);
    assert.ok(g.length > 20, 'keeps retrying');
    assert.ok(Math.abs(g[0] - first) < 1, `first retry after ${g[0]} ms, expected ${first}`);
    assert.ok(g.every((ms) => ms <= 60000), 'never waits more than 60 s');
    assert.ok(Math.abs(g.at(-1) - last) < 1, `capped retry after ${g.at(-1)} ms, expected ${last}`);
  }
});

test('Retry-After in seconds delays the retry beyond the backoff', async () => {
  const page = await pollingPage(() => ({ status: 503, headers: { 'Retry-After': '120' } }), () => 0.5);
  await page.advance(5 * 60_000);
  const [first] = gaps(page);
  assert.ok(first >= 120_000, `retried after ${first} ms, before Retry-After's 120 s`);
  assert.ok(first <= 132_000, `retried after ${first} ms, more than 10% past Retry-After`);
});

test('Retry-After as an HTTP date is honoured too', async () => {
  const page = await pollingPage(
    (r) => ({ status: 429, headers: { 'Retry-After': new Date(r.at + 90_000).toUTCString() } }),
    () => 0,
  );
  await page.advance(5 * 60_000);
  const [first] = gaps(page);
  assert.ok(first >= 89_000 && first <= 99_000, `retried after ${first} ms, expected about 90 s`);
});

test('a Retry-After shorter than the backoff does not make the retry sooner', async () => {
  const page = await pollingPage(() => ({ status: 503, headers: { 'Retry-After': '0' } }), () => 0.5);
  await page.advance(60_000);
  assert.deepEqual(gaps(page).slice(0, 3), [750, 1500, 3000]);
});

test('network errors back off the same way', async () => {
  const page = await pollingPage(() => { throw new TypeError('Failed to fetch'); }, () => 0.5);
  await page.advance(60_000);
  assert.deepEqual(gaps(page).slice(0, 4), [750, 1500, 3000, 6000]);
  assert.deepEqual(page.warnings, ['[mailslot] network_error: Failed to fetch'], 'reported once, not per retry');
});

test('an answer resets the backoff', async () => {
  let calls = 0;
  const page = await pollingPage(() => (++calls <= 3 || calls === 6 ? unavailable() : { body: { messages: [], next_poll_s: 60 } }), () => 0.5);
  await page.advance(10 * 60_000);
  // 3 failures, the quick poll's answer, the long poll at once, next_poll_s later a failure, then 750 ms again.
  assert.deepEqual(gaps(page).slice(0, 6), [750, 1500, 3000, 0, 60000, 750]);
});

test('a refusal that retrying cannot fix is retried after 5 minutes and reported', async () => {
  const errors = [];
  const page = createPage({
    answer: (r) => (r.path === '/v1/poll'
      ? { status: 403, body: { error: { code: 'identity_required', message: 'user_hash missing' } } }
      : { status: 202 }),
  });
  page.loadSnippet();
  page.mailslot.on('error', (e) => errors.push(e.code));
  page.mailslot.identify('u1');
  page.loadSdk();
  await page.advance(11 * 60_000);
  assert.deepEqual(gaps(page), [300_000, 300_000]);
  assert.deepEqual(errors, ['identity_required', 'identity_required', 'identity_required']);
});

test('identify retries with backoff, then gives up after five retries', async () => {
  const errors = [];
  const page = createPage({
    random: () => 0.5,
    answer: (r) => (r.path === '/v1/identify' ? { status: 500 } : { body: { messages: [], next_poll_s: 600 } }),
  });
  page.loadSnippet();
  page.mailslot.on('error', (e) => errors.push(e.code));
  page.mailslot.identify('u1', { plan_name: 'pro' });
  page.loadSdk();
  await page.advance(10 * 60_000);
  const at = page.sent('/v1/identify').map((r) => r.at);
  assert.deepEqual(at.slice(1).map((t, i) => t - at[i]), [750, 1500, 3000, 6000, 12000]);
  assert.deepEqual(errors, ['identify_failed']);
});
