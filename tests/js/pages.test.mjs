// Page rules (content.page): a message shows only where the page's path matches its glob or
// pattern; elsewhere it stays leased to the device and is not rendered.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { banner, createPage, settle } from './harness.mjs';

async function shownAt(path, page) {
  const p = createPage({
    answer: (r) => (r.path === '/v1/poll'
      ? { body: { messages: [banner('m1', { page })], lease_s: { m1: 300 }, next_poll_s: 10 } }
      : { body: { rejected: [] } }),
  });
  p.window.location.pathname = path;
  p.loadSnippet();
  p.mailslot.identify('u1');
  p.loadSdk();
  await settle();
  return p.card('m1') !== null;
}

test('a glob: `*` stays within a segment, `**` crosses segments, `?` is one character', async () => {
  const cases = [
    ['/billing/*', '/billing/invoices', true],
    ['/billing/*', '/billing/invoices/7', false],
    ['/billing/**', '/billing/invoices/7', true],
    ['/billing', '/billing/', false],
    ['/a?c', '/abc', true],
    ['/a.c', '/abc', false], // a dot is a dot
    ['/(x)', '/(x)', true],
  ];
  for (const [glob, path, expected] of cases) {
    assert.equal(await shownAt(path, { glob }), expected, `${glob} on ${path}`);
  }
});

test('a pattern is a JavaScript regular expression, searched in the path', async () => {
  assert.equal(await shownAt('/projects/42/settings', { pattern: '^/projects/\\d+/settings$' }), true);
  assert.equal(await shownAt('/projects/x/settings', { pattern: '^/projects/\\d+/settings$' }), false);
  assert.equal(await shownAt('/a/docs/b', { pattern: 'docs' }), true);
  assert.equal(await shownAt('/anything', { pattern: '(' }), false, 'a rule the browser cannot read: not shown');
});

test('no rule, or a rule that is not an object, shows anywhere', async () => {
  assert.equal(await shownAt('/x', undefined), true);
  assert.equal(await shownAt('/x', 'nonsense'), true);
});

test('page() shows a waiting message once the path matches, for routers the SDK cannot watch', async () => {
  const p = createPage({
    answer: (r) => (r.path === '/v1/poll'
      ? { body: { messages: [banner('m1', { page: { glob: '/billing/*' } })], lease_s: { m1: 300 }, next_poll_s: 10 } }
      : { body: { rejected: [] } }),
  });
  p.window.location.pathname = '/home';
  p.loadSnippet();
  p.mailslot.identify('u1');
  p.loadSdk();
  await settle();
  assert.equal(p.card('m1'), null, 'not on its page');
  p.window.location.pathname = '/billing/plans'; // a route change the SDK did not see
  assert.equal(p.card('m1'), null);
  p.mailslot.page();
  await settle();
  assert.notEqual(p.card('m1'), null);
});
