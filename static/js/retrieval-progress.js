/* A retrieval job's or a re-embed's page: polls its status until it ends. */
(function () {
  const root = document.getElementById("job");
  const url = root.dataset.statusUrl;
  async function poll() {
    let data;
    try { data = await (await fetch(url, {headers: {"Accept": "application/json"}})).json(); } catch (e) { setTimeout(poll, 3000); return; }
    const status = document.getElementById("job-status");
    status.textContent = data.status_display; status.className = "badge badge-" + data.status;
    document.getElementById("job-label").textContent = data.label;
    document.getElementById("job-progress").value = data.progress_percent;
    document.getElementById("job-progress-label").textContent = data.progress_percent + "%";
    document.getElementById("job-message").textContent = data.message;
    const cancel = document.getElementById("cancel-button");
    if (cancel) cancel.disabled = data.finished;
    if (data.finished) { if (root.dataset.reloadWhenDone && !root.dataset.wasFinished) window.location.reload(); return; }
    setTimeout(poll, 1500);
  }
  poll();
})();
