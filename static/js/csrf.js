/*
 * Every state-changing request a page makes with its session cookie carries the session's CSRF
 * token (the server refuses it otherwise): fetch() to our own origin with a method other than
 * GET/HEAD/OPTIONS gets the X-CSRF-Token header from <meta name="csrf-token">. One place for all
 * pages, loaded before their scripts (templates/base.html).
 */
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var token = meta && meta.getAttribute("content");
  var plainFetch = window.fetch;
  if (!token || !plainFetch) { return; }
  window.fetch = function (resource, init) {
    var options = init || {};
    var method = (options.method || (resource && resource.method) || "GET").toUpperCase();
    var url = new URL(typeof resource === "string" ? resource : resource.url, window.location.href);
    if (["GET", "HEAD", "OPTIONS"].indexOf(method) < 0 && url.origin === window.location.origin) {
      var headers = new Headers(options.headers || (resource && resource.headers) || {});
      headers.set("X-CSRF-Token", token);
      options = Object.assign({}, options, {headers: headers});
    }
    return plainFetch.call(window, resource, options);
  };
})();
