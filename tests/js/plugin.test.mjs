// The analytics.js plugin (gateway/static/sdk/v1/analytics-plugin.js), unchanged, in a node:vm
// context with a recording window.mailslot and a fake analytics instance: which calls reach
// mailslot for which analytics.js events. The real analytics-next runs in tests/browser.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import vm from 'node:vm';

const SOURCE = readFileSync(new URL('../../gateway/static/sdk/v1/analytics-plugin.js', import.meta.url), 'utf8');
const plain = (value) => JSON.parse(JSON.stringify(value));

// A page with the plugin loaded from https://gw.example.com; `mailslot` records every call.
function page({ withMailslot = true } = {}) {
  const calls = [];
  const warnings = [];
  const head = { children: [], appendChild(node) { this.children.push(node); } };
  const timers = [];
  const window = {
    console: { warn: (m) => warnings.push(m) },
    setTimeout: (fn) => timers.push(fn),
    URL,
    Promise,
    document: {
      currentScript: { src: 'https://gw.example.com/sdk/v1/analytics-plugin.js' },
      head,
      createElement: (tag) => ({ tag }),
    },
  };
  if (withMailslot) {
    window.mailslot = {};
    for (const k of ['load', 'identify', 'reset', 'track', 'page']) {
      window.mailslot[k] = (...args) => { calls.push([k, ...args]); };
    }
  }
  window.window = window;
  vm.createContext(window);
  vm.runInContext(SOURCE, window);
  return { window, calls, warnings, head, runTimers: () => timers.splice(0).forEach((fn) => fn()) };
}

// Enough of analytics-next for a plugin: user().id(), on/off('reset'), and an event per call.
function analytics(userId = null) {
  const handlers = {};
  let n = 0;
  return {
    user: () => ({ id: () => userId }),
    on: (name, fn) => { handlers[name] = fn; },
    off: (name) => { delete handlers[name]; },
    reset: () => handlers.reset && handlers.reset(),
    ctx: (event) => ({ event: Object.assign({ messageId: 'ajs-' + (++n) }, event) }),
  };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

test('identify drives mailslot once per person, with only the traits the plugin was told to pass', async () => {
  const p = page();
  const a = analytics();
  const plugin = p.window.mailslotPlugin({ siteId: 'site_1', traits: ['first_name', 'email'] });
  await plugin.load(a.ctx({}), a);
  assert.deepEqual(p.calls, [], 'nobody known yet');

  plugin.identify(a.ctx({ type: 'identify', userId: 'ada', traits: { first_name: 'Ada', email: 'a@x', plan: 'pro' } }));
  plugin.track(a.ctx({ type: 'track', userId: 'ada', event: 'Signed Up', properties: { via: 'ad' } }));
  plugin.page(a.ctx({ type: 'page', userId: 'ada' }));
  assert.deepEqual(plain(p.calls), [
    ['identify', 'ada', { first_name: 'Ada' }, {}],
    ['track', 'Signed Up', { via: 'ad' }],
    ['page'],
  ]);
});

test('traits are not passed by default, and never id or email even with traits: true', () => {
  const p = page();
  const a = analytics();
  const quiet = p.window.mailslotPlugin({ siteId: 'site_1' });
  quiet.identify(a.ctx({ userId: 'ada', traits: { first_name: 'Ada' } }));
  const all = p.window.mailslotPlugin({ siteId: 'site_1', traits: true });
  all.identify(a.ctx({ userId: 'bob', traits: { id: 'x', email: 'b@x', theme: 'dark' } }));
  assert.deepEqual(plain(p.calls), [['identify', 'ada', null, {}], ['identify', 'bob', { theme: 'dark' }, {}]]);
});

test('a person analytics.js remembers is identified on load; reset forgets them', async () => {
  const p = page();
  const a = analytics('ada');
  const plugin = p.window.mailslotPlugin({ siteId: 'site_1' });
  await plugin.load(a.ctx({}), a);
  plugin.page(a.ctx({ userId: 'ada' }));
  a.reset();
  plugin.track(a.ctx({ userId: null, event: 'Browsed', properties: {} }));
  assert.deepEqual(plain(p.calls), [['identify', 'ada', null, {}], ['page'], ['reset'], ['track', 'Browsed', {}]]);
});

test('the identity proof comes from the options, per person', async () => {
  const p = page();
  const a = analytics();
  const asked = [];
  const plugin = p.window.mailslotPlugin({
    siteId: 'site_1',
    userToken: (id) => { asked.push(id); return 'token-for-' + id; },
    userHash: async (id) => 'hash-for-' + id,
  });
  plugin.identify(a.ctx({ userId: 'ada', traits: {}, integrations: { mailslot: { userToken: 'ignored' } } }));
  await settle();
  const [[method, id, attrs, options]] = p.calls;
  assert.deepEqual([method, id, attrs, options.userHash], ['identify', 'ada', null, 'hash-for-ada']);
  assert.equal(options.userToken(), 'token-for-ada', 'a function the SDK calls for the first and every fresh token');
  assert.deepEqual(asked, ['ada']);
});

test('only the listed events are tracked, and an event seen twice counts once', () => {
  const p = page();
  const a = analytics();
  const plugin = p.window.mailslotPlugin({ siteId: 'site_1', events: ['Plan Upgraded'] });
  const upgraded = a.ctx({ userId: 'ada', event: 'Plan Upgraded', properties: { plan: 'pro' } });
  plugin.track(a.ctx({ userId: 'ada', event: 'Scrolled', properties: {} }));
  plugin.track(upgraded);
  plugin.track(upgraded); // registered twice: the same event comes through both registrations
  assert.deepEqual(plain(p.calls), [['identify', 'ada', null, {}], ['track', 'Plan Upgraded', { plan: 'pro' }]]);
});

test('without a mailslot snippet, load installs the stub and loads the SDK from the same gateway', async () => {
  const p = page({ withMailslot: false });
  const a = analytics();
  const plugin = p.window.mailslotPlugin({ siteId: 'site_1' });
  await plugin.load(a.ctx({}), a);
  assert.equal(p.head.children[0].src, 'https://gw.example.com/sdk/v1/mailslot.js');
  plugin.identify(a.ctx({ userId: 'ada', traits: {} }));
  assert.deepEqual(plain(p.window.mailslot.q), [
    ['load', [{ siteId: 'site_1', endpoint: 'https://gw.example.com' }]],
    ['identify', ['ada', null, {}]],
  ]);
});

test("in the snippet's load(writeKey, {plugins}) the plugin registers itself, once", async () => {
  const p = page();
  const registered = [];
  const plugin = p.window.mailslotPlugin({ siteId: 'site_1' });
  p.window.analytics = { _loadOptions: { plugins: [plugin] }, register: (x) => registered.push(x) };
  p.runTimers();
  assert.deepEqual(registered, [plugin]);

  const loaded = p.window.mailslotPlugin({ siteId: 'site_1' });
  const a = analytics();
  await loaded.load(a.ctx({}), a); // registered by analytics.js itself before the timer ran
  p.window.analytics = { _loadOptions: { plugins: [loaded] }, register: (x) => registered.push(x) };
  p.runTimers();
  assert.equal(registered.length, 1);
});

test('without a site id and without a mailslot snippet the plugin warns and does nothing', async () => {
  const p = page({ withMailslot: false });
  const a = analytics('ada');
  const plugin = p.window.mailslotPlugin({});
  await plugin.load(a.ctx({}), a);
  plugin.identify(a.ctx({ userId: 'ada', traits: {} }));
  assert.equal(p.window.mailslot, undefined);
  assert.match(p.warnings[0], /needs \{siteId\}/);
});
