// The triage form (GET /): symptoms from GET /v1/vocabulary, picked by name; the encounter goes to POST /v1/predict.
// Every string comes from the page's #messages block (serving/api/form.py, Spanish or English); no framework, no
// external resource. The API key lives in this tab's sessionStorage only.
"use strict";

(function () {
  const KEY_STORAGE = "rare-triage.api-key";
  const MAX_SHOWN = 40; // symptoms listed at once; a search narrows the rest
  const VOCABULARY_TIMEOUT_MS = 15000;
  const PREDICT_TIMEOUT_MS = 30000;

  const messages = JSON.parse(document.getElementById("messages").textContent);
  const lang = document.documentElement.lang || "en";
  const form = document.getElementById("triage-form");
  const keyInput = document.getElementById("api-key");
  const keyHeader = form.dataset.keyHeader || "X-API-Key";
  const search = document.getElementById("symptom-search");
  const list = document.getElementById("symptom-list");
  const count = document.getElementById("symptom-count");
  const more = document.getElementById("symptom-more");
  const selected = document.getElementById("symptom-selected");
  const submit = document.getElementById("submit");
  const busy = document.getElementById("busy");
  const result = document.getElementById("result");
  const error = document.getElementById("error");

  const percent = new Intl.NumberFormat(lang, { style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1 });

  let terms = []; // [{hpo_id, label, key, row, observed, excluded}]
  const state = new Map(); // hpo_id -> "observed" | "excluded"

  function t(key, params) {
    const text = Object.prototype.hasOwnProperty.call(messages, key) ? messages[key] : key;
    return text.replace(/\{(\w+)\}/g, (whole, name) => (params && name in params ? String(params[name]) : whole));
  }

  function fold(text) {
    return text.normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
  }

  function element(tag, attributes, children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, value);
    }
    for (const child of children || []) node.append(child);
    return node;
  }

  async function fetchWithin(url, options, timeoutMs) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    try {
      return await fetch(url, { ...options, signal: controller.signal, credentials: "same-origin" });
    } finally {
      clearTimeout(timer);
    }
  }

  async function errorDetail(response) {
    try {
      const body = await response.json();
      return { detail: String(body.detail ?? response.statusText), field: body.field ?? null };
    } catch (_) {
      return { detail: response.statusText || String(response.status), field: null };
    }
  }

  // ---- API key: sessionStorage only ----

  function storedKey() {
    try {
      return sessionStorage.getItem(KEY_STORAGE) || "";
    } catch (_) {
      return "";
    }
  }

  function storeKey(value) {
    try {
      if (value) sessionStorage.setItem(KEY_STORAGE, value);
      else sessionStorage.removeItem(KEY_STORAGE);
    } catch (_) {
      // storage refused (private mode): the key is still sent from the field
    }
  }

  keyInput.value = storedKey();
  keyInput.addEventListener("input", () => storeKey(keyInput.value.trim()));
  document.getElementById("api-key-forget").addEventListener("click", () => {
    storeKey("");
    keyInput.value = "";
    document.getElementById("api-key-status").textContent = t("api_key_forgotten");
    keyInput.focus();
  });

  // ---- symptoms ----

  function choiceBox(term, choice) {
    const box = element("input", { type: "checkbox", name: choice, value: term.hpo_id });
    box.addEventListener("change", () => {
      if (box.checked) state.set(term.hpo_id, choice);
      else if (state.get(term.hpo_id) === choice) state.delete(term.hpo_id);
      syncTerm(term);
      showSelected();
    });
    const label = element("label", { class: "choice" }, [
      box,
      element("span", { text: t(choice) }),
      element("span", { class: "visually-hidden", text: ": " + term.label }),
    ]);
    return { box, label };
  }

  function syncTerm(term) {
    const choice = state.get(term.hpo_id);
    term.observed.checked = choice === "observed";
    term.excluded.checked = choice === "excluded";
    term.row.classList.toggle("picked", choice !== undefined);
  }

  function buildList(vocabulary) {
    terms = vocabulary.map((entry) => {
      const term = { hpo_id: entry.hpo_id, label: entry.label, key: fold(entry.label + " " + entry.hpo_id) };
      const observed = choiceBox(term, "observed");
      const excluded = choiceBox(term, "excluded");
      term.observed = observed.box;
      term.excluded = excluded.box;
      term.row = element("li", { "data-hpo-id": entry.hpo_id }, [
        element("span", { class: "term" }, [
          element("span", { class: "term-label", text: entry.label }),
          " ",
          element("span", { class: "term-id", text: entry.hpo_id }),
        ]),
        element("span", { class: "choices" }, [observed.label, excluded.label]),
      ]);
      list.append(term.row);
      return term;
    });
    filter();
  }

  function filter() {
    const query = search.value.trim();
    const words = fold(query).split(/\s+/).filter(Boolean);
    let shown = 0; // matching terms not picked, listed up to MAX_SHOWN (picked terms are always listed)
    let matching = 0;
    let visibleCount = 0;
    for (const term of terms) {
      const picked = state.has(term.hpo_id);
      const matches = words.every((word) => term.key.includes(word));
      let visible = picked;
      if (matches && !picked) {
        matching += 1;
        if (shown < MAX_SHOWN) {
          shown += 1;
          visible = true;
        }
      }
      term.row.hidden = !visible;
      if (visible) visibleCount += 1;
    }
    count.textContent =
      matching === 0 && query
        ? t("symptoms_no_match", { query })
        : t("symptoms_shown", { shown: visibleCount, total: terms.length });
    const hiddenMatches = matching - shown;
    more.hidden = hiddenMatches <= 0;
    more.textContent = hiddenMatches > 0 ? t("symptoms_more", { count: hiddenMatches }) : "";
  }

  function showSelected() {
    const byChoice = { observed: [], excluded: [] };
    for (const term of terms) {
      const choice = state.get(term.hpo_id);
      if (choice) byChoice[choice].push(term.label);
    }
    const lines = [];
    if (byChoice.observed.length) lines.push(t("selected_observed", { terms: byChoice.observed.join("; ") }));
    if (byChoice.excluded.length) lines.push(t("selected_excluded", { terms: byChoice.excluded.join("; ") }));
    if (!lines.length) lines.push(t("selected_none"));
    selected.replaceChildren(...lines.map((line) => element("p", { text: line })));
  }

  search.addEventListener("input", filter);
  search.addEventListener("keydown", (event) => {
    if (event.key === "Enter") event.preventDefault(); // Enter in the search box never submits
  });

  async function loadVocabulary() {
    try {
      const response = await fetchWithin("/v1/vocabulary", { headers: { Accept: "application/json" } }, VOCABULARY_TIMEOUT_MS);
      if (!response.ok) {
        const { detail } = await errorDetail(response);
        count.textContent = t("symptoms_unavailable", { detail });
        return;
      }
      const body = await response.json();
      buildList(body.terms);
      form.dataset.vocabulary = "loaded";
    } catch (problem) {
      count.textContent = t("symptoms_unavailable", { detail: problem.name === "AbortError" ? "timeout" : problem.message });
    }
  }

  // ---- submit ----

  function encounter() {
    const body = {};
    const sex = document.getElementById("sex").value;
    if (sex) body.sex = sex;
    for (const input of form.querySelectorAll('input[type="number"]')) {
      // each number input is named after its field of the contract (serving/api/form.py)
      if (input.value.trim() !== "" && !Number.isNaN(input.valueAsNumber)) body[input.name] = input.valueAsNumber;
    }
    const observed = terms.filter((term) => state.get(term.hpo_id) === "observed").map((term) => term.hpo_id);
    const excluded = terms.filter((term) => state.get(term.hpo_id) === "excluded").map((term) => term.hpo_id);
    if (observed.length) body.hpo_observed = observed;
    if (excluded.length) body.hpo_excluded = excluded;
    return body;
  }

  function clearFieldErrors() {
    for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
    for (const node of form.querySelectorAll(".field-error")) {
      node.hidden = true;
      node.textContent = "";
    }
  }

  function showError(text, field) {
    result.hidden = true;
    document.getElementById("error-message").textContent = text;
    error.hidden = false;
    const name = field ? field.replace(/^\$\.?/, "").split(/[.[]/)[0] : "";
    const input = name ? document.getElementById(name) : null;
    if (input && input.tagName === "INPUT") {
      input.setAttribute("aria-invalid", "true");
      const note = document.getElementById(name + "-error");
      if (note) {
        note.textContent = text;
        note.hidden = false;
      }
      input.focus();
    } else if (name === "hpo_observed" || name === "hpo_excluded") {
      search.focus();
    } else {
      error.focus();
    }
  }

  function setText(id, text) {
    document.getElementById(id).textContent = text;
  }

  function setOptional(id, values) {
    const dd = document.getElementById(id);
    const visible = Array.isArray(values) && values.length > 0;
    dd.hidden = !visible;
    dd.previousElementSibling.hidden = !visible;
    dd.textContent = visible ? values.join(", ") : "";
  }

  function className(label) {
    const key = "class_" + label;
    return Object.prototype.hasOwnProperty.call(messages, key) ? messages[key] : label;
  }

  function showResult(prediction) {
    error.hidden = true;
    const classCell = document.getElementById("result-class");
    classCell.textContent = className(prediction.class);
    classCell.dataset.class = prediction.class;
    const flagParams = {
      probability: percent.format(prediction.orphan_probability),
      threshold: percent.format(prediction.orphan_threshold),
      review: percent.format(prediction.review_threshold),
    };
    const flag = document.getElementById("result-orphan-flag");
    flag.textContent = t(prediction.orphan_flag ? "orphan_flag_yes" : "orphan_flag_no", flagParams);
    flag.dataset.flag = String(prediction.orphan_flag);
    flag.classList.toggle("alert", prediction.orphan_flag);
    const review = document.getElementById("result-needs-review");
    review.textContent = prediction.needs_review ? t("needs_review_yes", flagParams) : t("needs_review_no");
    review.dataset.needsReview = String(prediction.needs_review);
    setText("result-model-version", prediction.model_version);
    setText("result-request-id", prediction.request_id);
    const unknown = (prediction.hpo && prediction.hpo.unknown) || [];
    setText("result-unknown-hpo", unknown.length ? unknown.join(", ") : t("unknown_hpo_none"));
    setOptional("result-dropped-fields", prediction.dropped_fields);
    setOptional("result-unseen-categories", prediction.unseen_categories);
    const rows = Object.entries(prediction.probabilities).map(([label, probability]) =>
      element("tr", { "data-class": label, "data-probability": String(probability) }, [
        element("th", { scope: "row", text: className(label) }),
        element("td", {}, [
          element("meter", { min: "0", max: "1", value: String(probability), "aria-hidden": "true" }),
          " ",
          element("span", { class: "probability", text: percent.format(probability) }),
        ]),
      ]),
    );
    result.querySelector("tbody").replaceChildren(...rows);
    setText("result-disclaimer", t("disclaimer"));
    result.hidden = false;
    result.focus();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFieldErrors();
    if (!form.reportValidity()) {
      const invalid = form.querySelector(":invalid");
      if (invalid) invalid.setAttribute("aria-invalid", "true");
      return;
    }
    const headers = { "Content-Type": "application/json", Accept: "application/json" };
    const key = keyInput.value.trim();
    storeKey(key);
    if (key) headers[keyHeader] = key;
    submit.disabled = true;
    busy.textContent = t("busy");
    form.setAttribute("aria-busy", "true");
    try {
      const response = await fetchWithin(
        "/v1/predict", { method: "POST", headers, body: JSON.stringify(encounter()) }, PREDICT_TIMEOUT_MS,
      );
      if (response.ok) {
        showResult(await response.json());
      } else if (response.status === 401) {
        showError(t("error_api_key"), null);
        keyInput.setAttribute("aria-invalid", "true");
        keyInput.focus();
      } else {
        const { detail, field } = await errorDetail(response);
        if (response.status === 422 && field) showError(t("error_field", { field: field.replace(/^\$\.?/, ""), detail }), field);
        else showError(t("error_status", { status: response.status, detail }), null);
      }
    } catch (problem) {
      if (problem.name === "AbortError") showError(t("error_timeout", { seconds: PREDICT_TIMEOUT_MS / 1000 }), null);
      else showError(t("error_network", { detail: problem.message }), null);
    } finally {
      submit.disabled = false;
      busy.textContent = "";
      form.removeAttribute("aria-busy");
    }
  });

  form.addEventListener("reset", () => {
    // after the browser has emptied the fields: the key stays (it has its own Forget button), picks are cleared
    setTimeout(() => {
      keyInput.value = storedKey();
      state.clear();
      terms.forEach(syncTerm);
      clearFieldErrors();
      filter();
      showSelected();
      result.hidden = true;
      error.hidden = true;
    }, 0);
  });

  loadVocabulary();
})();
