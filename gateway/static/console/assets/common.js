// Shared by console pages: copy buttons, and a small JSON fetch that carries the CSRF token.
(function () {
  'use strict';
  document.addEventListener('click', function (e) {
    const button = e.target.closest('[data-copy]');
    if (!button) return;
    const source = document.querySelector(button.getAttribute('data-copy'));
    const text = source ? source.textContent : '';
    const done = function () { button.textContent = 'Copied'; setTimeout(function () { button.textContent = 'Copy'; }, 1500); };
    if (navigator.clipboard) navigator.clipboard.writeText(text).then(done, function () {});
  });
  const csrf = document.querySelector('input[name=csrf]');
  window.consoleFetch = function (url, body) {
    const init = { credentials: 'same-origin', headers: { 'X-CSRF-Token': csrf ? csrf.value : '' } };
    if (body !== undefined) {
      init.method = 'POST';
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return fetch(url, init).then(function (res) {
      return res.json().then(function (data) { return { ok: res.ok, data: data }; });
    });
  };
})();
