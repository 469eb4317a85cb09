/*
 * GridAtlas "is my power out?" (templates/_outage_status.html), on /status and on the public
 * outage map: looks up an address or an account number (GET /api/status), shows the outage with
 * its cause, ETR, crew status and reference, who answers locally, and, when we know of no outage
 * there, a report form that files a call (POST /api/calls) and shows its reference; and a form to
 * follow the account (or, looked up by address, its grid cell) by text message or e-mail
 * (POST /api/subscriptions, then the code sent to that address to .../confirm).
 *
 * OutageStatus.start(config, onFound) wires the form; onFound(answer) is told of every answer
 * (the map flies to answer.near). OutageStatus.state counts {lookups, reports} (tests wait on them).
 * Everything the server sends is put on the page as text, never as HTML.
 */
(function () {
  "use strict";

  var _ = GridAtlasI18n._, LOCALE = GridAtlasI18n.locale;
  var el = GridAtlasDom.el, clear = GridAtlasDom.clear;
  var state = {lookups: 0, reports: 0, subscriptions: 0, answer: null};
  var config, onFound, lookedUpAccount = null, following = null, pending = null;

  function $(id) { return document.getElementById(id); }

  /* fetch JSON; a non-2xx answer rejects with {status, detail} (problem+json's detail). */
  function api(url, options) {
    return fetch(url, Object.assign({headers: {"Accept": "application/json"}}, options || {}))
      .then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          if (!response.ok) { throw {status: response.status, detail: body.detail || response.statusText}; }
          return body;
        });
      }, function () { throw {status: 0, detail: _("The server cannot be reached; check your connection.")}; });
  }

  function when(iso) {
    if (!iso) { return null; }
    return new Intl.DateTimeFormat(LOCALE, {weekday: "short", hour: "2-digit", minute: "2-digit", day: "numeric",
                                            month: "short"}).format(new Date(iso));
  }

  var HEADLINES = {
    out: function () { return _("Your power is out"); },
    planned: function () { return _("Planned work will interrupt your power"); },
    investigating: function () { return _("We are looking into reports of an outage near you"); },
    on: function () { return _("We know of no outage here"); },
  };
  var CAUSES = {
    unknown: function () { return _("cause not known yet"); }, weather: function () { return _("weather"); },
    equipment: function () { return _("equipment failure"); }, vegetation: function () { return _("trees or plants"); },
    animal: function () { return _("an animal"); }, third_party: function () { return _("damage by others"); },
    overload: function () { return _("overload"); }, planned: function () { return _("planned work"); },
  };
  var CREW = {
    none: function () { return _("no crew yet"); }, assigned: function () { return _("a crew is assigned"); },
    en_route: function () { return _("a crew is on its way"); }, on_site: function () { return _("a crew is on site"); },
    available: function () { return _("no crew yet"); }, off_duty: function () { return _("no crew yet"); },
  };

  function causeText(cause) { return (CAUSES[cause] || CAUSES.unknown)(); }
  function crewText(status) { return (CREW[status || "none"] || CREW.none)(); }

  function etrText(outage) {
    if (!outage.etr) { return _("not estimated yet"); }
    var time = when(outage.etr);
    return outage.etr_source === "dispatcher" ? _("%(time)s (set by our dispatcher)", {time: time})
      : _("%(time)s (estimated from similar outages)", {time: time});
  }

  function row(label, value) { return [el("dt", {}, [label]), el("dd", {}, [value])]; }

  function outageDetails(answer) {
    var outage = answer.outage, rows = [];
    if (!outage) { return null; }
    rows = rows.concat(row(_("Cause"), causeText(outage.cause)));
    if (outage.planned_start) {
      rows = rows.concat(row(_("Planned"), _("%(start)s to %(end)s", {start: when(outage.planned_start), end: when(outage.planned_end)})));
    }
    rows = rows.concat(row(_("Power back"), etrText(outage)), row(_("Crew"), crewText(outage.crew_status)),
      row(_("Since"), when(outage.started_at)), row(_("Last update"), when(outage.updated_at)),
      row(_("Reference"), outage.reference));
    if (answer.service_points > 1) {
      rows = rows.concat(row(_("At this address"), _("%(out)s of %(all)s connections affected",
                                                     {out: answer.out, all: answer.service_points})));
    }
    return el("dl", {className: "os-details-list"}, rows);
  }

  function contactBlock(answer) {
    if (!answer.cell) { return null; }
    var contact = answer.contact;
    return el("div", {className: "os-contact"}, [
      el("h3", {}, [_("Who answers for your area")]),
      el("p", {}, [_("Grid cell %(name)s", {name: answer.cell.name})]),
      contact ? el("p", {}, [contact.name, " · ", el("a", {href: "tel:" + contact.phone.replace(/[^0-9+]/g, "")}, [contact.phone])]) : null,
    ]);
  }

  function showAnswer(answer) {
    var box = clear($("os-answer"));
    box.hidden = false;
    box.dataset.status = answer.status;
    box.appendChild(el("p", {className: "os-headline os-" + answer.status}, [HEADLINES[answer.status]()]));
    if (answer.address) { box.appendChild(el("p", {className: "os-muted"}, [answer.address])); }
    box.appendChild(outageDetails(answer) || el("p", {}, [_("If your power is off, please report it below.")]));
    var contact = contactBlock(answer);
    if (contact) { box.appendChild(contact); }
    box.appendChild(el("p", {className: "os-muted"}, [_("Checked at %(time)s", {time: when(answer.at)})]));
    // We do not know of it yet (or only from reports): the customer can tell us.
    $("os-report").hidden = !(answer.status === "on" || answer.status === "investigating");
    $("os-report-account").value = lookedUpAccount || "";
    showFollow(answer);
  }

  /* What the customer can follow: the account looked up, else the grid cell of the address. */
  function showFollow(answer) {
    following = lookedUpAccount ? {account: lookedUpAccount} : (answer.cell ? {cell: answer.cell.code} : null);
    $("os-follow").hidden = !following;
    if (!following) { return; }
    $("os-follow-what").textContent = following.account
      ? _("We tell you when we confirm an outage on this account, when power should be back, when a crew is on site, how the repair goes every two hours, and when power is back.")
      : _("We tell you about outages in grid cell %(name)s: when we confirm one, when power should be back, how the repair goes, and when power is back.", {name: answer.cell.name});
    $("os-follow-form").hidden = false;
    $("os-confirm-form").hidden = true;
    $("os-follow-done").hidden = true;
    $("os-follow-error").textContent = "";
  }

  function channel() { return document.querySelector('#os-follow-form input[name="channel"]:checked').value; }

  function post(url, body) {
    return api(url, {method: "POST", headers: {"Content-Type": "application/json", "Accept": "application/json"},
                     body: JSON.stringify(body)});
  }

  function subscribe(event) {
    event.preventDefault();
    var address = $("os-follow-address").value.trim(), error = $("os-follow-error");
    error.textContent = "";
    if (!address) {
      error.textContent = channel() === "sms" ? _("Type your mobile number.") : _("Type your e-mail address.");
      return;
    }
    var body = Object.assign({channel: channel(), address: address, language: LOCALE.indexOf("zh") === 0 ? "zh" : "en"},
                             following);
    $("os-follow-submit").disabled = true;
    post(config.api.subscribe, body).then(function (made) {
      pending = made.reference;
      $("os-follow-form").hidden = true;
      $("os-confirm-form").hidden = false;
      $("os-confirm-sent").textContent = _("We sent a 6-digit code to %(address)s. Type it here to start the updates.",
                                           {address: made.address});
      $("os-confirm-code").focus();
    }, function (problem) { error.textContent = problem.detail; })
      .then(function () { $("os-follow-submit").disabled = false; });
  }

  function confirmCode(event) {
    event.preventDefault();
    var error = $("os-confirm-error");
    error.textContent = "";
    post(config.api.confirm.replace("__reference__", encodeURIComponent(pending)), {code: $("os-confirm-code").value.trim()})
      .then(function () {
        $("os-confirm-form").hidden = true;
        var done = $("os-follow-done");
        done.hidden = false;
        done.textContent = _("Done: the updates will come. Every message has a link to stop them.");
        state.subscriptions += 1;
      }, function (problem) { error.textContent = problem.detail; });
  }

  function showChoices(choices) {
    var list = clear($("os-choices"));
    list.hidden = false;
    message(_("Several addresses match; which one is yours?"));
    choices.forEach(function (address) {
      list.appendChild(el("li", {}, [el("button", {type: "button", className: "os-link", onclick: function () {
        $("os-q").value = address; lookup();
      }}, [address])]));
    });
  }

  function message(text, isError) {
    var node = $("os-message");
    node.textContent = text || "";
    node.classList.toggle("os-error", !!isError);
  }

  function by() { return document.querySelector('#os-form input[name="by"]:checked').value; }

  function lookup() {
    var value = $("os-q").value.trim(), kind = by();
    if (!value) { message(_("Type your address or account number."), true); return; }
    $("os-choices").hidden = true;
    $("os-answer").hidden = true;
    $("os-report").hidden = true;
    $("os-follow").hidden = true;
    message(_("Checking…"));
    var url = config.api.status + "?" + new URLSearchParams([[kind, value]]).toString();
    lookedUpAccount = kind === "account" ? value : null;
    api(url).then(function (answer) {
      state.answer = answer;
      message("");
      if (answer.status === null) { showChoices(answer.choices); } else { showAnswer(answer); }
      if (onFound) { onFound(answer); }
    }, function (error) { message(error.detail, true); })
      .then(function () { state.lookups += 1; });
  }

  function report(event) {
    event.preventDefault();
    var account = $("os-report-account").value.trim(), phone = $("os-report-phone").value.trim();
    var error = $("os-report-error");
    error.textContent = "";
    if (!account && !phone) { error.textContent = _("Give your account number or the phone number on the account."); return; }
    var body = {wire_down: $("os-report-wire").checked, partial_power: $("os-report-partial").checked,
                flickering: $("os-report-flicker").checked};
    if (account) { body.account = account; } else { body.phone = phone; }
    var note = $("os-report-note").value.trim();
    if (note) { body.note = note; }
    $("os-report-submit").disabled = true;
    api(config.api.calls, {method: "POST", headers: {"Content-Type": "application/json", "Accept": "application/json"},
                           body: JSON.stringify(body)})
      .then(function (receipt) {
        $("os-report-form").hidden = true;
        var box = clear($("os-receipt"));
        box.hidden = false;
        box.appendChild(el("p", {className: "os-headline"}, [_("Thank you: your report is in.")]));
        box.appendChild(el("p", {}, [_("Your reference is %(reference)s. Keep it to follow the repair.", {reference: receipt.reference})]));
      }, function (problem) { error.textContent = problem.detail; })
      .then(function () { $("os-report-submit").disabled = false; state.reports += 1; });
  }

  function start(pageConfig, found) {
    config = pageConfig;
    onFound = found;
    $("os-form").addEventListener("submit", function (event) { event.preventDefault(); lookup(); });
    Array.prototype.forEach.call(document.querySelectorAll('#os-form input[name="by"]'), function (radio) {
      radio.addEventListener("change", function () {
        var input = $("os-q");
        input.placeholder = input.dataset[by() === "account" ? "placeholderAccount" : "placeholderQ"];
      });
    });
    $("os-report-form").addEventListener("submit", report);
    $("os-follow-form").addEventListener("submit", subscribe);
    $("os-confirm-form").addEventListener("submit", confirmCode);
    Array.prototype.forEach.call(document.querySelectorAll('#os-follow-form input[name="channel"]'), function (radio) {
      radio.addEventListener("change", function () {
        var input = $("os-follow-address"), sms = channel() === "sms";
        input.placeholder = input.dataset[sms ? "placeholderSms" : "placeholderEmail"];
        input.type = sms ? "tel" : "email";
        input.autocomplete = sms ? "tel" : "email";
      });
    });
  }

  window.OutageStatus = {start: start, state: state, causeText: causeText, crewText: crewText, when: when, api: api};
})();
