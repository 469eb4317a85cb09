/*
 * GridAtlas live feed: GridAtlasLive.follow(url, options) follows GET /api/live for a page.
 *
 * One request at a time: the next is asked ``every`` ms after the previous answer and the work it
 * started are done; after an error it waits longer each time (up to 5 s) and tries again. The
 * first answer only gives the cursor: ``onStart()`` loads everything after it, so that no change
 * falls in between. Later answers call ``onChange(kinds)`` (kinds: {outage: [codes], crew: [...],
 * call, switching, meter}), unless every row of the answer was seen before: rows come again while
 * a long transaction elsewhere holds the feed's horizon back, and a page reloads nothing twice.
 * ``onStatus(error or null)`` after each answer; ``onPoll()`` after each round. onStart and
 * onChange may return a Promise; the next request waits for it.
 */
(function () {
  "use strict";

  var MAX_BACKOFF_MS = 5000, REMEMBERED = 5000;

  function follow(url, options) {
    var cursor = null, seen = {}, order = [], failures = 0, every = options.every || 1000;
    var call = function (name, argument) { return options[name] ? options[name](argument) : null; };

    function remember(id) {
      if (seen[id]) { return false; }
      seen[id] = true;
      order.push(id);
      if (order.length > REMEMBERED) { delete seen[order.shift()]; }
      return true;
    }

    function ask() {
      var first = cursor === null, delay = every;
      return fetch(url + (first ? "" : (url.indexOf("?") < 0 ? "?" : "&") + "cursor=" + encodeURIComponent(cursor)),
                   {headers: {Accept: "application/json"}}).then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          if (!response.ok) { throw new Error(body.detail || body.title || response.statusText); }
          return body;
        });
      }).then(function (answer) {
        cursor = answer.cursor;
        failures = 0;
        call("onStatus", null);
        var ids = answer.ids || [], fresh = ids.filter(remember);
        if (first) { return call("onStart"); }
        if ((ids.length && !fresh.length) || !Object.keys(answer.kinds || {}).length) { return null; }
        return call("onChange", answer.kinds);
      }).catch(function (error) {
        failures += 1;
        delay = Math.min(MAX_BACKOFF_MS, every * Math.pow(2, failures));
        call("onStatus", error);
      }).then(function () {
        call("onPoll");
        setTimeout(ask, delay);
      });
    }

    ask();
  }

  window.GridAtlasLive = {follow: follow};
})();
