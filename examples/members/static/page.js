// The member service's page: lists the caller's members and creates new ones through
// the API (/api/members, behind nginx's auth_request and the gateway). Each submission
// carries its own Idempotency-Key, so a retried request creates one member, not two.
// Account and sign-out are authgate's own pages (/_authgate/...), linked on this host.
"use strict";

const api = "/api/members";

function newKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function load() {
  const answer = await fetch(api, { headers: { Accept: "application/json" } });
  if (!answer.ok) { throw new Error(`listing failed: HTTP ${answer.status}`); }
  const { members } = await answer.json();
  const list = document.getElementById("members");
  list.replaceChildren(...members.map((m) => {
    const item = document.createElement("li");
    item.textContent = m.bio ? `${m.display_name} — ${m.bio}` : m.display_name;
    return item;
  }));
  document.getElementById("empty").hidden = members.length > 0;
}

async function whoAmI() {
  const answer = await fetch("/me", { headers: { Accept: "application/json" } });
  if (!answer.ok) { return null; }
  return answer.json();
}

async function create(event) {
  event.preventDefault();
  const form = event.target;
  const status = document.getElementById("form-status");
  const body = { display_name: form.display_name.value };
  if (form.bio.value) { body.bio = form.bio.value; }
  form.dataset.key ||= newKey(); // kept until it succeeds: a retry replays, never repeats
  status.textContent = "Saving…";
  const answer = await fetch(api, {
    method: "POST",
    headers: { "Content-Type": "application/json", "Idempotency-Key": form.dataset.key },
    body: JSON.stringify(body),
  });
  if (answer.ok) {
    delete form.dataset.key;
    form.reset();
    status.textContent = "Created.";
    await load();
  } else {
    const problem = await answer.json().catch(() => ({}));
    status.textContent = `Not saved: ${problem.detail || problem.title || "HTTP " + answer.status}`;
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  document.getElementById("new-member").addEventListener("submit", create);
  const me = await whoAmI();
  if (me) { document.getElementById("who").textContent = `Signed in as ${me.email || me.name || me.id}`; }
  await load();
});
