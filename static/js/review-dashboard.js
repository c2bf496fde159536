/* The review dashboard: choosing a period or manual reloads the page. */
(function () {
  var form = document.getElementById("dash-choices");
  form.querySelector("select").addEventListener("change", function () { form.submit(); });
})();
