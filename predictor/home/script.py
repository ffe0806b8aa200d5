"""The home page's script: builds each model's try-it form and sends it (vanilla JS, no assets)."""

SCRIPT = r"""
"use strict";
document.querySelectorAll("section.model[data-ready]").forEach(setUp);

function setUp(section) {
  const card = JSON.parse(section.querySelector("script.model-data").textContent);
  const form = section.querySelector("form.try");
  card.inputs.forEach((input, i) => {
    const label = document.createElement("label");
    label.className = "field";
    label.dataset.feature = input.name;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = input.name;
    let control;
    if (input.categories && input.categories.length) {
      control = document.createElement("select");
      input.categories.forEach((c) => {
        const option = document.createElement("option");
        option.value = String(c);
        option.textContent = String(c);
        control.append(option);
      });
    } else if (input.type === "text") {
      control = document.createElement("textarea");
    } else {
      control = document.createElement("input");
      control.type = "text";
    }
    control.name = input.name;
    const example = card.example[i];
    control.value = example === null || example === undefined ? "" : String(example);
    const error = document.createElement("span");
    error.className = "field-error";
    label.append(name, control, error);
    form.append(label);
  });
  const button = document.createElement("button");
  button.type = "submit";
  button.textContent = "Predict";
  form.append(button);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    send(section, card, form);
  });
}

function valueOf(input, raw) {
  if (input.type !== "number") return raw;
  if (raw.trim() === "") return null;
  const number = Number(raw);
  return Number.isNaN(number) ? raw : number;
}

function request(card, form) {
  const values = card.inputs.map((input) => valueOf(input, form.elements[input.name].value));
  const outputs = card.outputs.filter((o) => o === "predict" || o === "predict_proba");
  if (card.text) {
    const body = {instances: values, parameters: {outputs: outputs}};
    return {path: `/v1/models/${card.name}:predict`, body: body};
  }
  let inputs;
  if (card.named) {
    inputs = card.inputs.map((input, i) => ({
      name: input.name,
      shape: [1],
      datatype: input.type === "number" && typeof values[i] !== "string" ? "FP64" : "BYTES",
      data: [values[i]],
    }));
  } else {
    inputs = [{name: "input-0", shape: [1, values.length], datatype: "FP64", data: values}];
  }
  return {
    path: `/v2/models/${card.name}/infer`,
    body: {inputs: inputs, outputs: outputs.map((name) => ({name: name}))},
  };
}

async function send(section, card, form) {
  section.querySelectorAll(".field-error").forEach((e) => { e.textContent = ""; });
  const result = section.querySelector(".result");
  const {path, body} = request(card, form);
  const text = JSON.stringify(body);
  const reply = await fetch(path, {
    method: "POST", headers: {"content-type": "application/json"}, body: text,
  });
  const answer = await reply.json();
  const curl = `curl -s -H 'content-type: application/json' -d '${text.replace(/'/g, "'\\''")}' ` +
    `${location.origin}${path}`;
  result.replaceChildren();
  if (!reply.ok) {
    const message = answer.error || JSON.stringify(answer);
    const named = /(?:feature|input) '([^']+)'/.exec(message);
    const where = named && `label.field[data-feature="${CSS.escape(named[1])}"] .field-error`;
    const field = where && section.querySelector(where);
    if (field) field.textContent = message;
    result.append(line("error", `${reply.status}: ${message}`));
  } else {
    const found = outputsOf(card, answer);
    result.append(line("label", `${found.label}`));
    if (found.probabilities) result.append(bars(card.classes, found.probabilities));
  }
  result.append(block("request", text), block("response", JSON.stringify(answer)));
  result.append(block("curl", curl));
}

function outputsOf(card, answer) {
  if (card.text) {
    const proba = answer.predict_proba ? answer.predict_proba[0] : null;
    return {label: answer.predict[0], probabilities: proba};
  }
  const byName = Object.fromEntries(answer.outputs.map((o) => [o.name, o.data]));
  return {label: byName.predict[0], probabilities: byName.predict_proba || null};
}

function line(kind, text) {
  const p = document.createElement("p");
  p.className = kind;
  p.textContent = text;
  return p;
}

function bars(classes, probabilities) {
  const list = document.createElement("div");
  list.className = "bars";
  probabilities.forEach((p, i) => {
    const row = document.createElement("div");
    row.className = "bar";
    row.dataset.class = String(classes[i]);
    row.dataset.probability = String(p);
    const fill = document.createElement("span");
    fill.style.width = `${(p * 100).toFixed(1)}%`;
    const label = document.createElement("em");
    label.textContent = `${classes[i]}: ${(p * 100).toFixed(1)}%`;
    row.append(fill, label);
    list.append(row);
  });
  return list;
}

function block(kind, text) {
  const details = document.createElement("details");
  details.className = kind;
  const summary = document.createElement("summary");
  summary.textContent = kind;
  const pre = document.createElement("pre");
  pre.textContent = text;
  details.append(summary, pre);
  return details;
}
"""
