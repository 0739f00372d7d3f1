import { $, api, say, startPage } from "./app.js";

await startPage();
$("form").addEventListener("submit", async ev => {
  ev.preventDefault();
  try {
    const me = await api("POST", "/api/login", { username: $("username").value, password: $("password").value });
    location.href = { agent: "/console", department: "/departments", qa: "/quality" }[me.role] || "/wallboard";
  } catch (e) { say("msg", e.message); }
});
