// The gateway's login page script (served from the gateway, so the page's CSP needs no 'unsafe-inline').
// One submission per captcha: a double click would spend the single-use Turnstile token twice and fail.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("gateway-login");
  if (!form) {
    return;
  }
  var name = form.querySelector("input[name=user_name]");
  if (name && !name.value) {
    name.focus();
  }
  form.addEventListener("submit", function () {
    var button = form.querySelector("button[type=submit]");
    if (button) {
      button.disabled = true;
    }
  });
});
