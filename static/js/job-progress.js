/* A training job's page: polls its status and draws the loss curve until the job ends. */
(function () {
  const root = document.getElementById("job");
  const url = root.dataset.statusUrl;
  const svg = document.getElementById("loss-curve");
  function line(points, color) {
    return `<polyline fill="none" stroke="${color}" stroke-width="2" points="${points}"/>`;
  }
  function draw(metrics) {
    const train = metrics.filter(m => m.loss !== null && m.loss !== undefined);
    const evals = metrics.filter(m => m.eval_loss !== null && m.eval_loss !== undefined);
    const all = train.map(m => m.loss).concat(evals.map(m => m.eval_loss));
    if (!all.length) { svg.innerHTML = '<text x="20" y="110" fill="#888">The curve appears with the first logged step.</text>'; return; }
    const steps = metrics.map(m => m.step);
    const x0 = Math.min(...steps), x1 = Math.max(...steps, x0 + 1);
    const y0 = Math.min(...all), y1 = Math.max(...all, y0 + 1e-6);
    const X = s => 40 + (s - x0) / (x1 - x0) * 540, Y = v => 200 - (v - y0) / (y1 - y0) * 180;
    const pts = arr => arr.map(p => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" ");
    svg.innerHTML =
      `<text x="4" y="20" font-size="11" fill="#888">${y1.toFixed(2)}</text><text x="4" y="200" font-size="11" fill="#888">${y0.toFixed(2)}</text>` +
      `<text x="540" y="215" font-size="11" fill="#888">step ${x1}</text>` +
      line(pts(train.map(m => [m.step, m.loss])), "#2563eb") + line(pts(evals.map(m => [m.step, m.eval_loss])), "#dc2626") +
      train.map(m => `<circle class="train-point" cx="${X(m.step).toFixed(1)}" cy="${Y(m.loss).toFixed(1)}" r="2.5" fill="#2563eb"/>`).join("");
  }
  function fmt(v, d) { return v === null || v === undefined ? "-" : Number(v).toFixed(d); }
  async function poll() {
    let data;
    try { data = await (await fetch(url, {headers: {"Accept": "application/json"}})).json(); } catch (e) { setTimeout(poll, 3000); return; }
    const status = document.getElementById("job-status");
    status.textContent = data.status_display; status.className = "badge badge-" + data.status;
    document.getElementById("job-step").textContent = `${data.step}/${data.total_steps || "?"} steps`;
    document.getElementById("job-epoch").textContent = fmt(data.epoch, 2);
    document.getElementById("job-eta").textContent = data.eta_s ? `ETA ${Math.round(data.eta_s)} s` : "";
    document.getElementById("job-progress").value = data.progress_percent;
    document.getElementById("job-progress-label").textContent = data.progress_percent + "%";
    document.getElementById("job-message").textContent = data.message;
    document.getElementById("job-log").textContent = data.log_tail;
    document.getElementById("final-loss").textContent = fmt(data.final_train_loss, 4);
    document.getElementById("eval-loss").textContent = fmt(data.eval_loss, 4);
    document.getElementById("tokens-per-s").textContent = fmt(data.tokens_per_s, 1);
    const cancel = document.getElementById("cancel-button"), resume = document.getElementById("resume-button");
    if (cancel) cancel.disabled = data.finished;
    if (resume) resume.disabled = !["cancelled", "failed", "errored"].includes(data.status);
    draw(data.metrics);
    if (!data.finished) setTimeout(poll, 1500);
  }
  poll();
})();
