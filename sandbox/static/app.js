// ChargeShare sandbox page: three chat panes over the local Bot API server, and the
// chargers with their QR labels and simulated plugs. Plain JS, no build step.
"use strict";

const PANES = ["user", "merchant", "group"];
const panes = {};          // name -> {root, els, chat, signature, replyTo, dismissedReply}
let botId = 0;
let botUsername = "";
let timeZone;  // the bot's TIMEZONE: bubble times as the bot's own texts say them
let mapData = { centre: { latitude: 31.2304, longitude: 121.4737 }, shops: [] };
// where each person "is" when they share their current location
const HERE = {
  user: { latitude: 31.2312, longitude: 121.4741 },
  merchant: { latitude: 31.2262, longitude: 121.4632 },
  group: { latitude: 31.2304, longitude: 121.4737 },
};

// ------------------------------------------------------------------ helpers

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST",
    headers: body instanceof FormData ? {} : { "Content-Type": "application/json" },
    body: body instanceof FormData ? body : JSON.stringify(body),
  };
  const response = await fetch(path, options);
  if (!response.ok) throw new Error(await response.text() || response.statusText);
  return response.json();
}

function toast(pane, text) {
  const box = pane.els.toast;
  box.textContent = text;
  box.hidden = false;
  clearTimeout(box._timer);
  box._timer = setTimeout(() => { box.hidden = true; }, 2600);
}

function alertBox(pane, text) {
  pane.els.alertText.textContent = text;
  pane.els.alert.hidden = false;
}

function zoom(src) {
  const layer = el("div", { class: "zoom", onclick: () => layer.remove() }, el("img", { src }));
  document.body.append(layer);
}

// Amounts come in the currency's smallest units (Telegram's total_amount); Intl knows
// how many of them make one (2 for CNY, 0 for JPY). Stars (XTR) are whole stars.
function money(amount, currency) {
  if (currency === "XTR") return `⭐ ${amount}`;
  try {
    const format = new Intl.NumberFormat(undefined, { style: "currency", currency });
    return format.format(amount / 10 ** format.resolvedOptions().maximumFractionDigits);
  } catch (error) {
    return `${(amount / 100).toFixed(2)} ${currency}`;
  }
}

