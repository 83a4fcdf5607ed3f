// The one-file report's entry (gatescope/report.py inlines it with every module it imports): reads
// the embedded run (#report-data) into an EmbeddedSource and mounts one run's views (runview.js)
// in #report. No request is made: everything is in the file. What this is not: the views
// themselves (runview.js) nor the live run page (run.js).

import { EmbeddedSource } from "./embedded.js";
import { mountRunView } from "./runview.js";

const root = document.getElementById("report");
try {
  const source = new EmbeddedSource(JSON.parse(document.getElementById("report-data").textContent));
  window.__gatescopeReport = mountRunView(root, source);
} catch (err) {
  root.textContent = `This report could not be drawn: ${err.message || err}`;
  root.classList.add("error");
}
