/*
 * GridAtlas DOM helpers for the pages' scripts, which build their panels from the server's data
 * as text, never as HTML:
 *
 *   var el = GridAtlasDom.el, clear = GridAtlasDom.clear;
 *   el("li", {className: "x", onclick: fn, dataset: {kind: "a"}, "aria-label": "…"}, ["text", childNode])
 *
 * Text children become text nodes; null, undefined and false children are left out.
 */
(function () {
  "use strict";

  function el(tag, props, children) {
    var node = document.createElement(tag);
    Object.keys(props || {}).forEach(function (key) {
      if (key === "dataset") { Object.assign(node.dataset, props[key]); }
      else if (key.indexOf("aria-") === 0 || key === "role") { node.setAttribute(key, props[key]); }
      else { node[key] = props[key]; }
    });
    (children || []).forEach(function (child) {
      if (child === null || child === undefined || child === false) { return; }
      node.appendChild(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
    });
    return node;
  }

  /* Remove every child of node; node itself is returned. */
  function clear(node) { while (node.firstChild) { node.removeChild(node.firstChild); } return node; }

  window.GridAtlasDom = {el: el, clear: clear};
})();
