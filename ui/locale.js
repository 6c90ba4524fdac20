// Loaded before the chart library: a browser whose locale is "C" or "POSIX"
// (WebKitGTK under LANG=C.UTF-8 says navigator.language = "C") makes
// `new Intl.NumberFormat(navigator.language)` throw, which would stop uPlot
// from loading at all. Such a locale is read as "en-US"; a valid one is left
// alone.
"use strict";
(() => {
  const valid = (tag) => {
    try { return Intl.getCanonicalLocales(tag).length > 0; } catch { return false; }
  };
  if (valid(navigator.language)) return;
  const languages = (navigator.languages || []).filter(valid);
  const language = languages[0] || "en-US";
  for (const [name, value] of [["language", language], ["languages", Object.freeze(languages.length ? languages : [language])]]) {
    try {
      Object.defineProperty(Navigator.prototype, name, { get: () => value, configurable: true });
    } catch (e) {
      console.warn(`cannot correct navigator.${name}`, e);
    }
  }
})();