function fileSize(bytes) {
  if (bytes >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${bytes} B`;
}

// ------------------------------------------------------------------ text with entities

const SIMPLE = {
  bold: "b", italic: "i", underline: "u", strikethrough: "s", code: "code",
};

function entityNode(entity) {
  if (SIMPLE[entity.type]) return el(SIMPLE[entity.type]);
  switch (entity.type) {
    case "pre": return el("pre");
    case "spoiler": {
      const node = el("span", { class: "spoiler", title: "Spoiler" });
      node.addEventListener("click", () => node.classList.toggle("shown"));
      return node;
    }
    case "text_link": return el("a", { href: entity.url, target: "_blank", rel: "noopener" });
    case "text_mention": return el("a", { href: "#", title: `user ${entity.user && entity.user.id}` });
    case "blockquote":
    case "expandable_blockquote": return el("blockquote");
    default: return el("span", { class: `entity-${entity.type}` });
  }
}

// Telegram's offsets are UTF-16 code units, which is what JS strings index by.
function formatted(text, entities) {
  const sorted = [...(entities || [])].sort((a, b) => a.offset - b.offset || b.length - a.length);
  const fragment = document.createDocumentFragment();
  function build(parent, start, end, list) {
    let pos = start;
    let i = 0;
    while (i < list.length) {
      const entity = list[i];
      const stop = entity.offset + entity.length;
      if (entity.offset > pos) parent.append(text.slice(pos, entity.offset));
      const inner = [];
      let j = i + 1;
      while (j < list.length && list[j].offset < stop) { inner.push(list[j]); j += 1; }
      const node = entityNode(entity);
      build(node, Math.max(entity.offset, pos), Math.min(stop, end), inner);
      parent.append(node);
      pos = Math.max(pos, stop);
      i = j;
    }
    if (pos < end) parent.append(text.slice(pos, end));
  }
  build(fragment, 0, text.length, sorted);
  return fragment;
}

// ------------------------------------------------------------------ maps (no tiles: offline)

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// A little map of the area around (lat, lon): a street grid, the known shops, a pin.
function drawMap({ latitude, longitude }, { width = 300, height = 160, span = 0.012, pin = true, onPick } = {}) {
  const kx = Math.cos(latitude * Math.PI / 180);
  const halfLon = span * (width / height) / kx;
  const toXY = (lat, lon) => [
    width / 2 + (lon - longitude) / halfLon * (width / 2),
    height / 2 - (lat - latitude) / span * (height / 2),
  ];
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "map" });
  root.append(svg("rect", { x: 0, y: 0, width, height, fill: "#eef1e6" }));
  // a river and a park make the grid look like a city
  root.append(svg("path", {
    d: `M ${width * 0.78} -5 C ${width * 0.70} ${height * 0.4}, ${width * 0.92} ${height * 0.6}, ${width * 0.82} ${height + 5}`,
    stroke: "#a8d0ef", "stroke-width": 10, fill: "none",
  }));
  root.append(svg("rect", { x: width * 0.12, y: height * 0.62, width: width * 0.16, height: height * 0.2, fill: "#cfe6c0", rx: 6 }));
  const step = 0.002;
  const startLat = Math.floor((latitude - span) / step) * step;
  for (let lat = startLat; lat < latitude + span; lat += step) {
    const [, y] = toXY(lat, longitude);
    root.append(svg("line", { x1: 0, y1: y, x2: width, y2: y, stroke: "#fff", "stroke-width": 3 }));
  }
  const startLon = Math.floor((longitude - halfLon) / step) * step;
  for (let lon = startLon; lon < longitude + halfLon; lon += step) {
    const [x] = toXY(latitude, lon);
    root.append(svg("line", { x1: x, y1: 0, x2: x, y2: height, stroke: "#fff", "stroke-width": 3 }));
  }
  for (const shop of mapData.shops) {
    const [x, y] = toXY(shop.latitude, shop.longitude);
    if (x < -20 || x > width + 20 || y < -20 || y > height + 20) continue;
    root.append(svg("circle", { cx: x, cy: y, r: 5, fill: "#2fb36a", stroke: "#fff", "stroke-width": 2 }));
    root.append(svg("text", { x: x + 7, y: y + 4, "font-size": 10, fill: "#2b5a3f" }, shop.name));
  }
  if (pin) {
    const [x, y] = [width / 2, height / 2];
    root.append(svg("path", {
      d: `M ${x} ${y} l -7 -14 a 8 8 0 1 1 14 0 z`, fill: "#e0483e", stroke: "#fff", "stroke-width": 1.5,
    }));
    root.append(svg("circle", { cx: x, cy: y - 17, r: 3, fill: "#fff" }));
  }
  root.append(svg("text", { x: 6, y: height - 6, "font-size": 9, fill: "#6b7c8c" },
    `${latitude.toFixed(5)}, ${longitude.toFixed(5)}`));
  if (onPick) {
    root.addEventListener("click", (event) => {
      const box = root.getBoundingClientRect();
      const x = (event.clientX - box.left) / box.width * width;
      const y = (event.clientY - box.top) / box.height * height;
      onPick({
        latitude: latitude + (height / 2 - y) / (height / 2) * span,
        longitude: longitude + (x - width / 2) / (width / 2) * halfLon,
      });
    });
  }
  return root;
}

// ------------------------------------------------------------------ messages

function senderName(message) {
  const from = message.from || {};
  return [from.first_name, from.last_name].filter(Boolean).join(" ");
}

function summary(message) {
  if (message.text) return message.text;
  if (message.caption) return `🖼 ${message.caption}`;
  if (message.photo) return "🖼 Photo";
  if (message.venue) return `📍 ${message.venue.title}`;
  if (message.location) return "📍 Location";
  if (message.contact) return `👤 ${message.contact.first_name}`;
  if (message.document) return `📄 ${message.document.file_name || "File"}`;
  if (message.invoice) return `🧾 ${message.invoice.title}`;
  if (message.successful_payment) return "✅ Payment";
  return "Message";
}

// The payment recorded for an invoice message (the newest attempt), if any.
function paymentOf(pane, invoiceMessageId) {
  const attempts = (pane.chat.payments || []).filter((p) => p.invoice_message_id === invoiceMessageId);
  return attempts.find((p) => p.status === "paid") || attempts[attempts.length - 1] || null;
}

// A payment shows as a service line in the middle of the chat, as in Telegram.
function renderPaymentNotice(pane, message) {
  const paid = message.successful_payment;
  const record = (pane.chat.payments || []).find((p) => p.message_id === message.message_id);
  const invoice = record && pane.chat.messages.find((m) => m.message_id === record.invoice_message_id);
  const what = invoice && invoice.invoice ? ` for “${invoice.invoice.title}”` : "";
  return el("div", { class: "msg service", dataset: { id: message.message_id } },
    el("div", { class: "service-text" },
      `✅ You paid ${money(paid.total_amount, paid.currency)} to @${botUsername}${what}`));
}

function renderInvoice(pane, message, bubble) {
  const invoice = message.invoice;
  const payment = paymentOf(pane, message.message_id);
  bubble.classList.add("invoice");
  bubble.append(el("div", { class: "invoice-title" }, invoice.title));
  bubble.append(el("div", { class: "invoice-description" }, invoice.description));
  bubble.append(el("div", { class: "invoice-amount" },
    el("b", {}, money(invoice.total_amount, invoice.currency)), el("span", { class: "test-badge" }, "TEST")));
  const rows = (message.reply_markup || {}).inline_keyboard;
  if (rows && rows.length) return;  // the bot's own keyboard starts with the Pay button
  const paid = payment && payment.status === "paid";
  const button = el("button", { type: "button", class: "pay-button", disabled: paid },
    paid ? "✓ Paid" : `Pay ${money(invoice.total_amount, invoice.currency)}`);
  if (!paid) button.addEventListener("click", () => openPaySheet(pane, message));
  bubble.append(button);
}

function clockTime(seconds) {
  const options = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
  try {
    return new Date(seconds * 1000).toLocaleTimeString([], { ...options, timeZone });
  } catch (error) {  // a zone this browser does not know: its own
    return new Date(seconds * 1000).toLocaleTimeString([], options);
  }
}

function renderMessage(pane, message) {
  if (message.successful_payment) return renderPaymentNotice(pane, message);
  const mine = message.from && message.from.id !== botId;
  const bubble = el("div", { class: "bubble" });
  if (mine && pane.chat.id < 0) bubble.append(el("div", { class: "sender" }, senderName(message)));
  if (message.reply_to_message) {
    bubble.append(el("div", { class: "quote" }, summary(message.reply_to_message)));
  }
  if (message.photo) {
    const largest = message.photo[message.photo.length - 1];
    const src = `/api/file/${encodeURIComponent(largest.file_id)}`;
    const img = el("img", { class: "photo", src, alt: "photo", onclick: () => zoom(src) });
    img.addEventListener("load", () => { if (pane.stick) pane.els.messages.scrollTop = pane.els.messages.scrollHeight; });
    bubble.append(img);
  }
  if (message.document) {
    const doc = message.document;
    const name = doc.file_name || "file";
    bubble.append(el("a", {
      class: "document",
      href: `/api/file/${encodeURIComponent(doc.file_id)}?download=1`,
      download: name,
      title: `Download ${name}`,
    }, el("span", { class: "doc-icon" }, "📄"),
    el("span", { class: "doc-text" }, el("span", { class: "doc-name" }, name),
      el("span", { class: "doc-size" }, `${fileSize(doc.file_size || 0)} · ${doc.mime_type || ""}`))));
  }
  if (message.invoice) renderInvoice(pane, message, bubble);
  if (message.venue) {
    bubble.append(drawMap(message.venue.location));
    bubble.append(el("div", { class: "venue-title" }, message.venue.title));
    bubble.append(el("div", { class: "venue-address" }, message.venue.address));
  } else if (message.location) {
    bubble.append(drawMap(message.location));
  }
  if (message.contact) {
    const c = message.contact;
    bubble.append(el("div", { class: "contact" },
      el("div", { class: "avatar" }, (c.first_name || "?").slice(0, 1)),
      el("div", {}, el("div", { class: "title" }, c.first_name), el("div", {}, `+${c.phone_number.replace(/^\+/, "")}`))));
  }
  let text = message.text !== undefined ? message.text : message.caption;
  // a deep link's payload is not shown: Telegram shows "/start" for "/start <token>"
  if (mine && message.text && /^\/start\s/.test(message.text)) text = "/start";
  if (text) {
    bubble.append(el("div", { class: "text" },
      formatted(text, message.text !== undefined ? message.entities : message.caption_entities)));
  }
  const time = clockTime(message.date);
  bubble.append(el("div", { class: "meta" }, message.edit_date ? `edited ${time}` : time));
  const node = el("div", {
    class: `msg ${mine ? "me" : "bot"}`,
    dataset: { id: message.message_id },
    title: pane.chat.id < 0 ? "Double-click to reply" : null,
    ondblclick: () => setReply(pane, message),
  }, bubble);
  const rows = (message.reply_markup || {}).inline_keyboard;
  if (rows && rows.length) node.append(inlineKeyboard(pane, message, rows));
  return node;
}

function inlineKeyboard(pane, message, rows) {
  const box = el("div", { class: "kbd" });
  for (const row of rows) {
    const line = el("div", { class: "kbd-row" });
    for (const button of row) {
      if (button.url) {
        line.append(el("a", { href: button.url, target: "_blank", rel: "noopener" }, `${button.text} ↗`));
      } else if (button.pay && message.invoice) {
        const payment = paymentOf(pane, message.message_id);
        const paid = payment && payment.status === "paid";
        const node = el("button", { type: "button", class: "pay-button", disabled: paid },
          paid ? "✓ Paid" : button.text);
        if (!paid) node.addEventListener("click", () => openPaySheet(pane, message));
        line.append(node);
      } else if (button.callback_data !== undefined) {
        const node = el("button", { type: "button", dataset: { data: button.callback_data } }, button.text);
        node.addEventListener("click", () => press(pane, message, button, node));
        line.append(node);
      } else {
        line.append(el("button", { type: "button", disabled: true }, button.text));
      }
    }
    box.append(line);
  }
  return box;
}

async function press(pane, message, button, node) {
  node.classList.add("pending");
  try {
    const { answer } = await api("/api/press", {
      chat: pane.name, actor: actorOf(pane), message_id: message.message_id, data: button.callback_data,
    });
    if (answer && answer.text) {
      if (answer.show_alert) alertBox(pane, answer.text);
      else toast(pane, answer.text);
    }
  } catch (error) {
    toast(pane, `⚠️ ${error.message}`);
  } finally {
    node.classList.remove("pending");
  }
}

function setReply(pane, message) {
  pane.replyTo = message ? message.message_id : null;
  pane.els.replybar.hidden = !message;
  if (message) pane.els.replybarText.textContent = `↩ Reply to: ${summary(message).slice(0, 80)}`;
}

function replyKeyboard(pane, markup) {
  const box = pane.els.replyKeyboard;
  box.replaceChildren();
  if (!markup || !markup.keyboard) return;
  for (const row of markup.keyboard) {
    const line = el("div", { class: "row" });
    for (const raw of row) {
      const button = typeof raw === "string" ? { text: raw } : raw;
      line.append(el("button", {
        type: "button",
        onclick: () => {
          if (button.request_contact) shareContact(pane);
          else if (button.request_location) openPicker(pane);
          else sendText(pane, button.text);
        },
      }, button.text));
    }
    box.append(line);
  }
}

// ------------------------------------------------------------------ acting

function actorOf(pane) {
  return pane.els.actor.hidden ? undefined : Number(pane.els.actor.value);
}

async function sendText(pane, text) {
  text = text.trim();
  if (!text) return;
  const body = { chat: pane.name, text, actor: actorOf(pane) };
  if (pane.replyTo) body.reply_to = pane.replyTo;
  setReply(pane, null);
  pane.dismissedReply = null;
  try {
    await api("/api/send", body);
  } catch (error) {
    toast(pane, `⚠️ ${error.message}`);
  }
}

async function shareContact(pane) {
  try { await api("/api/contact", { chat: pane.name, actor: actorOf(pane) }); }
  catch (error) { toast(pane, `⚠️ ${error.message}`); }
}

async function shareLocation(pane, point) {
  pane.els.picker.hidden = true;
  try { await api("/api/location", { chat: pane.name, actor: actorOf(pane), ...point }); }
  catch (error) { toast(pane, `⚠️ ${error.message}`); }
}

function openPicker(pane) {
  pane.els.attachMenu.hidden = true;
  pane.els.pickerMap.replaceChildren(drawMap(mapData.centre, {
    width: 320, height: 220, span: 0.016, pin: false,
    onPick: (point) => shareLocation(pane, point),
  }));
  pane.els.picker.hidden = false;
}

async function sendPhoto(pane, blob, name) {
  const form = new FormData();
  form.append("chat", pane.name);
  if (actorOf(pane)) form.append("actor", String(actorOf(pane)));
  form.append("file", blob, name);
  try { await api("/api/photo", form); }
  catch (error) { toast(pane, `⚠️ ${error.message}`); }
}

// A storefront drawn on a canvas, for a photo without a file at hand.
function drawnStorefront() {
  const canvas = el("canvas", { width: 640, height: 420 });
  const g = canvas.getContext("2d");
  const hue = Math.floor(Math.random() * 360);
  g.fillStyle = "#eef1f4"; g.fillRect(0, 0, 640, 420);
  g.fillStyle = `hsl(${hue} 55% 50%)`; g.fillRect(40, 60, 560, 330);
  g.fillStyle = "#fafaf5"; g.fillRect(60, 80, 520, 70);
  g.fillStyle = "#333"; g.font = "bold 40px sans-serif"; g.textAlign = "center";
  g.fillText("MY SHOP ⚡", 320, 130);
  g.fillStyle = "#46372d"; g.fillRect(270, 220, 100, 170);
  g.fillStyle = "#bee1f5"; g.fillRect(80, 200, 140, 120); g.fillRect(420, 200, 140, 120);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

// ------------------------------------------------------------------ paying (a test card)

function openPaySheet(pane, message) {
  const { els } = pane;
  const invoice = message.invoice;
  const amount = money(invoice.total_amount, invoice.currency);
  pane.paying = message.message_id;
  els.payTitle.textContent = invoice.title;
  els.payAmount.textContent = amount;
  els.payConfirm.textContent = `Pay ${amount}`;
  setPayStatus(pane, "", "");
  setPayBusy(pane, false);
  els.paysheet.hidden = false;
}

function setPayBusy(pane, busy) {
  const { els } = pane;
  for (const node of [els.payConfirm, els.payDecline, els.payCancel]) node.disabled = busy;
  els.paysheet.classList.toggle("busy", busy);
}

function setPayStatus(pane, kind, text) {
  const { els } = pane;
  els.payStatus.hidden = !text;
  els.payStatus.className = `paysheet-status ${kind}`;
  els.payStatusText.textContent = text;
}

const PAY_OUTCOMES = {
  rejected: (p) => p.error_message || "The bot refused the order.",
  timed_out: () => "The bot did not confirm the order in time. No money was taken.",
  declined: () => "Your card was declined by the payment provider.",
};

async function pay(pane, decline) {
  const messageId = pane.paying;
  setPayBusy(pane, true);
  setPayStatus(pane, "pending", decline
    ? "Asking the payment provider…"
    : "Waiting for the bot to confirm the order…");
  try {
    const { payment } = await api("/api/pay", {
      chat: pane.name, actor: actorOf(pane), message_id: messageId, decline,
    });
    if (payment.status === "paid") {
      pane.els.paysheet.hidden = true;
      toast(pane, `✅ Paid ${money(payment.total_amount, payment.currency)}`);
      return;
    }
    setPayStatus(pane, "failed", PAY_OUTCOMES[payment.status](payment));
  } catch (error) {
    setPayStatus(pane, "failed", `⚠️ ${error.message}`);
  } finally {
    setPayBusy(pane, false);
  }
}

// ------------------------------------------------------------------ panes

function setupPane(name) {
  const root = document.getElementById(`pane-${name}`);
  root.append(document.getElementById("pane-template").content.cloneNode(true));
  const q = (selector) => root.querySelector(selector);
  const pane = {
    name, root, chat: null, signature: "", replyTo: null, dismissedReply: null, stick: true, paying: null,
    els: {
      avatar: q(".avatar"), title: q(".title"), sub: q(".sub"), actor: q(".actor"),
      messages: q(".messages"), replybar: q(".replybar"), replybarText: q(".replybar-text"),
      replyKeyboard: q(".reply-keyboard"), composer: q(".composer"), input: q("input.text"),
      attach: q(".attach"), attachMenu: q(".attach-menu"), file: q("input.file"),
      picker: q(".picker"), pickerMap: q(".picker-map"), alert: q(".alert"),
      alertText: q(".alert-text"), toast: q(".toast"),
      paysheet: q(".paysheet"), payTitle: q(".paysheet-item-title"), payAmount: q(".paysheet-amount"),
      payConfirm: q(".pay-confirm"), payDecline: q(".pay-decline"), payCancel: q(".pay-cancel"),
      payStatus: q(".paysheet-status"), payStatusText: q(".paysheet-status-text"),
    },
  };
  const { els } = pane;
  els.messages.addEventListener("scroll", () => {
    const box = els.messages;
    pane.stick = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  });
  els.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = els.input.value;
    els.input.value = "";
    sendText(pane, text);
  });
  els.attach.addEventListener("click", () => { els.attachMenu.hidden = !els.attachMenu.hidden; });
  els.attachMenu.addEventListener("click", async (event) => {
    const kind = event.target.closest("button")?.dataset.attach;
    els.attachMenu.hidden = true;
    if (kind === "photo") els.file.click();
    else if (kind === "demo-photo") sendPhoto(pane, await drawnStorefront(), "storefront.png");
    else if (kind === "location") openPicker(pane);
    else if (kind === "contact") shareContact(pane);
  });
  els.file.addEventListener("change", () => {
    const [file] = els.file.files;
    if (file) sendPhoto(pane, file, file.name);
    els.file.value = "";
  });
  q(".picker-here").addEventListener("click", () => shareLocation(pane, HERE[name]));
  q(".picker-cancel").addEventListener("click", () => { els.picker.hidden = true; });
  q(".alert-ok").addEventListener("click", () => { els.alert.hidden = true; });
  els.payConfirm.addEventListener("click", () => pay(pane, false));
  els.payDecline.addEventListener("click", () => pay(pane, true));
  els.payCancel.addEventListener("click", () => { els.paysheet.hidden = true; });
  q(".replybar-close").addEventListener("click", () => {
    pane.dismissedReply = pane.replyTo;
    setReply(pane, null);
  });
  panes[name] = pane;
}

function renderPane(pane, chat) {
  const first = pane.chat === null;
  pane.chat = chat;
  const { els } = pane;
  if (first) {
    els.avatar.textContent = chat.title.slice(0, 1);
    els.title.textContent = chat.id < 0 ? chat.title : `${chat.title} · ${chat.role}`;
    els.sub.textContent = chat.id < 0
      ? `${chat.role} · with @${botUsername}`
      : `private chat with @${botUsername}`;
    if (chat.actors.length > 1) {
      els.actor.hidden = false;
      for (const actor of chat.actors) {
        els.actor.append(el("option", { value: actor.id }, chat.id < 0 ? `as ${actor.name} (admin)` : `as ${actor.name}`));
      }
    }
  }
  const signature = JSON.stringify([chat.messages, chat.keyboard, chat.payments]);
  if (signature === pane.signature) return;
  pane.signature = signature;
  const box = els.messages;
  // a new message always comes into view, as in Telegram; otherwise (a button
  // pressed, a message edited) the pane stays where the person scrolled it
  const newest = chat.messages.length ? chat.messages[chat.messages.length - 1].message_id : 0;
  const arrived = newest !== pane.newest;
  pane.newest = newest;
  const atBottom = first || pane.stick || arrived;
  box.replaceChildren(...chat.messages.map((message) => renderMessage(pane, message)));
  replyKeyboard(pane, chat.keyboard);
  // a force-reply prompt makes the next message a reply to it, as Telegram apps do
  const last = [...chat.messages].reverse().find((m) => m.from && m.from.id === botId);
  if (last && last.keyboard && last.keyboard.force_reply && pane.dismissedReply !== last.message_id
      && pane.replyTo !== last.message_id) {
    const answered = chat.messages.some((m) => m.reply_to_message
      && m.reply_to_message.message_id === last.message_id);
    if (!answered) setReply(pane, last);
  }
  pane.stick = atBottom;
  if (atBottom) box.scrollTop = box.scrollHeight;
}

// ------------------------------------------------------------------ chargers

const chargerNodes = new Map();

function renderChargers(list) {
  const box = document.getElementById("charger-list");
  if (!list.length) {
    box.replaceChildren(el("p", { class: "muted" }, "No approved chargers yet."));
    chargerNodes.clear();
    return;
  }
  if (box.querySelector("p.muted")) box.replaceChildren();
  const seen = new Set();
  for (const item of list) {
    seen.add(item.id);
    let node = chargerNodes.get(item.id);
    if (!node) {
      node = el("div", { class: "charger", dataset: { chargerId: item.id, plug: item.plug_id } });
      node.innerHTML = `<div class="labelbox"></div><div class="info">
        <div class="name"></div><div class="plugid"></div>
        <div><span class="relay off">OFF</span> <span class="energy"></span></div>
        <button type="button" class="scan">📷 Scan the QR code</button></div>`;
      node.querySelector(".scan").addEventListener("click", () => scan(item.id, node));
      chargerNodes.set(item.id, node);
      box.append(node);
    }
    node.querySelector(".name").textContent = `${item.shop} · charger ${item.number}`;
    node.querySelector(".plugid").textContent = `${item.driver} plug “${item.plug_id}” · ${item.method}`;
    const relay = node.querySelector(".relay");
    const state = !item.online ? "offline" : item.on ? "on" : "off";
    relay.className = `relay ${state}`;
    relay.textContent = state.toUpperCase();
    node.dataset.relay = state;
    node.querySelector(".energy").textContent =
      `${Math.round(item.watts)} W · ${item.energy_kwh.toFixed(4)} kWh`;
    const holder = node.querySelector(".labelbox");
    const current = holder.dataset.src || "";
    if ((item.label || "") !== current) {
      holder.dataset.src = item.label || "";
      holder.replaceChildren(item.label
        ? el("img", { class: "label", src: item.label, alt: `QR label of ${item.shop} charger ${item.number}`, onclick: () => zoom(item.label) })
        : el("div", { class: "nolabel" }, "label not sent yet"));
    }
    node.querySelector(".scan").disabled = !item.label;
  }
  for (const [id, node] of chargerNodes) {
    if (!seen.has(id)) { node.remove(); chargerNodes.delete(id); }
  }
}

// plugs online that no charger has yet: the merchant pairs one in the wizard
const spareNodes = new Map();

function renderSparePlugs(list) {
  const box = document.getElementById("charger-list");
  const seen = new Set();
  for (const item of list) {
    const key = `${item.driver}:${item.plug_id}`;
    seen.add(key);
    let node = spareNodes.get(key);
    if (!node) {
      node = el("div", { class: "spare-plug", dataset: { plug: item.plug_id } });
      node.innerHTML = `<div class="info"><div class="name">New plug, not paired yet</div>
        <div class="plugid"></div>
        <div><span class="relay off">OFF</span></div>
        <button type="button" class="press">👆 Press the plug's button</button></div>`;
      node.querySelector(".press").addEventListener("click", () =>
        api("/api/button", { driver: item.driver, plug_id: item.plug_id }).catch(() => {}));
      spareNodes.set(key, node);
    }
    if (node.parentNode !== box) box.append(node);
    node.querySelector(".plugid").textContent =
      `${item.driver} plug “${item.plug_id}”: type it in /newlisting to pair it`;
    const relay = node.querySelector(".relay");
    const state = !item.online ? "offline" : item.on ? "on" : "off";
    relay.className = `relay ${state}`;
    relay.textContent = state.toUpperCase();
    node.dataset.relay = state;
  }
  for (const [key, node] of spareNodes) {
    if (!seen.has(key)) { node.remove(); spareNodes.delete(key); }
  }
}

