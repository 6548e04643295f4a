// MathJax settings for pymdownx.arithmatex (generic mode): it wraps $...$ in \( \) and $$...$$ in
// \[ \] inside elements of class "arithmatex", and MathJax typesets only those.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
};

// MathJax typesets the first page itself when it starts. mkdocs-material's instant navigation (off in
// mkdocs.yml, harmless if turned on) swaps later pages in without a reload: typeset each of those.
// Not the first one: clearing the cache after MathJax's own first pass drops the CSS of every glyph
// already on the page, and the equations go blank.
if (typeof document$ !== "undefined") {
  let first = true;
  document$.subscribe(() => {
    if (first) {
      first = false;
      return;
    }
    if (window.MathJax && MathJax.typesetPromise) {
      MathJax.startup.output.clearCache();
      MathJax.typesetClear();
      MathJax.texReset();
      MathJax.typesetPromise();
    }
  });
}
