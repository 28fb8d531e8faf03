/*
 * A Microform Integration v2-compatible client library, served by decline-rescue's
 * Cybersource emulator from its Flex origin (/microform/bundle/v2.0/flex-microform.min.js).
 *
 * The public API a checkout page uses is Cybersource's (window.Flex):
 *   const flex = new Flex(captureContext);
 *   const microform = flex.microform({ styles });
 *   const number = microform.createField("number", { placeholder: "Card number" });
 *   number.on("change", (data) => ...);   // {card: [...], valid, couldBeValid, empty}
 *   number.load("#number-container");
 *   microform.createToken({ expirationMonth: "12", expirationYear: "2031" }, (err, token) => ...);
 * Errors are MicroformError {name, reason, message, details: [{location, message}]}.
 *
 * The card fields are iframes from the context's mfOrigin: the number and security code
 * never enter this page. The number iframe collects the security code from its sibling
 * iframe itself (same origin, a BroadcastChannel), encrypts both to the context's one-time
 * key (a compact JWE) and posts it to flx.origin + flx.path; this page only ever receives
 * the transient token.
 *
 * The capture context's signature is not checked here: the page has no trusted key to
 * check it with (the merchant's server verified it), and the Flex origin refuses a JWE
 * made with a context it did not issue. Plain modern JavaScript, no build step, no
 * dependencies. Nothing here logs a field's value.
 */
