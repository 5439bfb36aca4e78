/* scenes2real view (built by evaluation/viewer/build.py). data/index.js holds the facets, one small integer per
   item and filter, so filtering and paging never load the items; the items of a page come from data/NNNN.js,
   loaded as <script> elements because fetch() of local files is blocked under file://. The state (filters,
   page, masks) lives in the URL hash, e.g. #split=test&task=area9&page=2, so a view can be linked. */
"use strict";

const S2RView = (() => {
  const ROLE_COLORS = { target: "#ff00ff", anchor: "#00e5ff", distractor: "#ffd400" };
  const MASK_ALPHA = 120;
  const LABELS = { color: "colour", result: "result" };
  let index = null;
  const chunks = new Map();    // chunk number -> Promise of its items
  const arrived = new Map();   // chunk number -> the resolve function of that Promise
  let ticket = 0;              // the latest render; an older one that finishes later draws nothing

  const $ = (id) => document.getElementById(id);

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);   // text, never HTML
    return node;
  }

  function state() {
    return new URLSearchParams(location.hash.slice(1));
  }

  function update(changes) {
    const s = state();
    for (const [key, value] of Object.entries(changes)) {
      if (value === "" || value === null || value === false) s.delete(key);
      else s.set(key, value === true ? "1" : value);
    }
    if (!("page" in changes)) s.delete("page");   // a new filter starts at its first page
    location.hash = s.toString();
  }

  function loadChunk(k) {
    if (!chunks.has(k)) {
      chunks.set(k, new Promise((resolve) => {
        arrived.set(k, resolve);
        const script = document.createElement("script");
        script.src = `data/${String(k).padStart(index.digits, "0")}.js`;
        script.onerror = () => resolve([]);
        document.head.appendChild(script);
      }));
    }
    return chunks.get(k);
  }

  // --- filters ---------------------------------------------------------------------------------------------

  function matching(s) {
    const tests = [];
    for (const [name, facet] of Object.entries(index.facets)) {
      if (s.has(name)) tests.push([facet.codes, facet.values.indexOf(s.get(name))]);   // -1: nothing matches
    }
    const result = index.facets.result;
    if (result && s.get("errors") === "1") {
      const correct = result.values.indexOf("correct");
      tests.push([result.codes, (code) => code !== correct]);
    }
    const hits = [];
    for (let i = 0; i < index.count; i++) {
      if (tests.every(([codes, want]) => (typeof want === "function" ? want(codes[i]) : codes[i] === want))) {
        hits.push(i);
      }
    }
    return hits;
  }

  function buildControls() {
    const form = $("filters");
    for (const [name, facet] of Object.entries(index.facets)) {
      if (facet.values.every((value) => value === "")) continue;   // nothing to choose (e.g. no sizes)
      const counts = new Array(facet.values.length).fill(0);
      for (const code of facet.codes) counts[code]++;
      const select = el("select");
      select.id = `f-${name}`;
      select.append(new Option(`all (${index.count})`, ""));
      facet.values.forEach((value, i) => select.append(new Option(`${value || "(none)"} (${counts[i]})`, value)));
      select.onchange = () => update({ [name]: select.value });
      const label = el("label", null, `${LABELS[name] || name} `);
      label.append(select);
      form.append(label);
    }
    const toggles = index.facets.result ? [["errors", "errors only"], ["masks", "masks"]] : [["masks", "masks"]];
    for (const [key, text] of toggles) {
      const box = el("input");
      box.type = "checkbox";
      box.id = `f-${key}`;
      box.onchange = () => update({ [key]: box.checked, ...(key === "masks" ? { page: state().get("page") } : {}) });
      const label = el("label");
      label.append(box, ` ${text}`);
      form.append(label);
    }
    $("prev").onclick = () => turn(-1);
    $("next").onclick = () => turn(1);
    document.addEventListener("keydown", (event) => {
      if (event.target.tagName === "SELECT" || event.target.tagName === "INPUT") return;
      if (event.key === "ArrowLeft") turn(-1);
      if (event.key === "ArrowRight") turn(1);
    });
  }

  function turn(step) {
    const status = $("status");
    const page = Number(status.dataset.page) + step;
    if (page >= 1 && page <= Number(status.dataset.pages)) update({ page: String(page) });
  }

  function syncControls(s) {
    for (const name of Object.keys(index.facets)) {
      const select = $(`f-${name}`);
      if (select) select.value = s.get(name) || "";
    }
    for (const key of ["errors", "masks"]) {
      const box = $(`f-${key}`);
      if (box) box.checked = s.get(key) === "1";
    }
  }

  // --- masks: COCO RLE (pycocotools' compressed string form, or plain run lengths) and polygons --------------

  function rleCounts(text) {
    // pycocotools rleFrString: 5 bits a character (offset 48), 0x20 = more characters follow, 0x10 on the
    // last one = negative; from the third count on, each is a difference to the count two before
    const counts = [];
    let p = 0;
    while (p < text.length) {
      let x = 0, k = 0, more = true;
      while (more) {
        const c = text.charCodeAt(p++) - 48;
        x |= (c & 0x1f) << (5 * k);
        more = (c & 0x20) !== 0;
        k++;
        if (!more && (c & 0x10)) x |= -1 << (5 * k);
      }
      if (counts.length > 2) x += counts[counts.length - 2];
      counts.push(x);
    }
    return counts;
  }

  function paintRuns(layer, counts, rgb) {
    // runs alternate background / object, column by column (Fortran order), from the top left pixel
    const { width: w, height: h, data } = layer;
    let p = 0, area = 0;
    counts.forEach((run, i) => {
      if (i % 2 === 1) {
        for (let j = p; j < p + run && j < w * h; j++) {
          const o = ((j % h) * w + Math.floor(j / h)) * 4;
          data[o] = rgb[0]; data[o + 1] = rgb[1]; data[o + 2] = rgb[2]; data[o + 3] = MASK_ALPHA;
        }
        area += run;
      }
      p += run;
    });
    return area;
  }

  function rgbOf(hex) {
    return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  }

  function draw(canvas, img, boxes, masks) {
    const w = img.naturalWidth, h = img.naturalHeight;
    canvas.width = w;
    canvas.height = h;
    const ctx = canvas.getContext("2d");
    let area = 0;
    if (masks) {
      const layer = ctx.createImageData(w, h);
      for (const [, , , , role, , mask] of boxes) {
        if (typeof mask === "string") area += paintRuns(layer, rleCounts(mask), rgbOf(ROLE_COLORS[role]));
        else if (Array.isArray(mask) && typeof mask[0] === "number") area += paintRuns(layer, mask, rgbOf(ROLE_COLORS[role]));
      }
      ctx.putImageData(layer, 0, 0);
      for (const [, , , , role, , mask] of boxes) {
        if (!Array.isArray(mask) || !Array.isArray(mask[0])) continue;
        ctx.fillStyle = ROLE_COLORS[role] + "78";
        ctx.beginPath();
        for (const polygon of mask) {
          ctx.moveTo(polygon[0], polygon[1]);
          for (let i = 2; i + 1 < polygon.length; i += 2) ctx.lineTo(polygon[i], polygon[i + 1]);
          ctx.closePath();
        }
        ctx.fill();
      }
    }
    ctx.lineWidth = Math.max(2, Math.round(Math.max(w, h) / 150));
    for (const [x, y, bw, bh, role] of boxes) {
      ctx.strokeStyle = ROLE_COLORS[role] || "#ffffff";
      ctx.strokeRect(x, y, bw, bh);
    }
    canvas.dataset.maskArea = String(area);
  }

  // --- cards -----------------------------------------------------------------------------------------------

  function picture(item, masks) {
    const pic = el("div", "pic");
    if (!item.img) {
      pic.append(el("p", "missing", "no image"));
      return pic;
    }
    const img = el("img");
    const canvas = el("canvas");
    img.alt = item.id;
    img.onload = () => draw(canvas, img, item.boxes, masks);
    img.onerror = () => pic.replaceChildren(el("p", "missing", `image not found: ${decodeURI(item.img)}`));
    pic.onmouseenter = () => img.complete && draw(canvas, img, item.boxes, true);
    pic.onmouseleave = () => img.complete && draw(canvas, img, item.boxes, masks);
    img.src = item.img;
    pic.append(img, canvas);
    return pic;
  }

  function card(item, masks) {
    const node = el("article", "item");
    node.dataset.id = item.id;
    if (item.result) node.classList.add(item.result);
    node.append(picture(item, masks));
    node.append(el("p", "meta", [item.id, item.split, item.task, item.source].filter(Boolean).join(" · ")));
    node.append(el("p", "question", item.question));
    if (item.options.length) {
      const list = el("ol", "options");
      for (const option of item.options) list.append(el("li", option === item.answer ? "answer" : null, option));
      node.append(list);
    }
    const truth = el("p", "truth", "answer: ");
    truth.append(el("b", null, item.answer));
    node.append(truth);
    if ("result" in item) {
      const model = el("div", "model");
      const raw = el("p", null, "model: ");
      raw.append(el("code", null, item.raw === null ? "(no answer)" : JSON.stringify(item.raw)));
      model.append(raw, el("p", null, `parsed: ${item.parsed === null ? "(unparseable)" : item.parsed}`));
      model.append(el("p", `verdict ${item.result}`, item.result + (item.error ? `: ${item.error}` : "")));
      node.append(model);
    }
    const objects = el("ul", "objects");
    for (const [, , , , role, label] of item.boxes) objects.append(el("li", `role-${role}`, `${role}: ${label}`));
    node.append(objects);
    return node;
  }

  async function render() {
    const mine = ++ticket;
    const s = state();
    syncControls(s);
    const hits = matching(s);
    const pages = Math.max(1, Math.ceil(hits.length / index.page));
    const page = Math.min(pages, Math.max(1, parseInt(s.get("page"), 10) || 1));
    const shown = hits.slice((page - 1) * index.page, page * index.page);
    const needed = [...new Set(shown.map((i) => Math.floor(i / index.chunk)))];
    const loaded = new Map(await Promise.all(needed.map(async (k) => [k, await loadChunk(k)])));
    if (mine !== ticket) return;
    const masks = s.get("masks") === "1";
    const cards = shown.map((i) => loaded.get(Math.floor(i / index.chunk))[i % index.chunk])
      .filter(Boolean).map((item) => card(item, masks));
    $("items").replaceChildren(...cards);
    const status = $("status");
    status.textContent = `${hits.length} of ${index.count} items · page ${page} of ${pages}`;
    Object.assign(status.dataset, { matches: hits.length, page, pages, shown: cards.length });
    $("prev").disabled = page <= 1;
    $("next").disabled = page >= pages;
    window.scrollTo(0, 0);
  }

  return {
    index(data) {
      index = data;
      document.title = `${data.title} · scenes2real view`;
      $("title").textContent = `${data.title} (${data.kind}, ${data.count} items)`;
      buildControls();
      window.addEventListener("hashchange", render);
      render();
    },
    chunk(k, items) {
      const resolve = arrived.get(k);
      if (resolve) resolve(items);
    },
  };
})();
