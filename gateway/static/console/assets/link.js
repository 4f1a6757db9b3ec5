// The one-time token travels in the fragment (never sent to a server or a log) and is POSTed once.
(function () {
  'use strict';
  const token = decodeURIComponent(location.hash.slice(1));
  history.replaceState(null, '', location.pathname);
  document.getElementById('link-token').value = token;
  if (token) document.getElementById('link-form').submit();
})();
