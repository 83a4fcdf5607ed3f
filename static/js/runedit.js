// A run's name and tags, shown and edited in place (PATCH /api/runs/{id}): `runEditor(run, opts)`
// is the name, the tags as chips and an edit button; editing shows a name field and a tags
// field (commas between tags), Enter or Save sends them, Escape or Cancel puts the text back.
// An empty name field sends null (no name); the server checks every value and its 422 sentence
// is shown beside the fields. What this is not: the run list or the run page (their callers).

import { api, ApiError, el } from "./api.js";

/** The tags as chips; with `onPick`, each is a button that picks it (the dashboard's tag filter). */
export function tagChips(tags, onPick) {
  return tags.map((t) =>
    onPick
      ? el("button", { type: "button", class: "chip", title: `only runs tagged ${t}`, onclick: () => onPick(t) }, t)
      : el("span", { class: "chip" }, t),
  );
}

const parseTags = (text) => text.split(",").map((t) => t.trim()).filter(Boolean);

/**
 * opts: `onSaved(run)` after a save (the run as the server answered), `onEditing(bool)` when
 * editing starts and ends, `onPickTag(tag)` to make the chips buttons, `showName` (false: the
 * caller shows the name itself; the editor still edits it).
 */
export function runEditor(run, { onSaved, onEditing, onPickTag, showName = true } = {}) {
  const box = el("span", { class: "run-editor", "data-editor": run.id });
  const show = () => {
    const name = showName ? el("span", { class: run.name ? "run-name" : "run-name unnamed", text: run.name || "no name" }) : null;
    const edit = el("button", { type: "button", class: "edit", title: "rename or tag this run", "aria-label": `rename ${run.id}`, onclick: open }, "✎");
    box.replaceChildren(...[name, ...tagChips(run.tags, onPickTag), edit].filter(Boolean));
  };
  const close = () => {
    show();
    onEditing?.(false);
  };
  async function save(nameInput, tagsInput, error) {
    try {
      run = await api(`/api/runs/${run.id}`, { method: "PATCH", body: { name: nameInput.value.trim() || null, tags: parseTags(tagsInput.value) } });
    } catch (err) {
      error.hidden = false;
      error.textContent = err instanceof ApiError ? err.message : String(err);
      return;
    }
    close();
    onSaved?.(run);
  }
  function open() {
    onEditing?.(true);
    const nameInput = el("input", { type: "text", name: "run-name", value: run.name ?? "", placeholder: "name", "aria-label": `name of ${run.id}` });
    const tagsInput = el("input", { type: "text", name: "run-tags", value: run.tags.join(", "), placeholder: "tags, with commas", "aria-label": `tags of ${run.id}` });
    const error = el("span", { class: "error", role: "alert", hidden: true });
    const keys = (ev) => {
      if (ev.key === "Enter") save(nameInput, tagsInput, error);
      if (ev.key === "Escape") close();
    };
    nameInput.addEventListener("keydown", keys);
    tagsInput.addEventListener("keydown", keys);
    box.replaceChildren(
      el("span", { class: "editing" }, nameInput, tagsInput,
        el("button", { type: "button", class: "primary", onclick: () => save(nameInput, tagsInput, error) }, "Save"),
        el("button", { type: "button", onclick: close }, "Cancel")),
      error,
    );
    nameInput.focus();
  }
  show();
  return box;
}