async function scan(chargerId, node) {
  const button = node.querySelector(".scan");
  button.disabled = true;
  try {
    const result = await api("/api/scan", { charger_id: chargerId, actor: actorOf(panes.user) });
    toast(panes.user, `📷 ${result.link}\n→ ${result.text.slice(0, 24)}…`);
  } catch (error) {
    toast(panes.user, `⚠️ ${error.message}`);
  } finally {
    button.disabled = false;
  }
}

// ------------------------------------------------------------------ loops

async function stateLoop() {
  let version = -1;
  for (;;) {
    try {
      const state = await api(`/api/state?v=${version}`);
      botId = state.bot.id;
      botUsername = state.bot.username;
      timeZone = state.timezone || undefined;
      version = state.version;
      for (const name of PANES) renderPane(panes[name], state.chats[name]);
      document.body.dataset.version = version;
    } catch (error) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

async function chargerLoop() {
  let shopsKey = "";
  for (;;) {
    try {
      const { chargers, spare_plugs: spare } = await api("/api/chargers");
      renderChargers(chargers);
      renderSparePlugs(spare || []);
      const key = [...new Set(chargers.map((c) => c.listing_id))].join(",");
      if (key !== shopsKey) { mapData = await api("/api/map"); shopsKey = key; }
    } catch (error) { /* the sandbox is restarting: try again */ }
    await new Promise((resolve) => setTimeout(resolve, 700));
  }
}

async function main() {
  PANES.forEach(setupPane);
  try { mapData = await api("/api/map"); } catch (error) { /* keep the default */ }
  stateLoop();
  chargerLoop();
}

main();
