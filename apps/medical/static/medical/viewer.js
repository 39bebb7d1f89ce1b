/*
 * The portal's light viewer (templates/medical/viewer.html): scrolls the frames of one series as
 * images the archive renders (WADO-RS /rendered, with the session cookie), with window presets
 * and free window/level (two inputs, or drag on the image).
 *
 * The page gives, in <script id="viewer-data">, the frames in viewing order (instances by
 * Instance Number, then each instance's frames) with their rendered URL, the presets and where
 * free window/level starts. One image request is in flight at a time (see `pump`).
 */
(function () {
  "use strict";

  const PRELOAD = 2;

  function start(root) {
    const data = JSON.parse(document.getElementById("viewer-data").textContent);
    const frames = data.frames;
    const stage = root.querySelector("[data-viewer-stage]");
    const image = root.querySelector("[data-viewer-image]");
    const counter = root.querySelector("[data-viewer-counter]");
    const windowLabel = root.querySelector("[data-viewer-window]");
    const status = root.querySelector("[data-viewer-status]");
    const slider = root.querySelector("[data-viewer-slider]");
    const form = root.querySelector("[data-viewer-wl]");
    const presetButtons = root.querySelectorAll("[data-viewer-preset]");
    const presets = {};
    data.presets.forEach((preset) => { presets[preset.name] = preset; });

    let index = 0;
    let voi = null; // null: the instance's own window; else {center, width}
    let lastWindow = { center: data.initial.center, width: data.initial.width };
    // One request at a time (the shown image first, then neighbours to preload): a viewer never
    // floods the archive, and while the user scrolls or drags faster than it renders, only the
    // latest wanted image is asked for next.
    let busy = false;
    let wanted = null;
    const preloaded = new Set();
    let preloadQueue = [];

    if (!frames.length) {
      counter.textContent = "No images in this series";
      return;
    }
    slider.max = String(frames.length);

    function urlFor(i) {
      const url = frames[i].url;
      return voi ? url + "?window=" + encodeURIComponent(round(voi.center) + "," + round(voi.width)) : url;
    }

    function round(value) {
      return Math.round(value * 10) / 10;
    }

    function pump() {
      if (busy) {
        return;
      }
      if (wanted !== null) {
        const next = wanted;
        wanted = null;
        image.dataset.requestedIndex = String(next.index);
        if (new URL(next.url, window.location.href).href === image.src && image.complete) {
          image.dataset.loadedIndex = String(next.index); // the same image again: no load event comes
        } else {
          busy = true;
          image.src = next.url;
          return;
        }
      }
      const url = preloadQueue.shift();
      if (url === undefined) {
        return;
      }
      if (preloaded.has(url)) {
        pump();
        return;
      }
      busy = true;
      preloaded.add(url);
      const extra = new Image();
      extra.onload = extra.onerror = () => {
        busy = false;
        pump();
      };
      extra.src = url;
    }

    image.addEventListener("load", () => {
      busy = false;
      status.hidden = true;
      image.dataset.loadedIndex = image.dataset.requestedIndex;
      pump();
    });
    image.addEventListener("error", () => {
      busy = false;
      status.textContent = "The archive could not render this image.";
      status.hidden = false;
      pump();
    });

    function preload() {
      preloadQueue = [];
      for (let step = 1; step <= PRELOAD; step += 1) {
        [index + step, index - step].forEach((i) => {
          if (i >= 0 && i < frames.length) {
            preloadQueue.push(urlFor(i));
          }
        });
      }
      if (preloaded.size > 256) {
        preloaded.clear(); // a window change makes every URL new: keep the set small
      }
    }

    function show() {
      const frame = frames[index];
      stage.dataset.index = String(index);
      wanted = { index: index, url: urlFor(index) };
      slider.value = String(index + 1);
      let text = "Slice " + (index + 1) + " / " + frames.length;
      if (frame.instance !== null) {
        text += " · instance " + frame.instance;
      }
      if (frame.frames > 1) {
        text += " · frame " + frame.frame + "/" + frame.frames;
      }
      counter.textContent = text;
      windowLabel.textContent = voi
        ? "Window: C " + round(voi.center) + " / W " + round(voi.width)
        : "Window: image default";
      preload();
      pump();
    }

    function go(to) {
      const next = Math.max(0, Math.min(frames.length - 1, to));
      if (next !== index) {
        index = next;
        show();
      }
    }

    function setWindow(next, presetName) {
      voi = next;
      if (next) {
        lastWindow = next;
        form.center.value = String(round(next.center));
        form.width.value = String(round(next.width));
      }
      presetButtons.forEach((button) => {
        button.setAttribute("aria-pressed", String(button.dataset.viewerPreset === (presetName ?? "-")));
      });
      show();
    }

    stage.addEventListener("wheel", (event) => {
      event.preventDefault();
      go(index + (event.deltaY > 0 ? 1 : -1));
    }, { passive: false });

    document.addEventListener("keydown", (event) => {
      if (event.target instanceof HTMLInputElement || event.target instanceof HTMLTextAreaElement) {
        return;
      }
      const moves = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1, PageDown: 10, PageUp: -10 };
      if (event.key in moves) {
        go(index + moves[event.key]);
      } else if (event.key === "Home") {
        go(0);
      } else if (event.key === "End") {
        go(frames.length - 1);
      } else {
        return;
      }
      event.preventDefault();
    });

    slider.addEventListener("input", () => go(Number(slider.value) - 1));
    root.querySelectorAll("[data-viewer-step]").forEach((button) => {
      button.addEventListener("click", () => go(index + Number(button.dataset.viewerStep)));
    });

    presetButtons.forEach((button) => {
      button.addEventListener("click", () => {
        const name = button.dataset.viewerPreset;
        setWindow(name ? { center: presets[name].center, width: presets[name].width } : null, name);
      });
    });

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const center = Number(form.center.value);
      const width = Number(form.width.value);
      if (Number.isFinite(center) && Number.isFinite(width) && width >= 1) {
        setWindow({ center: center, width: width }, null);
      }
    });

    // Drag: horizontal changes the width, vertical the center (as most viewers do).
    let drag = null;
    stage.addEventListener("pointerdown", (event) => {
      stage.focus();
      drag = { x: event.clientX, y: event.clientY, from: voi || lastWindow };
      stage.setPointerCapture(event.pointerId);
    });
    stage.addEventListener("pointermove", (event) => {
      if (!drag) {
        return;
      }
      const scale = Math.max(drag.from.width / 256, 1);
      const width = Math.max(1, drag.from.width + (event.clientX - drag.x) * scale);
      const center = drag.from.center - (event.clientY - drag.y) * scale;
      if (Math.abs(event.clientX - drag.x) + Math.abs(event.clientY - drag.y) > 2) {
        setWindow({ center: center, width: width }, null);
      }
    });
    ["pointerup", "pointercancel"].forEach((name) => stage.addEventListener(name, () => { drag = null; }));

    form.center.value = String(round(lastWindow.center));
    form.width.value = String(round(lastWindow.width));
    show();
  }

  document.querySelectorAll("[data-viewer]").forEach(start);
})();
