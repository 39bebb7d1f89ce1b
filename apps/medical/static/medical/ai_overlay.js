/*
 * The AI saliency overlay in the light viewer (templates/medical/viewer.html): the PNG of where
 * the model looked, laid exactly over the rendered slice it concerns, shown while the toggle is on.
 *
 * <script id="viewer-ai"> lists the overlays of this series: the frame index (in viewer.js's
 * order), the PNG's URL (a portal view that logs the PHI access). viewer.js writes the shown
 * frame's index on the stage (`data-index`); this script follows it, and "Go to the slice" moves
 * the slider, which viewer.js listens to.
 */
(function () {
  "use strict";

  function start() {
    const source = document.getElementById("viewer-ai");
    const overlay = document.querySelector("[data-ai-overlay]");
    if (!source || !overlay) {
      return;
    }
    const overlays = JSON.parse(source.textContent);
    const stage = document.querySelector("[data-viewer-stage]");
    const image = document.querySelector("[data-viewer-image]");
    const slider = document.querySelector("[data-viewer-slider]");
    const toggle = document.querySelector("[data-ai-overlay-toggle]");
    const jump = document.querySelector("[data-ai-overlay-jump]");
    if (!overlays.length || !stage || !image) {
      return;
    }
    const wanted = new URLSearchParams(window.location.search).get("finding");
    const chosen = overlays.find((item) => String(item.finding) === wanted) || overlays[0];

    function place() {
      const current = Number(stage.dataset.index);
      const item = overlays.find((candidate) => candidate.index === current);
      const show = toggle.checked && item !== undefined && image.complete && image.naturalWidth > 0;
      if (!show) {
        overlay.hidden = true;
        return;
      }
      if (overlay.dataset.url !== item.url) {
        overlay.dataset.url = item.url;
        overlay.src = item.url;
      }
      // the same box as the rendered slice (the stage centres it), so the heat sits on the anatomy
      overlay.style.left = image.offsetLeft + "px";
      overlay.style.top = image.offsetTop + "px";
      overlay.style.width = image.offsetWidth + "px";
      overlay.style.height = image.offsetHeight + "px";
      overlay.hidden = false;
    }

    function goToFinding() {
      slider.value = String(chosen.index + 1);
      slider.dispatchEvent(new Event("input"));
    }

    toggle.addEventListener("change", () => {
      if (toggle.checked && Number(stage.dataset.index) !== chosen.index) {
        goToFinding();
      }
      place();
    });
    jump.addEventListener("click", goToFinding);
    image.addEventListener("load", place);
    window.addEventListener("resize", place);
    new MutationObserver(place).observe(stage, { attributes: true, attributeFilter: ["data-index"] });
    if (wanted !== null) {
      goToFinding();
    }
    place();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
