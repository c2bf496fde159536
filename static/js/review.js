/* The focused review page: editing in place and the keyboard shortcuts (a, r, e, j, k, s). */
(function () {
  "use strict";
  document.body.classList.add("review-js");
  var choices = document.getElementById("review-choices");
  Array.prototype.forEach.call(choices.querySelectorAll("select"), function (select) {
    select.addEventListener("change", function () { choices.submit(); });
  });
  var root = document.getElementById("review");
  if (!root) { return; }
  var editForm = document.getElementById("review-edit");
  var question = document.getElementById("review-edit-question");
  var answer = document.getElementById("review-edit-answer");
  var busy = false;

  function startEdit() {
    root.classList.add("editing");
    answer.focus();
    answer.setSelectionRange(answer.value.length, answer.value.length);
  }
  function stopEdit() {
    root.classList.remove("editing");
    question.value = question.defaultValue;
    answer.value = answer.defaultValue;
    if (document.activeElement) { document.activeElement.blur(); }
  }
  function press(id) {
    var button = document.getElementById(id);
    if (button && !busy) { button.click(); }
  }
  function go(id) {
    var link = document.getElementById(id);
    if (link && link.getAttribute("href") && !busy) {
      busy = true;
      window.location.assign(link.href);
    }
  }
  Array.prototype.forEach.call(document.querySelectorAll("#review form"), function (form) {
    form.addEventListener("submit", function () { busy = true; });
  });
  document.getElementById("review-edit-button").addEventListener("click", startEdit);
  document.getElementById("review-cancel").addEventListener("click", function (event) {
    event.preventDefault();
    stopEdit();
  });
  if (root.classList.contains("editing")) { startEdit(); }

  var keys = {
    a: function () { press("review-approve"); },
    r: function () { press("review-reject"); },
    e: startEdit,
    j: function () { go("review-next"); },
    k: function () { go("review-previous"); },
    s: function () { go("review-skip"); }
  };
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    var typing = target && target.closest &&
      target.closest("textarea, input, select, [contenteditable]");
    if (typing) {
      // While typing, letters are text: only Esc and Ctrl+Enter mean something.
      if (event.key === "Escape" && editForm.contains(target)) {
        event.preventDefault();
        stopEdit();
      } else if (event.key === "Enter" && (event.ctrlKey || event.metaKey) &&
                 editForm.contains(target)) {
        event.preventDefault();
        press("review-save");
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) { return; }
    if (event.key === "Escape" && root.classList.contains("editing")) { stopEdit(); return; }
    if (root.classList.contains("editing")) { return; }
    var handler = keys[event.key.length === 1 ? event.key.toLowerCase() : ""];
    if (handler) {
      event.preventDefault();
      handler();
    }
  });
})();
