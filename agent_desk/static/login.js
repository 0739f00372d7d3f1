import { $, api, say, startPage } from "./app.js";

// The handler is on before anything is awaited: a form sent before it (a quick hand, a test
// typing as soon as the page loads) would go natively, the password in the address.
$("form").addEventListener("submit", async ev => {
  ev.preventDefault();
  try {
    const me = await api("POST", "/api/login", { username: $("username").value, password: $("password").value });
    location.href = { agent: "/console", department: "/departments", qa: "/quality" }[me.role] || "/wallboard";
  } catch (e) { say("msg", e.message); }
});
await startPage();
