/* A document page opened from a citation: scrolls the cited passage into view. */
(function () {
  var el = document.querySelector(".chunk.highlighted");
  if (el) { el.scrollIntoView({block: "center"}); }
})();
