/* An evaluation run's page: polls its status until the run finishes, then reloads. */
(function () {
  const root = document.getElementById("run");
  if (root.dataset.finished === "true") return;
  async function poll() {
    let data;
    try { data = await (await fetch(root.dataset.statusUrl, {headers: {"Accept": "application/json"}})).json(); } catch (e) { setTimeout(poll, 3000); return; }
    if (data.finished) { window.location.reload(); return; }
    document.getElementById("run-status").textContent = data.status_display;
    document.getElementById("run-progress").value = data.progress_percent;
    document.getElementById("run-progress-label").textContent = `${data.done}/${data.total} answers`;
    document.getElementById("run-message").textContent = data.message;
    setTimeout(poll, 2000);
  }
  poll();
})();
