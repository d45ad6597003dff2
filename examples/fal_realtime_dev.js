// Developing `fal.realtime.connect` in a browser against the fake fal (docs/realtime.md).
//
// The official client (@fal-ai/client) mints a short-lived token through your proxy, then
// opens its socket straight to wss://fal.run: never through the proxy, so against the fake
// the socket goes to the real fal and fails ("Unknown error"). Two helpers, for a page that
// imports the official client:
//
//   import { fal } from "@fal-ai/client";
//   import { proxyTokenProvider, sendRealtimeToFake } from "./fal_realtime_dev.js";
//
//   fal.config({ proxyUrl: "/api/fal/proxy" });
//   sendRealtimeToFake("http://localhost:8000/_fake");   // development only
//   const connection = fal.realtime.connect("fal-ai/fast-lcm-diffusion", {
//     tokenProvider: proxyTokenProvider({ proxyUrl: "/api/fal/proxy" }),
//     tokenExpirationSeconds: 120,
//     onResult: (result) => console.log(result.images[0]),
//   });
//   connection.send({ prompt: "a lighthouse at dusk" });
//
// proxyTokenProvider is for production too: it mints tokens through the proxy as the
// client's default provider does (which the client now warns is deprecated).
// sendRealtimeToFake is for development only: it sends the client's realtime sockets to the
// fake fal instead of wss://fal.run. Plain ES module, no dependency; copy it into your app.

// Where the official client dials realtime apps (docs/fal-protocol.md).
const FAL_REALTIME_BASE = "wss://fal.run/";
// fal's namespaced app ids: "<namespace>/<owner>/<alias>" (docs/fal-protocol.md).
const NAMESPACES = new Set(["workflows", "comfy"]);

/**
 * Make every `new WebSocket("wss://fal.run/...")` on this page open the fake fal instead.
 *
 * `fakeUrl` is where the fake serves fal.run's paths: `http://HOST:PORT/_fake` under
 * `falproxy serve --fake`, or `http://HOST:PORT` for `falproxy fake`. Sockets to any other
 * address are left alone. Returns a function that restores the browser's WebSocket.
 */
export function sendRealtimeToFake(fakeUrl) {
  const base = new URL(String(fakeUrl).replace(/\/+$/, "") + "/run/");
  base.protocol = base.protocol === "https:" ? "wss:" : "ws:";
  const NativeWebSocket = globalThis.WebSocket;
  class FakeRoutedWebSocket extends NativeWebSocket {
    constructor(url, protocols) {
      const text = String(url);
      const routed = text.startsWith(FAL_REALTIME_BASE)
        ? base.href + text.slice(FAL_REALTIME_BASE.length)
        : text;
      super(routed, protocols);
    }
  }
  globalThis.WebSocket = FakeRoutedWebSocket;
  return () => {
    globalThis.WebSocket = NativeWebSocket;
  };
}

/** The alias fal's tokens are scoped to: "fal-ai/fast-lcm-diffusion/realtime" -> "fast-lcm-diffusion". */
export function appAlias(app) {
  const parts = String(app).split("/");
  return NAMESPACES.has(parts[0]) ? parts[2] : parts[1];
}

/**
 * A `tokenProvider` for `fal.realtime.connect` that mints tokens through the proxy.
 *
 * Options: `proxyUrl` (default "/api/fal/proxy"); `headers`, an object or a function
 * returning one (sync or async), added to the mint call (your app's own authorization, such
 * as a bearer token for FALPROXY_AUTH_TOKENS); `expirationSeconds` (default 120: pass the
 * same number as the connection's `tokenExpirationSeconds`, so the client refreshes the
 * token in time; the proxy caps it at FALPROXY_MAX_TOKEN_EXPIRATION).
 */
export function proxyTokenProvider({
  proxyUrl = "/api/fal/proxy",
  headers = {},
  expirationSeconds = 120,
} = {}) {
  return async (app) => {
    const extra = typeof headers === "function" ? await headers() : headers;
    const response = await fetch(proxyUrl, {
      method: "POST",
      headers: {
        ...extra,
        "content-type": "application/json",
        "x-fal-target-url": "https://rest.fal.ai/tokens/",
      },
      body: JSON.stringify({
        allowed_apps: [appAlias(app)],
        token_expiration: expirationSeconds,
      }),
    });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const detail = body && typeof body.detail === "string" ? body.detail : response.statusText;
      throw new Error(`token minting refused (${response.status}): ${detail}`);
    }
    return typeof body === "string" ? body : body.detail;
  };
}
