/*! mailslot plugin for Segment's analytics.js (analytics-next), v1 (1.0.0).
 * Usage: docs/sdk.md, "With analytics.js". Defines window.mailslotPlugin(options), which returns a
 * destination plugin for `analytics.register(...)` or `analytics.load(writeKey, {plugins: [...]})`.
 * analytics.identify / track / page / reset drive mailslot.identify / track / page / reset, so a
 * page that runs analytics.js never calls mailslot itself. Loads the web SDK from the same
 * gateway when the page has no mailslot snippet. Decision record: docs/decisions/0026.
 */
(function (window, document) {
  'use strict';
  if (typeof window.mailslotPlugin === 'function') return; // the script was included twice

  const VERSION = '1.0.0';
  const NAME = 'mailslot';
  const METHODS = ['load', 'identify', 'reset', 'on', 'track', 'page'];
  const BACKEND_ONLY = ['id', 'email']; // traits a device may never write (docs/api.md, who writes what)
  const script = document.currentScript;
  const origin = script && script.src ? new URL(script.src).origin : '';

  function warn(message) { console.warn('[mailslot] ' + message); }

  // The snippet's stub, when the page has none: calls queue until the SDK replaces it.
  function ensureSdk(siteId, endpoint) {
    if (window.mailslot) return; // the page's own snippet configured it
    const m = window.mailslot = { q: [] };
    METHODS.forEach((k) => { m[k] = function () { m.q.push([k, [].slice.call(arguments)]); }; });
    const tag = document.createElement('script');
    tag.async = true;
    tag.src = endpoint + '/sdk/v1/mailslot.js';
    document.head.appendChild(tag);
    m.load({ siteId, endpoint });
  }

  // The SDK as it is now: the stub before the script arrives, the SDK after.
  function sdk() { return window.mailslot; }

  function mailslotPlugin(options) {
    const o = options || {};
    let current = null; // the userId mailslot polls as
    let analytics = null;

    // Which traits become the device's attributes: none by default (who a person is comes from
    // the backend), `true` for all, or a list of names; never `id` or `email`.
    function attributes(traits) {
      if (!o.traits || !traits || typeof traits !== 'object') return null;
      const names = o.traits === true ? Object.keys(traits) : [].concat(o.traits);
      const out = {};
      for (const name of names) {
        if (!BACKEND_ONLY.includes(name) && traits[name] !== undefined) out[name] = traits[name];
      }
      return Object.keys(out).length ? out : null;
    }

    // The identity proof comes from the plugin's options, never from the analytics.js call: every
    // option and trait of a call is sent to Segment and to every other destination.
    function proof(userId) {
      const p = {};
      if (typeof o.userToken === 'function') p.userToken = () => o.userToken(userId);
      return p;
    }

    // Identifies once per person: every event carries the userId analytics.js keeps, so a page
    // load by a known person polls as them without anyone calling identify again.
    function follow(userId, attrs) {
      if (userId == null || userId === '') return; // not identified: mailslot stays as it is
      userId = String(userId);
      if (userId === current && !attrs) return;
      current = userId;
      if (typeof o.userHash !== 'function') { sdk().identify(userId, attrs, proof(userId)); return; }
      Promise.resolve().then(() => o.userHash(userId)).then((hash) => {
        if (current === userId) sdk().identify(userId, attrs, Object.assign(proof(userId), { userHash: hash }));
      }, (e) => warn('userHash failed: ' + String((e && e.message) || e)));
    }

    function forgets() {
      current = null;
      sdk().reset();
    }

    function userIdOf(ctx) { return ctx && ctx.event ? ctx.event.userId : null; }

    if (!o.siteId && !window.mailslot) {
      warn('mailslotPlugin() needs {siteId}; in-app messages are off');
      const off = (ctx) => ctx;
      return { name: NAME, type: 'destination', version: VERSION, isLoaded: () => true, load: () => Promise.resolve(),
        identify: off, track: off, page: off, alias: off, group: off, screen: off };
    }

    // Each event once, should the plugin be registered twice (see the end of this function).
    const seen = [];
    function fresh(ctx) {
      const id = ctx && ctx.event && ctx.event.messageId;
      if (!id) return true;
      if (seen.includes(id)) return false;
      seen.push(id);
      if (seen.length > 100) seen.shift();
      return true;
    }

    const plugin = {
      name: NAME,
      type: 'destination',
      version: VERSION,
      isLoaded: () => true,
      load(ctx, instance) {
        if (analytics) return Promise.resolve(); // registered twice: the first load did it all
        const endpoint = String(o.endpoint == null ? origin : o.endpoint).replace(/\/+$/, '');
        ensureSdk(o.siteId, endpoint);
        analytics = instance || {};
        if (typeof analytics.on === 'function') analytics.on('reset', forgets);
        // A person identified on an earlier page: analytics.js remembers them, so does mailslot.
        const user = analytics && typeof analytics.user === 'function' ? analytics.user() : null;
        if (user && typeof user.id === 'function') follow(user.id());
        return Promise.resolve();
      },
      unload() {
        if (analytics && typeof analytics.off === 'function') analytics.off('reset', forgets);
        analytics = null;
        return Promise.resolve();
      },
      identify(ctx) {
        if (fresh(ctx)) follow(userIdOf(ctx), attributes(ctx.event.traits));
        return ctx;
      },
      track(ctx) {
        if (!fresh(ctx)) return ctx;
        follow(userIdOf(ctx));
        const name = ctx.event.event;
        if (!Array.isArray(o.events) || o.events.includes(name)) sdk().track(name, ctx.event.properties || {});
        return ctx;
      },
      page(ctx) {
        if (!fresh(ctx)) return ctx;
        follow(userIdOf(ctx));
        const m = sdk();
        if (typeof m.page === 'function') m.page();
        return ctx;
      },
      alias: (ctx) => ctx,
      group: (ctx) => ctx,
      screen: (ctx) => ctx,
    };

    // The snippet's `analytics.load(writeKey, {plugins: [...]})`: the analytics.js bundle passes
    // those options on but registers only the npm form's plugins (AnalyticsBrowser.load({writeKey,
    // plugins})). Found there, the plugin registers itself through the snippet's queue.
    setTimeout(() => {
      const a = window.analytics;
      const pending = a && a._loadOptions && a._loadOptions.plugins;
      if (!analytics && Array.isArray(pending) && pending.includes(plugin) && typeof a.register === 'function') {
        a.register(plugin);
      }
    }, 0);
    return plugin;
  }

  mailslotPlugin.version = VERSION;
  window.mailslotPlugin = mailslotPlugin;
})(window, document);
