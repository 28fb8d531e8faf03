/*
 * The Microform field iframe (served from the Flex origin, framed only by the session's
 * targetOrigins through CSP frame-ancestors). One <input> per iframe: the card number or
 * the security code. Their values stay here: the page gets change events (brand,
 * validity), never a digit.
 *
 * Messages with the page: window.postMessage naming the exact origin each way; a message
 * is taken only from window.parent, and after "init" only from the origin that was checked
 * then. The number iframe gets the security code from its sibling over a BroadcastChannel
 * (same origin, never through the page), encrypts the card as a compact JWE (RSA-OAEP-256
 * + A256GCM, WebCrypto) to the capture context's one-time key, posts it to flx.origin +
 * flx.path and hands the page only the transient token.
 *
 * The capture context's signature is not verified here either (no trusted key); the
 * context is held to the server-rendered targetOrigins and to this document's key id,
 * and the Flex origin refuses a JWE made with a context it did not issue.
 */
(() => {
  "use strict";

  const SOURCE = "flex-microform";
  const FIELD_SOURCE = "flex-microform-field";
  const SIBLING_TIMEOUT_MS = 3000;
  const config = JSON.parse(document.getElementById("mf-config").textContent);
  const field = config.field;
  const kid = config.kid;
  const input = document.getElementById("mf-input");

  const originOf = (value) => {
    try {
      return new URL(String(value)).origin;
    } catch (e) {
      return null;
    }
  };
  const allowedOrigins = config.targetOrigins.map(originOf).filter(Boolean);

  // network, Cybersource card type, prefix ranges, lengths, security code
  const BRANDS = [
    ["visa", "Visa", "001", "VISA", [["4", "4"]], [13, 16, 19], "CVV", [3]],
    ["mastercard", "Mastercard", "002", "MASTERCARD", [["51", "55"], ["2221", "2720"]], [16], "CVC", [3]],
    ["amex", "American Express", "003", "AMEX", [["34", "34"], ["37", "37"]], [15], "CID", [4]],
    ["discover", "Discover", "004", "DISCOVER", [["6011", "6011"], ["644", "649"], ["65", "65"]], [16, 17, 18, 19], "CID", [3]],
    ["diners-club", "Diners Club", "005", "DINERSCLUB", [["300", "305"], ["36", "36"], ["38", "39"]], [14, 15, 16, 17, 18, 19], "CVV", [3]],
    ["jcb", "JCB", "007", "JCB", [["3528", "3589"]], [16, 17, 18, 19], "CVV", [3]],
    [
      "maestro",
      "Maestro",
      "042",
      "MAESTRO",
      [["5018", "5018"], ["5020", "5020"], ["5038", "5038"], ["5893", "5893"], ["6304", "6304"], ["6759", "6759"], ["6761", "6763"]],
      [12, 13, 14, 15, 16, 17, 18, 19],
      "CVC",
      [3],
    ],
    ["unionpay", "China UnionPay", "062", "CUP", [["62", "62"]], [16, 17, 18, 19], "CVN", [3]],
  ].map(([name, brandedName, cybsCardType, network, ranges, lengths, codeName, codeLengths]) => ({
    name,
    brandedName,
    cybsCardType,
    network,
    ranges,
    lengths,
    codeName,
    codeLengths,
  }));

  let claims = null;
  let captureContext = null;
  let parentOrigin = null;
  let instance = null;
  let channel = null;
  let codeLengths = [3, 4];
  let lastCard = "";

  // -- styles: base sheet plus the merchant's, whitelisted (constructable sheets, no inline CSS)

  const STYLE_PROPERTIES = new Set([
    "color",
    "cursor",
    "font",
    "font-family",
    "font-kerning",
    "font-size",
    "font-size-adjust",
    "font-stretch",
    "font-style",
    "font-variant",
    "font-variant-caps",
    "font-variant-numeric",
    "font-weight",
    "letter-spacing",
    "line-height",
    "opacity",
    "text-align",
    "text-shadow",
    "text-rendering",
    "transition",
    "-webkit-font-smoothing",
    "-moz-osx-font-smoothing",
    "-webkit-tap-highlight-color",
  ]);
  const STYLE_SELECTORS = {
    input: "input",
    "::placeholder": "input::placeholder",
    ":focus": "input:focus",
    ":hover": "input:hover",
    ":disabled": "input:disabled",
    valid: "input.valid",
    invalid: "input.invalid",
  };
  const SAFE_VALUE = /^[a-zA-Z0-9#%.,()\s'"/+-]*$/;
  const UNSAFE_VALUE = /url\s*\(|expression|image|attr\s*\(|var\s*\(|@import|\\/i;
  const BASE_CSS =
    "html,body{margin:0;padding:0;height:100%;overflow:hidden;background:transparent}" +
    "input{box-sizing:border-box;display:block;width:100%;height:100%;margin:0;padding:0;border:0;outline:0;" +
    "background:transparent;font:inherit;font-size:16px;color:inherit}";

  function css(styles) {
    let text = BASE_CSS;
    if (!styles || typeof styles !== "object") return text;
    for (const [key, selector] of Object.entries(STYLE_SELECTORS)) {
      const rules = styles[key];
      if (!rules || typeof rules !== "object") continue;
      const declarations = [];
      for (const [rawName, rawValue] of Object.entries(rules)) {
        const name = rawName.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase());
        const value = String(rawValue);
        if (STYLE_PROPERTIES.has(name) && SAFE_VALUE.test(value) && !UNSAFE_VALUE.test(value) && value.length < 200) {
          declarations.push(name + ":" + value);
        }
      }
      if (declarations.length) text += selector + "{" + declarations.join(";") + "}";
    }
    return text;
  }

  function applyStyles(styles) {
    try {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(css(styles));
      document.adoptedStyleSheets = [sheet];
    } catch (e) {
      // no constructable stylesheets: keep the input usable with the base look only
      Object.assign(input.style, { width: "100%", border: "0", outline: "0", background: "transparent" });
    }
  }
  applyStyles(null);

  // -- card rules -------------------------------------------------------------------

  const digitsOf = (value) => String(value).replace(/\D/g, "");

  function prefixMatches(digits, low, high) {
    const n = Math.min(digits.length, low.length);
    const head = digits.slice(0, n);
    return low.slice(0, n) <= head && head <= high.slice(0, n);
  }

  function luhn(digits) {
    let total = 0;
    for (let i = 0; i < digits.length; i++) {
      let d = digits.charCodeAt(digits.length - 1 - i) - 48;
      if (i % 2) {
        d *= 2;
        if (d > 9) d -= 9;
      }
      total += d;
    }
    return total % 10 === 0;
  }

  function allowedNetwork(brand) {
    const networks = claims && claims.ctx[0].data.allowedCardNetworks;
    return !Array.isArray(networks) || networks.includes(brand.network);
  }

  function numberState() {
    const digits = digitsOf(input.value);
    const candidates = digits ? BRANDS.filter((b) => b.ranges.some(([lo, hi]) => prefixMatches(digits, lo, hi))) : [];
    const brand = candidates.length === 1 ? candidates[0] : null;
    const valid = Boolean(brand && brand.lengths.includes(digits.length) && luhn(digits) && allowedNetwork(brand));
    const couldBeValid =
      !digits || valid || candidates.some((b) => allowedNetwork(b) && digits.length < Math.max(...b.lengths));
    return { digits, candidates, brand, valid, couldBeValid, empty: !digits };
  }

  function codeState() {
    const digits = digitsOf(input.value);
    const valid = codeLengths.includes(digits.length);
    return { digits, valid, couldBeValid: !digits || valid || digits.length < Math.max(...codeLengths), empty: !digits };
  }

  const publicCard = (b) => ({
    name: b.name,
    brandedName: b.brandedName,
    cybsCardType: b.cybsCardType,
    valid: allowedNetwork(b),
    lengths: b.lengths.slice(),
    securityCode: { name: b.codeName, size: Math.max(...b.codeLengths) },
  });

  // -- messages ---------------------------------------------------------------------

  function toParent(msg) {
    if (!parentOrigin) return;
    window.parent.postMessage(Object.assign({ source: FIELD_SOURCE, field, instance }, msg), parentOrigin);
  }

  function emit(name, data) {
    toParent({ type: "event", name, data: data || {} });
  }

  function announce() {
    if (window.parent === window) return;
    const msg = { source: FIELD_SOURCE, type: "ready", field };
    const ancestors = window.location.ancestorOrigins;
    const parent = ancestors && ancestors.length ? ancestors[0] : null;
    // the message carries nothing secret; still it goes only to an origin of the session
    const targets = parent ? allowedOrigins.filter((o) => o === parent) : allowedOrigins;
    for (const origin of targets) {
      try {
        window.parent.postMessage(msg, origin);
      } catch (e) {
        /* an origin the browser cannot target */
      }
    }
  }

  function refuse(event, msg, reason, message) {
    input.disabled = true;
    input.value = "";
    try {
      event.source.postMessage(
        { source: FIELD_SOURCE, field, instance: msg.instance, type: "error", reason, message },
        event.origin,
      );
    } catch (e) {
      /* an opaque origin cannot be answered */
    }
  }

  function decodeClaims(jwt) {
    const part = String(jwt).split(".")[1] || "";
    let b64 = part.replace(/-/g, "+").replace(/_/g, "/");
    b64 += "===".slice((b64.length + 3) % 4);
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  }

  function init(event, msg) {
    if (claims) return;
    if (!allowedOrigins.includes(event.origin)) {
      return refuse(event, msg, "CAPTURE_CONTEXT_INVALID", "The page's origin is not one of the session's targetOrigins");
    }
    let decoded;
    try {
      decoded = decodeClaims(msg.captureContext);
    } catch (e) {
      return refuse(event, msg, "CAPTURE_CONTEXT_INVALID", "The capture context is not a JWT");
    }
    const ctx = Array.isArray(decoded.ctx) ? decoded.ctx[0] : null;
    const origins = ctx && ctx.data && Array.isArray(ctx.data.targetOrigins) ? ctx.data.targetOrigins.map(originOf) : [];
    if (!decoded.flx || !decoded.flx.jwk || decoded.flx.jwk.kid !== kid || !ctx || !String(ctx.type).startsWith("mf-")) {
      return refuse(event, msg, "CAPTURE_CONTEXT_INVALID", "The capture context is not the one this field was made for");
    }
    if (!origins.includes(event.origin)) {
      return refuse(event, msg, "CAPTURE_CONTEXT_INVALID", "The page's origin is not one of the context's targetOrigins");
    }
    if (typeof decoded.exp === "number" && decoded.exp * 1000 <= Date.now()) {
      return refuse(event, msg, "CAPTURE_CONTEXT_EXPIRED", "The capture context has expired");
    }
    claims = decoded;
    captureContext = msg.captureContext;
    parentOrigin = event.origin;
    instance = String(msg.instance);
    applyStyles(msg.styles);
    update(msg.options || {});
    channel = new BroadcastChannel("flex-microform:" + kid + ":" + instance);
    channel.onmessage = onSibling;
    toParent({ type: "loaded" });
    if (field === "number") announceCard(numberState());
  }

  function update(options) {
    if (typeof options.placeholder === "string") input.placeholder = options.placeholder;
    input.disabled = options.disabled === true;
  }

  window.addEventListener("message", (event) => {
    if (event.source !== window.parent) return;
    const msg = event.data;
    if (!msg || typeof msg !== "object" || msg.source !== SOURCE) return;
    if (msg.type === "init") return init(event, msg);
    if (!claims || event.origin !== parentOrigin || String(msg.instance) !== instance) return;
    if (msg.type === "clear") {
      input.value = "";
      onInput();
    } else if (msg.type === "focus") {
      input.focus();
    } else if (msg.type === "update") {
      update(Object.assign({ disabled: input.disabled }, msg.options || {}));
    } else if (msg.type === "tokenize" && field === "number") {
      tokenize(msg);
    }
  });

  // -- the sibling field (same origin, never through the page) -----------------------

  const waiting = new Map();

  function onSibling(event) {
    const msg = event.data || {};
    if (field === "securityCode" && msg.type === "card") {
      codeLengths = Array.isArray(msg.codeLengths) && msg.codeLengths.length ? msg.codeLengths : [3, 4];
      input.maxLength = Math.max(...codeLengths);
      onInput();
    } else if (field === "securityCode" && msg.type === "securityCode-request") {
      const state = codeState();
      channel.postMessage({ type: "securityCode-value", nonce: msg.nonce, value: state.digits, valid: state.valid });
    } else if (field === "number" && msg.type === "securityCode-value" && waiting.has(msg.nonce)) {
      waiting.get(msg.nonce)(msg);
    }
  }

  function askSecurityCode() {
    const nonce = crypto.randomUUID();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        waiting.delete(nonce);
        resolve(null);
      }, SIBLING_TIMEOUT_MS);
      waiting.set(nonce, (msg) => {
        clearTimeout(timer);
        waiting.delete(nonce);
        resolve(msg);
      });
      channel.postMessage({ type: "securityCode-request", nonce });
    });
  }

  function announceCard(state) {
    const lengths = state.brand ? state.brand.codeLengths : [3, 4];
    const key = lengths.join(",");
    if (channel && key !== lastCard) {
      lastCard = key;
      channel.postMessage({ type: "card", codeLengths: lengths });
    }
  }

  // -- the input ----------------------------------------------------------------------

  function onInput() {
    const max = field === "number" ? 19 : Math.max(...codeLengths);
    const digits = digitsOf(input.value).slice(0, max);
    if (input.value !== digits) input.value = digits;
    if (field === "number") {
      const state = numberState();
      input.classList.toggle("valid", state.valid);
      input.classList.toggle("invalid", !state.couldBeValid);
      announceCard(state);
      emit("change", {
        card: state.candidates.map(publicCard),
        valid: state.valid,
        couldBeValid: state.couldBeValid,
        empty: state.empty,
      });
    } else {
      const state = codeState();
      input.classList.toggle("valid", state.valid);
      input.classList.toggle("invalid", !state.couldBeValid);
      emit("change", { valid: state.valid, couldBeValid: state.couldBeValid, empty: state.empty });
    }
  }

  input.name = field === "number" ? "cardnumber" : "cvc";
  input.setAttribute("inputmode", "numeric");
  input.setAttribute("autocomplete", field === "number" ? "cc-number" : "cc-csc");
  input.setAttribute("aria-label", field === "number" ? "Card number" : "Security code");
  input.maxLength = field === "number" ? 23 : 4;
  input.spellcheck = false;
  input.addEventListener("input", onInput);
  input.addEventListener("focus", () => emit("focus"));
  input.addEventListener("blur", () => emit("blur"));
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") emit("inputSubmitRequest");
  });

  // -- tokenizing (number field only) ---------------------------------------------------

  const utf8 = (text) => new TextEncoder().encode(text);

  function b64url(bytes) {
    let binary = "";
    for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  async function encrypt(plaintext) {
    const jwk = claims.flx.jwk;
    const protectedHeader = b64url(utf8(JSON.stringify({ kid: jwk.kid, alg: "RSA-OAEP-256", enc: "A256GCM" })));
    const rsa = await crypto.subtle.importKey(
      "jwk",
      { kty: "RSA", n: jwk.n, e: jwk.e, alg: "RSA-OAEP-256", ext: true },
      { name: "RSA-OAEP", hash: "SHA-256" },
      false,
      ["encrypt"],
    );
    const cek = crypto.getRandomValues(new Uint8Array(32));
    const aes = await crypto.subtle.importKey("raw", cek, { name: "AES-GCM" }, false, ["encrypt"]);
    const iv = crypto.getRandomValues(new Uint8Array(12));
    // WebCrypto answers ciphertext || 16-byte tag; the AAD is the ASCII of the encoded header
    const sealed = new Uint8Array(
      await crypto.subtle.encrypt(
        { name: "AES-GCM", iv, additionalData: utf8(protectedHeader), tagLength: 128 },
        aes,
        utf8(plaintext),
      ),
    );
    const wrapped = new Uint8Array(await crypto.subtle.encrypt({ name: "RSA-OAEP" }, rsa, cek));
    cek.fill(0);
    return [
      protectedHeader,
      b64url(wrapped),
      b64url(iv),
      b64url(sealed.slice(0, sealed.length - 16)),
      b64url(sealed.slice(sealed.length - 16)),
    ].join(".");
  }

  async function tokenize(msg) {
    const reply = (answer) => toParent(Object.assign({ id: msg.id }, answer));
    const fail = (reason, message, details) => reply({ type: "token-error", reason, message, details: details || [] });
    const options = msg.options && typeof msg.options === "object" ? msg.options : {};
    const params = [];
    if (options.expirationMonth !== undefined && !/^(0[1-9]|1[0-2])$/.test(String(options.expirationMonth))) {
      params.push({ location: "expirationMonth", message: "Invalid value" });
    }
    if (options.expirationYear !== undefined && !/^[0-9]{4}$/.test(String(options.expirationYear))) {
      params.push({ location: "expirationYear", message: "Invalid value" });
    }
    if (options.type !== undefined && !/^[0-9]{3}$/.test(String(options.type))) {
      params.push({ location: "type", message: "Invalid value" });
    }
    if (params.length) return fail("CREATE_TOKEN_VALIDATION_PARAMS", "One or more createToken parameters are invalid", params);
    if (typeof claims.exp === "number" && claims.exp * 1000 <= Date.now()) {
      return fail("CAPTURE_CONTEXT_EXPIRED", "The capture context has expired");
    }

    const state = numberState();
    const details = [];
    if (!state.valid) details.push({ location: "number", message: "Validation error" });
    let securityCode = null;
    if (msg.securityCode) {
      const answer = await askSecurityCode();
      // held to the brand's length here too: the sibling may have missed the brand
      const lengths = state.brand ? state.brand.codeLengths : [3, 4];
      if (!answer || !answer.valid || !lengths.includes(String(answer.value).length)) {
        details.push({ location: "securityCode", message: "Validation error" });
      } else {
        securityCode = String(answer.value);
      }
    }
    if (details.length) return fail("CREATE_TOKEN_VALIDATION_FIELDS", "One or more fields are invalid", details);

    const card = { number: state.digits };
    if (securityCode) card.securityCode = securityCode;
    if (options.expirationMonth !== undefined) card.expirationMonth = String(options.expirationMonth);
    if (options.expirationYear !== undefined) card.expirationYear = String(options.expirationYear);
    card.type = options.type !== undefined ? String(options.type) : state.brand.cybsCardType;
    let jwe;
    try {
      jwe = await encrypt(JSON.stringify({ data: { paymentInformation: { card } }, context: captureContext, index: 0 }));
    } catch (e) {
      return fail("CREATE_TOKEN_ENCRYPTION_ERROR", "The card data could not be encrypted");
    }
    let response;
    let text;
    try {
      response = await fetch(claims.flx.origin + claims.flx.path, {
        method: "POST",
        headers: { "Content-Type": "application/jwt; charset=utf-8", Accept: "application/jwt" },
        body: jwe,
        credentials: "omit",
        cache: "no-store",
        referrerPolicy: "no-referrer",
      });
      text = await response.text();
    } catch (e) {
      return fail("CREATE_TOKEN_XHR_ERROR", "The token request failed (network error)");
    }
    if (response.ok) return reply({ type: "token", token: text.trim() });
    if (response.status === 400) {
      let status = {};
      try {
        status = JSON.parse(text).responseStatus || {};
      } catch (e) {
        /* not JSON: no details to pass on */
      }
      const serverDetails = Array.isArray(status.details)
        ? status.details.map((d) => ({ location: String(d.location || ""), message: String(d.message || "") }))
        : [];
      return fail("CREATE_TOKEN_VALIDATION_SERVERSIDE", String(status.message || "The token request was refused"), serverDetails);
    }
    return fail("CREATE_TOKEN_XHR_ERROR", "The token request failed (HTTP " + response.status + ")");
  }

  announce();
})();
