/*
 * Live job progress for the portal's job widget (templates/portal/_job_progress.html).
 *
 * Every element marked [data-job-progress] polls its job's API URL (session cookie; a GET needs
 * no CSRF token) every POLL_MS, updates the bar, percentage, status, message, result and error,
 * and stops once the job reaches a final status. Network hiccups back off and retry; a 4xx
 * answer (signed out; a 404 for a job gone, or of a domain this user may not see) stops polling
 * with a note. Widgets added to the page later can be started with
 * `window.tesseraJobProgress.attach(element)`.
 */
(function () {
  "use strict";

  const POLL_MS = 700;
  const MAX_BACKOFF_MS = 10000;
  const FINAL = new Set(["succeeded", "failed", "cancelled"]);
  const LABELS = {
    queued: "Queued",
    running: "Running",
    succeeded: "Succeeded",
    failed: "Failed",
    cancelled: "Cancelled",
  };

  // "2026-01-31T12:00:00.123456Z" → "2026-01-31 12:00:00 UTC" (the server renders the same).
  function formatTime(iso) {
    if (!iso) {
      return "—";
    }
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? iso : date.toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }

  function attach(widget) {
    if (widget.dataset.jobProgressAttached) {
      return;
    }
    widget.dataset.jobProgressAttached = "true";
    const url = widget.dataset.jobUrl;
    const field = (name) => widget.querySelector('[data-job-field="' + name + '"]');
    // A job already finished when the page was rendered is fetched once (for its result) and
    // must not trigger a reload, or a reload_on_finish page would reload forever.
    const finishedAtRender = FINAL.has(widget.dataset.jobStatus);
    let failures = 0;

    function render(job) {
      const percent = Math.round(Math.min(Math.max(Number(job.progress) || 0, 0), 1) * 100);
      const bar = field("bar");
      bar.setAttribute("aria-valuenow", String(percent));
      bar.firstElementChild.style.width = percent + "%";
      field("percent").textContent = percent + "%";

      const status = field("status");
      status.textContent = LABELS[job.status] || job.status;
      status.className = "status-badge status-badge--" + job.status;
      widget.dataset.jobStatus = job.status;

      field("message").textContent = job.message || "";
      field("started_at").textContent = formatTime(job.started_at);
      field("finished_at").textContent = formatTime(job.finished_at);
      field("attempts").textContent = String(job.attempts);
      field("connection").hidden = true;

      const hasResult = job.status === "succeeded" && job.result !== null && job.result !== undefined;
      field("result-block").hidden = !hasResult;
      field("result").textContent = hasResult ? JSON.stringify(job.result, null, 2) : "";
      field("error-block").hidden = !job.error;
      field("error").textContent = job.error || "";
    }

    function finish(job) {
      document
        .querySelectorAll('[data-job-hide-when-finished="' + widget.dataset.jobId + '"]')
        .forEach((element) => { element.hidden = true; });
      widget.dispatchEvent(new CustomEvent("tessera:job-finished", { bubbles: true, detail: job }));
      if (widget.hasAttribute("data-reload-on-finish") && !finishedAtRender) {
        window.location.reload();
      }
    }

    function note(text) {
      const connection = field("connection");
      connection.textContent = text;
      connection.hidden = false;
    }

    async function poll() {
      let response;
      try {
        response = await fetch(url, {
          credentials: "same-origin",
          cache: "no-store",
          headers: { Accept: "application/json" },
        });
      } catch (error) {
        failures += 1;
        const delay = Math.min(POLL_MS * 2 ** failures, MAX_BACKOFF_MS);
        note("Connection lost; retrying in " + Math.round(delay / 1000) + " s…");
        window.setTimeout(poll, delay);
        return;
      }
      if (response.status >= 400 && response.status < 500) {
        note(response.status === 401 || response.status === 403
          ? "Your session has ended; sign in again to follow this job."
          : "This job can no longer be read (HTTP " + response.status + ").");
        return;
      }
      if (!response.ok) {
        failures += 1;
        note("The server answered HTTP " + response.status + "; retrying…");
        window.setTimeout(poll, Math.min(POLL_MS * 2 ** failures, MAX_BACKOFF_MS));
        return;
      }
      let job;
      try {
        job = await response.json();
      } catch (error) {
        note("The server sent an unreadable answer; retrying…");
        window.setTimeout(poll, MAX_BACKOFF_MS);
        return;
      }
      failures = 0;
      render(job);
      if (FINAL.has(job.status)) {
        finish(job);
      } else {
        window.setTimeout(poll, POLL_MS);
      }
    }

    poll();
  }

  function attachAll(root) {
    (root || document).querySelectorAll("[data-job-progress]").forEach(attach);
  }

  window.tesseraJobProgress = { attach: attach, attachAll: attachAll };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", () => attachAll(document));
  } else {
    attachAll(document);
  }
})();
