// The gateway's login page script (served from the gateway, so the page's CSP needs no 'unsafe-inline').
"use strict";

// Turnstile calls this once its script has run (`?onload=`): render the widget explicitly and keep its
// token in the form's one `cf-turnstile-response` field (the widget's own field is turned off, so the
// form never carries two).
window.gatewayLoginTurnstile = function () {
  var form = document.getElementById("gateway-login");
  var box = form && form.querySelector(".cf-turnstile");
  var field = form && form.querySelector("input[name='cf-turnstile-response']");
  if (!box || !field || !window.turnstile) {
    return;
  }
  window.turnstile.render(box, {
    sitekey: box.getAttribute("data-sitekey"),
    "response-field": false,
    callback: function (token) { field.value = token; },
    "expired-callback": function () { field.value = ""; },
    "error-callback": function () { field.value = ""; }
  });
};

document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("gateway-login");
  if (!form) {
    return;
  }
  var name = form.querySelector("input[name=user_name]");
  if (name && !name.value) {
    name.focus();
  }
  // One submission per captcha: a double click would spend the single-use Turnstile token twice and fail.
  form.addEventListener("submit", function () {
    var button = form.querySelector("button[type=submit]");
    if (button) {
      button.disabled = true;
    }
  });
});
