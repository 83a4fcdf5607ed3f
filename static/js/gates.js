// The run page's gate views: one section per gate of the cell (catalog order), and the LSTM's
// cell state c, each a stateFigure chart with the gate's caption. Not the drawing (views.js).

import { Chart } from "./plots.js";
import { stateFigure } from "./views.js";

const NO_GATES =
  "This cell has no gates: its only path through time is W_hh, multiplied in at every step, which is why its gradient vanishes or explodes.";

/** Build the sections in `box` for `cell` (a catalog cell); the charts by gate name ({} for none).
 * `anchors`: each title links to the page with just that view (?view=gate-i); off where there is
 * no such page (the one-file report, the notebook widget: a link would leave the file or the notebook). */
export function buildGates(box, cell, captions, onClick, { anchors = true } = {}) {
  const names = cell.name === "lstm" ? [...cell.gates, "c"] : cell.gates;
  if (!names.length) {
    box.append(Object.assign(document.createElement("p"), { className: "caption view", textContent: NO_GATES }));
    return {};
  }
  const charts = {};
  for (const g of names) {
    const section = document.createElement("section");
    section.className = "view";
    section.id = `view-gate-${g}`;
    section.dataset.view = `gate-${g}`;
    const title = g === "c" ? "Cell state c" : `Gate ${g}`;
    const anchor = anchors ? ` <a class="anchor" href="?view=gate-${g}" data-view-link="gate-${g}">#</a>` : "";
    section.innerHTML = `<h3>${title}${anchor}</h3>
      <div class="chart" id="chart-gate-${g}"></div><div class="legend" id="legend-gate-${g}"></div>
      <p class="caption"></p>`;
    section.querySelector(".caption").textContent = captions[g] ?? "";
    box.append(section);
    const legend = section.querySelector(".legend");
    charts[g] = new Chart(section.querySelector(".chart"), stateFigure, { onClick, name: `gate-${g}`, legend });
  }
  return charts;
}
