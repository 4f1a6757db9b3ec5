// In-App settings: Connect your app and the test message's state update live.
(function () {
  'use strict';
  const status = document.getElementById('setup-status');
  const detail = document.getElementById('setup-detail');
  function checkSetup() {
    window.consoleFetch('/console/api/setup').then(function (r) {
      if (!r.ok || r.data.status !== 'complete') return setTimeout(checkSetup, 2000);
      status.textContent = 'Complete';
      status.className = 'pill ok';
      status.setAttribute('data-status', 'complete');
      detail.textContent = 'First message displayed on ' + r.data.platform + ' at ' +
        r.data.first_shown_at.replace('T', ' ').replace(/\.\d+/, '').replace('Z', ' UTC') + '.';
    }, function () { setTimeout(checkSetup, 5000); });
  }
  if (status && status.getAttribute('data-status') !== 'complete') checkSetup();

  const result = document.getElementById('test-result');
  const state = document.getElementById('test-state');
  const FINAL = ['dismissed', 'expired', 'recalled'];
  function follow() {
    window.consoleFetch('/console/api/messages/' + result.getAttribute('data-message-id')).then(function (r) {
      if (r.ok) {
        const events = (r.data.events || []).map(function (e) { return e.type + (e.action ? ' (' + e.action + ')' : ''); });
        state.textContent = r.data.state + (events.length ? ' · events: ' + events.join(' → ') : '');
        if (FINAL.indexOf(r.data.state) >= 0) return;
      }
      setTimeout(follow, 1500);
    }, function () { setTimeout(follow, 5000); });
  }
  if (result) follow();
})();
