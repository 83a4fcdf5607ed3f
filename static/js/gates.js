// The run page's gate views: one section per gate of the cell (catalog order), then the states it
// carries besides h (LSTM: c; sLSTM: c, n, m), each a stateFigure chart with the catalog's title and
// caption (cells[].views). Not the drawing (views.js).

import { Chart } from "./plots.js";
import { stateFigure } from "./views.js";

const NO_GATES =
  "This cell has no gates: its only path through time is W_hh, multiplied in at every step, which is why its gradient vanishes or explodes.";

/** Each view's kind of a catalog cell, by name: what stateFigure's `gateKinds` reads. */
export function viewKinds(cell) {
  return Object.fromEntries(Object.entries(cell.views).map(([name, view]) => [name, view.kind]));
}

/** Build the sections in `box` for `cell` (a catalog cell); the charts by gate name ({} for none).
 * `anchors`: each title links to the page with just that view (?view=gate-i); off where there is
 * no such page (the one-file report, the notebook widget: a link would leave the file or the notebook). */
export function buildGates(box, cell, onClick, { anchors = true } = {}) {
  const names = [...cell.gates, ...cell.states];
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
    const title = cell.views[g].title;
    const anchor = anchors ? ` <a class="anchor" href="?view=gate-${g}" data-view-link="gate-${g}">#</a>` : "";
    section.innerHTML = `<h3>${title}${anchor}</h3>
      <div class="chart" id="chart-gate-${g}"></div><div class="legend" id="legend-gate-${g}"></div>
      <p class="caption"></p>`;
    section.querySelector(".caption").textContent = cell.views[g].caption;
    box.append(section);
    const legend = section.querySelector(".legend");
    charts[g] = new Chart(section.querySelector(".chart"), stateFigure, { onClick, name: `gate-${g}`, legend });
  }
  return charts;
}
