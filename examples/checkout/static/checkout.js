// The sample checkout page. Only Microform's documented public API is used (new Flex,
// flex.microform, microform.createField, field.load, field.on, microform.createToken), so
// the page works the same with Cybersource's Microform and with the local emulator's:
// which one it gets is the capture context's clientLibrary, chosen by the shop's server.
//
// The card number and security code live in the library's iframes; this page never sees
// them. It sends the shop's server the transient token only.
(function () {
  "use strict";

  var LOAD_TIMEOUT_MS = 10000;
  var config = JSON.parse(document.getElementById("checkout-config").textContent);
  var form = document.getElementById("payment-form");
  var payButton = document.getElementById("pay");
  var statusLine = document.getElementById("status");
  var result = document.getElementById("result");
  var fields = {
    number: { valid: false, empty: true, loaded: false, label: "card number" },
    securityCode: { valid: false, empty: true, loaded: false, label: "security code" },
  };
  var microform = null;
  var busy = false;

  function text(id, message) {
    document.getElementById(id).textContent = message || "";
  }

  function pageError(message) {
    var box = document.getElementById("checkout-error");
    box.textContent = message;
    box.hidden = !message;
  }

  function fieldError(name, message) {
    text(name + "-error", message);
    var container = document.getElementById(name + "-container");
    if (container) container.classList.toggle("invalid", Boolean(message));
  }

  function clearErrors() {
    pageError("");
    fieldError("number", "");
    fieldError("securityCode", "");
    text("expiry-error", "");
  }

  function showResult(value) {
    result.textContent = JSON.stringify(value, null, 2);
  }

  function updatePayButton() {
    payButton.disabled = busy || !microform || !fields.number.loaded || !fields.securityCode.loaded;
  }

  // A MicroformError (from the library) or an exception: each detail where it belongs.
  function showMicroformError(err) {
    var reason = (err && err.reason) || "";
    var placed = false;
    ((err && err.details) || []).forEach(function (detail) {
      var where = detail.location;
      var message = detail.message || "invalid";
      if (where === "number" || where === "securityCode") {
        fieldError(where, fields[where].label.charAt(0).toUpperCase() + fields[where].label.slice(1) + ": " + message);
        placed = true;
      } else if (where === "expirationMonth" || where === "expirationYear") {
        text("expiry-error", "Expiry: " + message);
        placed = true;
      }
    });
    if (!placed) {
      pageError((reason ? reason + ": " : "") + ((err && err.message) || String(err)));
    }
  }

  if (config.error) {
    pageError(
      "This checkout cannot take payments right now: the shop could not get a capture context (" +
        (config.error.code || "HTTP " + config.error.status) + ": " + (config.error.message || "") + ")."
    );
    showResult({ error: config.error });
    return;
  }
  if (typeof window.Flex !== "function") {
    pageError("The card form did not load (its script was blocked or failed its integrity check).");
    return;
  }

  var styles = {
    input: { "font-size": "16px", "font-family": "system-ui, sans-serif", color: "#1f2430" },
    ":focus": { color: "#1f2430" },
    ":disabled": { cursor: "not-allowed" },
    valid: { color: "#2b8a3e" },
    invalid: { color: "#c92a2a" },
  };

  function watch(name, field) {
    var container = document.getElementById(name + "-container");
    field.on("load", function () {
      fields[name].loaded = true;
      updatePayButton();
    });
    field.on("focus", function () {
      container.classList.add("focused");
    });
    field.on("blur", function () {
      container.classList.remove("focused");
      var state = fields[name];
      if (!state.empty && !state.valid) fieldError(name, "Enter a valid " + state.label + ".");
    });
    field.on("change", function (data) {
      var state = fields[name];
      state.valid = Boolean(data.valid);
      state.empty = Boolean(data.empty);
      if (name === "number") {
        var card = data.card && data.card.length ? data.card[0] : null;
        text("card-brand", card ? card.brandedName || card.name || "" : "");
      }
      if (state.valid || state.empty || data.couldBeValid) {
        fieldError(name, "");
      } else {
        fieldError(name, "Enter a valid " + state.label + ".");
      }
    });
    field.on("inputSubmitRequest", function () {
      pay();
    });
  }

  try {
    var flex = new Flex(config.captureContext);
    microform = flex.microform({ styles: styles });
    var number = microform.createField("number", { placeholder: "1234 1234 1234 1234" });
    var securityCode = microform.createField("securityCode", { placeholder: "CVC" });
    watch("number", number);
    watch("securityCode", securityCode);
    number.load("#number-container");
    securityCode.load("#securityCode-container");
  } catch (err) {
    microform = null;
    showMicroformError(err);
  }
  window.setTimeout(function () {
    if (microform && !(fields.number.loaded && fields.securityCode.loaded)) {
      pageError(
        "The card fields did not load. Is this page's origin (" + window.location.origin +
          ") one of the capture context's targetOrigins?"
      );
    }
  }, LOAD_TIMEOUT_MS);

  function pay() {
    if (busy || !microform) return;
    clearErrors();
    var month = document.getElementById("expMonth").value;
    var year = document.getElementById("expYear").value;
    var problems = false;
    if (fields.number.empty || !fields.number.valid) {
      fieldError("number", fields.number.empty ? "Enter the card number." : "Enter a valid card number.");
      problems = true;
    }
    if (fields.securityCode.empty || !fields.securityCode.valid) {
      fieldError("securityCode", fields.securityCode.empty ? "Enter the security code." : "Enter a valid security code.");
      problems = true;
    }
    if (!month || !year) {
      text("expiry-error", "Choose the expiry month and year.");
      problems = true;
    }
    if (problems) return;

    busy = true;
    updatePayButton();
    statusLine.textContent = "Securing your card details…";
    microform.createToken({ expirationMonth: month, expirationYear: year }, function (err, token) {
      if (err) {
        busy = false;
        updatePayButton();
        statusLine.textContent = "";
        showMicroformError(err);
        return;
      }
      statusLine.textContent = "Verifying…";
      fetch("/pay", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ sessionId: config.sessionId, transientToken: token }),
        credentials: "same-origin",
      })
        .then(function (response) {
          return response.json().then(function (body) {
            return { status: response.status, body: body };
          });
        })
        .then(function (answer) {
          showResult(answer.body);
          if (answer.status === 200 && answer.body.verified) {
            statusLine.textContent = "Payment details verified.";
            form.classList.add("done");
          } else {
            busy = false;
            statusLine.textContent = "";
            var error = answer.body.error || {};
            pageError("The payment was not accepted (" + (error.code || "HTTP " + answer.status) + "): " + (error.message || ""));
          }
          updatePayButton();
        })
        .catch(function (error) {
          busy = false;
          updatePayButton();
          statusLine.textContent = "";
          pageError("The shop could not be reached: " + error);
        });
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    pay();
  });
})();
