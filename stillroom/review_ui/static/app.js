// Keyboard-first review: one key press records a decision and swaps in the next item.
// Plain JS on top of the vendored htmx; no build step, no inline script (the CSP forbids it).
(function () {
  "use strict";
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";
  // Every htmx request carries the CSRF token; the server refuses state changes without it.
  document.body.addEventListener("htmx:configRequest", (e) => { e.detail.headers["X-CSRF-Token"] = csrf; });

  const $ = (sel) => document.querySelector(sel);

  // A failed request changes nothing on screen, so say so: the reviewer presses the key again.
  function showFailure(text) {
    const status = $("#status");
    if (status) { status.textContent = text; status.classList.add("error"); }
  }
  document.body.addEventListener("htmx:responseError", (e) => {
    if (e.detail.xhr.status !== 401) {
      showFailure("Not recorded: the server answered " + e.detail.xhr.status + " " + e.detail.xhr.responseText.slice(0, 200));
    }
  });
  document.body.addEventListener("htmx:sendError", () => showFailure("Not recorded: the server did not answer — press the key again."));
  let mode = null;        // null, "reject" or "edit"
  let busy = false;       // one request at a time: a key pressed mid-flight must not hit the next item
  let confirmSave = false;

  function article() { return $("#item article.item"); }

  function setBusy(b) { busy = b; document.body.dataset.busy = b ? "1" : "0"; }

  function post(url, values) {
    if (busy) return;
    setBusy(true);
    mode = null;
    htmx.ajax("POST", url, { target: "#item", swap: "innerHTML", values: values })
      .finally(() => setBusy(false));
  }

  function decide(decision, reason) {
    const a = article();
    if (!a) return;
    const values = { item_id: a.dataset.itemId, decision: decision };
    if (reason) values.reason_code = reason;
    post("/review/decide", values);
  }

  function reasons() {
    return JSON.parse($("#reasons").dataset.reasons);
  }

  function startEdit() {
    const a = article();
    if (!a) return;
    mode = "edit";
    confirmSave = false;
    for (const part of ["question", "answer"]) {
      $("#" + part + "-view").hidden = true;
      $("#" + part + "-edit").hidden = false;
    }
    $("#answer-edit").focus();
  }

  function stopEdit() {
    mode = null;
    for (const part of ["question", "answer"]) {
      $("#" + part + "-view").hidden = false;
      $("#" + part + "-edit").hidden = true;
    }
    $("#edit-warning").hidden = true;
  }

  async function saveEdit() {
    const a = article();
    const values = { item_id: a.dataset.itemId, question: $("#question-edit").value, answer: $("#answer-edit").value };
    if (!confirmSave) {
      // Figures the edit introduces that the source lacks are shown before anything is saved.
      const res = await fetch("/review/check", {
        method: "POST", headers: { "X-CSRF-Token": csrf }, body: new URLSearchParams(values),
      });
      const missing = res.ok ? (await res.json()).missing : [];
      if (missing.length) {
        const w = $("#edit-warning");
        w.textContent = "Not in the source: " + missing.join(", ") + " — Ctrl+Enter again to save anyway, Esc to go back.";
        w.hidden = false;
        confirmSave = true;
        return;
      }
    }
    post("/review/edit", values);
  }

  document.addEventListener("keydown", (e) => {
    if (mode === "edit") {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); saveEdit(); }
      else if (e.key === "Escape") { e.preventDefault(); stopEdit(); }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey || (e.target && /^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName))) return;
    if (mode === "reject") {
      const n = parseInt(e.key, 10);
      const list = reasons();
      if (n >= 1 && n <= list.length) { decide("reject", list[n - 1]); }
      mode = null;
      $("#reasons").hidden = true;
      return;
    }
    switch (e.key) {
      case "a": decide("approve"); break;
      case "r": if (article()) { mode = "reject"; $("#reasons").hidden = false; } break;
      case "e": e.preventDefault(); startEdit(); break;
      case "s": if (article()) post("/review/skip", { item_id: article().dataset.itemId }); break;
      case "u": post("/review/undo", {}); break;
      case "?": { const h = $("#help"); if (h) h.hidden = !h.hidden; } break;
      default: return;
    }
  });
})();
