// Signed user tokens: identify() sends user_token, and on identity_token_expired the SDK asks the
// page for a fresh token (onTokenExpired, or userToken given as a function) and retries with it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createPage, settle } from './harness.mjs';

const expired = { status: 403, body: { error: { code: 'identity_token_expired', message: 'expired' } } };

// A gateway that accepts only `valid` as the token.
function gateway(valid) {
  return (r) => {
    if (r.body.user_token !== valid()) return expired;
    if (r.path === '/v1/poll') return { body: { messages: [], next_poll_s: 60 } };
    return { status: 202, body: {} };
  };
}

test('identify sends the token on every device request', async () => {
  const page = createPage({ answer: gateway(() => 't1') });
  page.loadSnippet();
  page.mailslot.identify('ada', { plan_name: 'pro' }, { userToken: 't1' });
  page.mailslot.track('opened_app');
  page.loadSdk();
  await settle();
  for (const path of ['/v1/poll', '/v1/identify', '/v1/track']) {
    assert.equal(page.sent(path)[0].body.user_token, 't1', path);
    assert.equal(page.sent(path)[0].body.user, 'ada', path);
  }
  assert.equal(page.sent('/v1/poll')[0].body.user_hash, undefined);
});

test('an expired token is refreshed through onTokenExpired and the poll retried at once', async () => {
  const current = 't2';
  const asked = [];
  const page = createPage({ answer: gateway(() => current) });
  const errors = [];
  page.loadSnippet();
  page.loadSdk();
  page.mailslot.on('error', (e) => errors.push(e.code));
  page.mailslot.identify('ada', null, {
    userToken: 't1',
    onTokenExpired: async () => { asked.push(page.clock.now); return current; },
  });
  await page.advance(0);
  const polls = page.sent('/v1/poll').map((r) => r.body.user_token);
  assert.deepEqual(polls.slice(0, 2), ['t1', 't2']);
  assert.equal(asked.length, 1, 'asked once');
  assert.deepEqual(errors, [], 'a refreshed token is no error');
});

test('userToken as a function gives the first token and every fresh one', async () => {
  let n = 0;
  let valid = 'tok1';
  const page = createPage({ answer: gateway(() => valid) });
  page.loadSnippet();
  page.loadSdk();
  page.mailslot.identify('ada', null, { userToken: async () => 'tok' + ++n });
  await page.advance(0);
  assert.equal(page.sent('/v1/poll')[0].body.user_token, 'tok1');
  const before = page.sent('/v1/poll').length;
  valid = 'tok2'; // tok1 expires
  await page.advance(61_000);
  const tokens = page.sent('/v1/poll').map((r) => r.body.user_token);
  assert.deepEqual(tokens.slice(before, before + 2), ['tok1', 'tok2'], 'refused once, then the fresh token');
  assert.equal(n, 2);
});

test('events and track reported under an expired token are retried with a fresh one', async () => {
  let current = 'old';
  const page = createPage({ answer: gateway(() => current) });
  page.loadSnippet();
  page.loadSdk();
  page.mailslot.identify('ada', null, { userToken: 'old', onTokenExpired: async () => current });
  await page.advance(0);
  current = 'new';
  page.mailslot.track('clicked');
  await page.advance(0);
  assert.deepEqual(page.sent('/v1/track').map((r) => r.body.user_token), ['old', 'new']);
});

test('without a way to refresh, or when the fresh token is expired too, it stops and reports', async () => {
  const page = createPage({ answer: () => expired });
  const errors = [];
  page.loadSnippet();
  page.loadSdk();
  page.mailslot.on('error', (e) => errors.push(e.code));
  page.mailslot.identify('ada', null, { userToken: 't1' });
  await page.advance(1000);
  assert.equal(page.sent('/v1/poll').length, 1, 'no refresh, no retry loop');
  assert.deepEqual(errors, ['identity_token_expired']);

  let asked = 0;
  const stale = createPage({ answer: () => expired });
  const staleErrors = [];
  stale.loadSnippet();
  stale.loadSdk();
  stale.mailslot.on('error', (e) => staleErrors.push(e.code));
  stale.mailslot.identify('ada', null, { userToken: 't1', onTokenExpired: async () => 't' + ++asked });
  await stale.advance(1000);
  assert.ok(stale.sent('/v1/poll').length <= 3, 'a bounded number of quick retries');
  assert.deepEqual(staleErrors, ['identity_token_expired']);
});

test('a failing onTokenExpired is reported, not thrown', async () => {
  const page = createPage({ answer: () => expired });
  const errors = [];
  page.loadSnippet();
  page.loadSdk();
  page.mailslot.on('error', (e) => errors.push(e.code));
  page.mailslot.identify('ada', null, { userToken: 't1', onTokenExpired: async () => { throw new Error('backend down'); } });
  await page.advance(1000);
  assert.deepEqual(errors, ['token_refresh_failed', 'identity_token_expired']);
});