(function (global) {
  "use strict";

  var IFRAME_PATH = "/microform/bundle/v2.0/iframe.html";
  var FIELD_TYPES = ["number", "securityCode"];
  var FIELD_EVENTS = ["change", "focus", "blur", "load", "unload", "inputSubmitRequest", "autocomplete", "error"];
  var TOKEN_TIMEOUT_MS = 30000;
  var SOURCE = "flex-microform";
  var FIELD_SOURCE = "flex-microform-field";

  class MicroformError extends Error {
    constructor(reason, message, details) {
      super(message);
      this.name = "MicroformError";
      this.reason = reason;
      this.message = message;
      this.details = Array.isArray(details) ? details : [];
    }
  }

  function randomId() {
    var bytes = new Uint8Array(12);
    global.crypto.getRandomValues(bytes);
    return Array.from(bytes, function (b) {
      return b.toString(16).padStart(2, "0");
    }).join("");
  }

  function decodePayload(jwt) {
    if (typeof jwt !== "string") {
      throw new MicroformError("CAPTURE_CONTEXT_INVALID", "The capture context must be a JWT string");
    }
    var parts = jwt.split(".");
    if (parts.length !== 3) {
      throw new MicroformError("CAPTURE_CONTEXT_INVALID", "The capture context is not a JWT");
    }
    try {
      var b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
      b64 += "===".slice((b64.length + 3) % 4);
      var bytes = Uint8Array.from(global.atob(b64), function (c) {
        return c.charCodeAt(0);
      });
      var claims = JSON.parse(new TextDecoder().decode(bytes));
      if (!claims || typeof claims !== "object") throw new Error("not an object");
      return claims;
    } catch (e) {
      throw new MicroformError("CAPTURE_CONTEXT_INVALID", "The capture context payload is not JSON");
    }
  }

  function microformData(claims) {
    var ctx = Array.isArray(claims.ctx) ? claims.ctx[0] : null;
    var flx = claims.flx;
    if (!ctx || typeof ctx.type !== "string" || ctx.type.indexOf("mf-") !== 0 || !ctx.data) {
      throw new MicroformError("CAPTURE_CONTEXT_INVALID", "The capture context is not a Microform capture context");
    }
    if (!flx || !flx.jwk || typeof flx.jwk.kid !== "string" || typeof flx.origin !== "string") {
      throw new MicroformError("CAPTURE_CONTEXT_INVALID", "The capture context has no Flex key or origin");
    }
    var data = ctx.data;
    if (!Array.isArray(data.targetOrigins) || typeof data.mfOrigin !== "string") {
      throw new MicroformError("CAPTURE_CONTEXT_INVALID", "The capture context has no targetOrigins or mfOrigin");
    }
    return data;
  }

  class Flex {
    constructor(captureContext) {
      this._captureContext = captureContext;
      this._claims = decodePayload(captureContext);
    }

    // microform({styles}) as in v2.0; microform("card", {styles}) as later v2 pages write it
    microform(typeOrOptions, maybeOptions) {
      var options = typeof typeOrOptions === "string" ? maybeOptions : typeOrOptions;
      return new Microform(this._captureContext, this._claims, options || {});
    }
  }

  class Microform {
    constructor(captureContext, claims, options) {
      var data = microformData(claims);
      var here = global.location.origin;
      var origins = data.targetOrigins.map(function (o) {
        return String(o).replace(/\/$/, "");
      });
      if (origins.indexOf(here) < 0) {
        throw new MicroformError(
          "CAPTURE_CONTEXT_INVALID",
          "This page's origin (" + here + ") is not one of the capture context's targetOrigins",
          [{ location: "targetOrigins", message: "does not include " + here }],
        );
      }
      if (typeof claims.exp === "number" && claims.exp * 1000 <= Date.now()) {
        throw new MicroformError("CAPTURE_CONTEXT_EXPIRED", "The capture context has expired");
      }
      this._captureContext = captureContext;
      this._claims = claims;
      this._mfOrigin = new URL(data.mfOrigin).origin;
      this._kid = claims.flx.jwk.kid;
      this._instance = randomId();
      this._styles = options.styles && typeof options.styles === "object" ? options.styles : {};
      this._fields = {};
      this._pending = {};
      this._onMessage = this._onMessage.bind(this);
      global.addEventListener("message", this._onMessage);
    }

    createField(type, options) {
      if (FIELD_TYPES.indexOf(type) < 0) {
        throw new MicroformError("CREATE_FIELD_INVALID_FIELD_TYPE", "Field type must be number or securityCode");
      }
      if (this._fields[type]) {
        throw new MicroformError("CREATE_FIELD_DUPLICATE", "A " + type + " field already exists in this microform");
      }
      var field = new Field(this, type, options || {});
      this._fields[type] = field;
      return field;
    }

    createToken(options, callback) {
      if (typeof options === "function") {
        callback = options;
        options = {};
      }
      var done = typeof callback === "function" ? callback : function () {};
      var reply = function (err, token) {
        setTimeout(function () {
          done(err, token);
        }, 0);
      };
      var problems = validateTokenOptions(options);
      if (problems.length) {
        reply(
          new MicroformError("CREATE_TOKEN_VALIDATION_PARAMS", "One or more createToken parameters are invalid", problems),
        );
        return;
      }
      var number = this._fields.number;
      if (!number || !number._loaded) {
        reply(new MicroformError("CREATE_TOKEN_NO_FIELDS_LOADED", "The number field must be loaded to create a token"));
        return;
      }
      var securityCode = this._fields.securityCode;
      var id = randomId();
      var self = this;
      var timer = setTimeout(function () {
        delete self._pending[id];
        done(new MicroformError("CREATE_TOKEN_TIMEOUT", "Creating the token took too long"));
      }, TOKEN_TIMEOUT_MS);
      this._pending[id] = function (err, token) {
        clearTimeout(timer);
        delete self._pending[id];
        done(err, token);
      };
      number._post({
        type: "tokenize",
        id: id,
        options: {
          expirationMonth: options.expirationMonth,
          expirationYear: options.expirationYear,
          type: options.type,
        },
        securityCode: Boolean(securityCode && securityCode._loaded),
      });
    }

    _onMessage(event) {
      if (event.origin !== this._mfOrigin) return;
      var msg = event.data;
      if (!msg || msg.source !== FIELD_SOURCE) return;
      for (var type in this._fields) {
        var field = this._fields[type];
        if (field._iframe && event.source === field._iframe.contentWindow) {
          field._onMessage(msg);
          return;
        }
      }
    }

    _tokenResult(msg) {
      var pending = this._pending[msg.id];
      if (!pending) return; // timed out, or not ours
      if (msg.type === "token" && typeof msg.token === "string") {
        pending(null, msg.token);
      } else {
        pending(new MicroformError(String(msg.reason || "CREATE_TOKEN_XHR_ERROR"), String(msg.message || ""), msg.details));
      }
    }
  }

  function validateTokenOptions(options) {
    var problems = [];
    if (!options || typeof options !== "object") {
      return [{ location: "options", message: "must be an object" }];
    }
    var known = ["expirationMonth", "expirationYear", "type"];
    Object.keys(options).forEach(function (key) {
      if (known.indexOf(key) < 0) problems.push({ location: key, message: "Unknown parameter" });
    });
    if (options.expirationMonth !== undefined && !/^(0[1-9]|1[0-2])$/.test(String(options.expirationMonth))) {
      problems.push({ location: "expirationMonth", message: "Invalid value" });
    }
    if (options.expirationYear !== undefined && !/^[0-9]{4}$/.test(String(options.expirationYear))) {
      problems.push({ location: "expirationYear", message: "Invalid value" });
    }
    if (options.type !== undefined && !/^[0-9]{3}$/.test(String(options.type))) {
      problems.push({ location: "type", message: "Invalid value" });
    }
    return problems;
  }

  class Field {
    constructor(microform, type, options) {
      this._microform = microform;
      this._type = type;
      this._options = { placeholder: typeof options.placeholder === "string" ? options.placeholder : "" };
      if (options.title) this._options.title = String(options.title);
      if (options.disabled) this._options.disabled = true;
      this._handlers = {};
      this._iframe = null;
      this._loaded = false;
    }

    on(name, handler) {
      if (FIELD_EVENTS.indexOf(name) < 0) {
        throw new MicroformError("FIELD_SUBSCRIBE_UNSUPPORTED_EVENT", "Unsupported event: " + name);
      }
      if (typeof handler !== "function") {
        throw new MicroformError("FIELD_SUBSCRIBE_INVALID_CALLBACK", "The event handler must be a function");
      }
      (this._handlers[name] = this._handlers[name] || []).push(handler);
    }

    off(name, handler) {
      var list = this._handlers[name] || [];
      this._handlers[name] = handler ? list.filter((h) => h !== handler) : [];
    }

    load(container) {
      var element = typeof container === "string" ? global.document.querySelector(container) : container;
      if (!element || typeof element.appendChild !== "function") {
        throw new MicroformError("FIELD_LOAD_CONTAINER_SELECTOR", "No container element matches the selector");
      }
      if (this._iframe) {
        throw new MicroformError("FIELD_ALREADY_LOADED", "This field is already loaded");
      }
      var m = this._microform;
      var src = new URL(IFRAME_PATH, m._mfOrigin);
      src.searchParams.set("kid", m._kid);
      src.searchParams.set("field", this._type);
      var iframe = global.document.createElement("iframe");
      iframe.src = src.toString();
      iframe.title = this._options.title || (this._type === "number" ? "Secure card number" : "Secure security code");
      iframe.name = "flex-microform-" + this._type;
      iframe.setAttribute("frameborder", "0");
      iframe.setAttribute("scrolling", "no");
      iframe.setAttribute("referrerpolicy", "no-referrer");
      iframe.setAttribute("allow", "payment");
      iframe.style.cssText = "display:block;width:100%;height:100%;border:0;margin:0;padding:0;background:transparent";
      this._iframe = iframe;
      element.appendChild(iframe);
    }

    unload() {
      if (!this._iframe) return;
      this._iframe.remove();
      this._iframe = null;
      this._loaded = false;
      this._emit("unload", {});
    }

    clear() {
      this._post({ type: "clear" });
    }

    focus() {
      this._post({ type: "focus" });
    }

    update(options) {
      var changes = {};
      if (options && typeof options.placeholder === "string") changes.placeholder = options.placeholder;
      if (options && typeof options.disabled === "boolean") changes.disabled = options.disabled;
      Object.assign(this._options, changes);
      this._post({ type: "update", options: changes });
    }

    _post(msg) {
      var win = this._iframe && this._iframe.contentWindow;
      if (!win) return;
      msg.source = SOURCE;
      msg.instance = this._microform._instance;
      win.postMessage(msg, this._microform._mfOrigin);
    }

    _emit(name, data) {
      (this._handlers[name] || []).slice().forEach(function (handler) {
        try {
          handler(data);
        } catch (e) {
          setTimeout(function () {
            throw e;
          }, 0);
        }
      });
    }

    _onMessage(msg) {
      var m = this._microform;
      if (msg.type === "ready") {
        this._post({
          type: "init",
          captureContext: m._captureContext,
          styles: m._styles,
          options: this._options,
        });
        return;
      }
      if (msg.instance !== m._instance) return;
      if (msg.type === "loaded") {
        this._loaded = true;
        this._emit("load", {});
      } else if (msg.type === "error") {
        this._loaded = false;
        this._emit("error", new MicroformError(String(msg.reason), String(msg.message || ""), msg.details));
      } else if (msg.type === "event" && FIELD_EVENTS.indexOf(msg.name) >= 0) {
        this._emit(msg.name, msg.data || {});
      } else if ((msg.type === "token" || msg.type === "token-error") && this._type === "number") {
        m._tokenResult(msg);
      }
    }
  }

  Flex.MicroformError = MicroformError;
  global.Flex = Flex;
})(window);
