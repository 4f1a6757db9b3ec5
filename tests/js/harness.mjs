// Runs the web SDK, unchanged, in a node:vm context shaped like a browser page: a small fake DOM,
// a scripted fetch, and fake timers with a clock the test moves. The SDK ships as one script with
// no export, so the tests watch what it does from outside (requests, timers, rendered nodes), the
// way a page would, instead of reaching into its closure.
import { readFileSync } from 'node:fs';
import vm from 'node:vm';

const STATIC = new URL('../../gateway/static/sdk/v1/', import.meta.url);
export const SDK_SOURCE = readFileSync(new URL('mailslot.js', STATIC), 'utf8');
export const SNIPPET_SOURCE = readFileSync(new URL('snippet.js', STATIC), 'utf8');
export const ENDPOINT = 'https://gw.example.com';
export const SITE_ID = 'site_test';

// The snippet with its placeholders filled, as a customer's page has it (gateway/sdk.py does the same).
export function snippet(endpoint = ENDPOINT, siteId = SITE_ID) {
  return SNIPPET_SOURCE.replace('{{ENDPOINT}}', JSON.stringify(endpoint).slice(1, -1))
    .replace('{{SITE_ID}}', JSON.stringify(siteId).slice(1, -1));
}

// Lets every promise chain the SDK started run to its end (fetch answers, res.json(), …).
export async function settle() {
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
}

class FakeElement {
  constructor(doc, tag) {
    this.ownerDocument = doc;
    this.tagName = tag.toUpperCase();
    this.children = [];
    this.parentNode = null;
    this.attributes = {};
    this.listeners = {};
    this.className = '';
    this.textContent = '';
    this.id = '';
    this.classList = { add: (c) => { this.className += ' ' + c; } };
  }

  setAttribute(name, value) { this.attributes[name] = String(value); }
  getAttribute(name) { return name in this.attributes ? this.attributes[name] : null; }
  appendChild(child) {
    child.remove();
    child.parentNode = this;
    this.children.push(child);
    return child;
  }
  remove() {
    if (!this.parentNode) return;
    this.parentNode.children.splice(this.parentNode.children.indexOf(this), 1);
    this.parentNode = null;
  }
  addEventListener(type, fn) { (this.listeners[type] ||= []).push(fn); }
  click() { for (const fn of this.listeners.click || []) fn({ target: this, preventDefault() {} }); }
  focus() { this.ownerDocument.activeElement = this; }
  *descendants() {
    for (const c of this.children) { yield c; yield* c.descendants(); }
  }
  contains(node) { return node === this || [...this.descendants()].includes(node); }
  // Enough of querySelector for the SDK: one class name (`.x`) or a tag name.
  querySelectorAll(selector) {
    const match = selector.startsWith('.')
      ? (e) => e.className.split(/\s+/).includes(selector.slice(1))
      : (e) => e.tagName === selector.toUpperCase();
    return [...this.descendants()].filter(match);
  }
  querySelector(selector) { return this.querySelectorAll(selector)[0] || null; }
}

class FakeDocument {
  constructor() {
    this.readyState = 'complete';
    this.visibilityState = 'visible';
    this.currentScript = null;
    this.listeners = {};
    this.documentElement = new FakeElement(this, 'html');
    this.head = this.documentElement.appendChild(new FakeElement(this, 'head'));
    this.body = this.documentElement.appendChild(new FakeElement(this, 'body'));
    this.activeElement = this.body;
  }

  createElement(tag) { return new FakeElement(this, tag); }
  getElementById(id) { return [...this.documentElement.descendants()].find((e) => e.id === id) || null; }
  querySelector(selector) { return this.documentElement.querySelector(selector); }
  querySelectorAll(selector) { return this.documentElement.querySelectorAll(selector); }
  contains(node) { return this.documentElement.contains(node); }
  addEventListener(type, fn) { (this.listeners[type] ||= []).push(fn); }
  dispatch(type, event = {}) { for (const fn of this.listeners[type] || []) fn(event); }
}

