// Preloaded into the Node proxy (node -r): @fal-ai/server-proxy only accepts fal hosts in
// x-fal-target-url (its default allow-list is fal.run/** and queue.fal.run/**), so the
// benchmark sends real fal URLs and this shim rewrites them to the local stubs before the
// proxy's fetch() goes out. It wraps globalThis.fetch before the proxy module is loaded.
// BENCH_REWRITES is a JSON object: {"https://queue.fal.run": "http://127.0.0.1:PORT/queue", ...}
"use strict";
const rewrites = Object.entries(JSON.parse(process.env.BENCH_REWRITES || "{}"));
const realFetch = globalThis.fetch;
globalThis.fetch = (input, init) => {
  if (typeof input === "string") {
    for (const [from, to] of rewrites) {
      if (input.startsWith(from + "/")) {
        input = to + input.slice(from.length);
        break;
      }
    }
  }
  return realFetch(input, init);
};