function response({ status = 200, body = {}, headers = {} } = {}) {
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), String(v)]));
  return {
    ok: status >= 200 && status < 300,
    status,
    headers: { get: (name) => lower[name.toLowerCase()] ?? null },
    json: async () => body,
  };
}

// The gateway's answers when a test gives none: an empty poll, accepted events and reports.
function defaultAnswer(request) {
  if (request.path === '/v1/poll') return { body: { messages: [], next_poll_s: 60 } };
  if (request.path === '/v1/events') return { body: { rejected: [] } };
  return { status: 202, body: {} };
}

// A page. `answer(request)` returns {status, body, headers}, throws (a network error), or returns
// a promise (an answer that comes later). `random` is what Math.random returns inside the page.
export function createPage({ answer = defaultAnswer, random = () => 0.5 } = {}) {
  const document = new FakeDocument();
  const requests = [];
  const warnings = [];
  const navigations = [];
  const windowListeners = {};
  const storage = new Map();
  const clock = { now: Date.UTC(2026, 0, 1), nextId: 1, timers: new Map() };

  const context = vm.createContext({
    document,
    URL,
    AbortController,
    crypto: globalThis.crypto,
    localStorage: {
      getItem: (k) => (storage.has(k) ? storage.get(k) : null),
      setItem: (k, v) => { storage.set(k, String(v)); },
      removeItem: (k) => { storage.delete(k); },
    },
    location: { href: 'https://app.example.com/dashboard', assign: (url) => navigations.push(url) },
    console: { warn: (text) => warnings.push(text), log() {}, error() {} },
    setTimeout(fn, ms = 0) {
      const id = clock.nextId++;
      clock.timers.set(id, { fn, ms, at: clock.now + Math.max(0, Number(ms) || 0) });
      return id;
    },
    clearTimeout(id) { clock.timers.delete(id); },
    addEventListener(type, fn) { (windowListeners[type] ||= []).push(fn); },
    async fetch(url, init) {
      const request = {
        url,
        path: url.startsWith(ENDPOINT) ? url.slice(ENDPOINT.length) : url,
        method: init.method,
        body: JSON.parse(init.body),
        keepalive: init.keepalive,
        signal: init.signal,
        at: clock.now,
      };
      requests.push(request);
      const spec = await answer(request);
      return response(spec);
    },
  });
  vm.runInContext('globalThis.window = globalThis', context);
  vm.runInContext('Date', context).now = () => clock.now;
  vm.runInContext('Math', context).random = random;

  const page = {
    window: context,
    document,
    requests,
    warnings,
    navigations,
    clock,
    storage,
    run(source) { vm.runInContext(source, context); },
    loadSnippet(endpoint, siteId) { page.run(snippet(endpoint, siteId)); },
    loadSdk() { page.run(SDK_SOURCE); },
    get mailslot() { return context.mailslot; },
    // Requests to one path, such as '/v1/events'.
    sent(path) { return requests.filter((r) => r.path === path); },
    // The delays of the timers now pending, shortest first.
    pendingDelays() { return [...clock.timers.values()].map((t) => t.ms).sort((a, b) => a - b); },
    // Moves the clock by `ms`, firing each timer that falls due, in order, and letting it finish.
    async advance(ms) {
      const until = clock.now + ms;
      for (;;) {
        await settle(); // answers already given land before the clock moves on
        const due = [...clock.timers.entries()].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
        if (!due) break;
        clock.timers.delete(due[0]);
        clock.now = Math.max(clock.now, due[1].at);
        due[1].fn();
      }
      clock.now = until;
    },
    fireWindow(type) { for (const fn of windowListeners[type] || []) fn({}); },
    cards() { return document.querySelectorAll('.mailslot-card'); },
    card(id) { return page.cards().find((c) => c.getAttribute('data-mailslot-id') === id) || null; },
  };
  return page;
}

// A message as the device API returns it, in a layout that needs no focus handling.
export function banner(id, extra = {}) {
  return { id, content: { layout: 'banner_top', title: 'Title ' + id, body: 'Body', ...extra } };
}
