// The browser side of the browser tests (tests/support/browser.py): the official client,
// through falproxy, via CORS. The page reads from its query string the proxy URL, a bearer
// token, the steps to run (default "subscribe,stream"; also "upload" and "realtime") and,
// for realtime, the fake fal's ws:// base URL; it renders what came back into #result.
import { fal } from "@fal-ai/client";

const params = new URLSearchParams(location.search);
const token = params.get("token");
const steps = (params.get("steps") || "subscribe,stream").split(",");
const fake = params.get("fake");

if (fake) {
  // The client opens realtime sockets straight to wss://fal.run (never through the proxy):
  // send them to the fake fal instead, as a browser would reach fal.
  const NativeWebSocket = window.WebSocket;
  window.WebSocket = class extends NativeWebSocket {
    constructor(url, protocols) {
      super(String(url).replace("wss://fal.run/", `${fake}/run/`), protocols);
    }
  };
}

fal.config({
  proxyUrl: params.get("proxy"),
  // How a browser app authenticates to the sidecar: add the bearer token to every call.
  requestMiddleware: async (request) => ({
    ...request,
    headers: { ...request.headers, authorization: `Bearer ${token}` },
  }),
});

async function step(name, report, body) {
  if (!steps.includes(name)) return;
  try {
    report[name] = { ok: true, value: await body() };
  } catch (error) {
    report[name] = { ok: false, error: String(error && (error.message || error)) };
  }
}

function realtimeResult() {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no realtime result within 20 s")), 20000);
    const connection = fal.realtime.connect("fal-ai/fast-lcm-diffusion", {
      // The default token provider: the token is minted through the proxy (POST /tokens/).
      onResult: (result) => {
        clearTimeout(timer);
        connection.close();
        resolve({ images: result.images.length, requestId: result.request_id });
      },
      onError: (error) => {
        clearTimeout(timer);
        reject(error);
      },
    });
    connection.send({ prompt: "a fox in real time", request_id: "browser-realtime" });
  });
}

async function main() {
  const report = {};
  const input = { prompt: "a fox in a browser" };
  await step("subscribe", report, async () => {
    const updates = [];
    const { data, requestId } = await fal.subscribe("fal-ai/flux/dev", {
      input,
      pollInterval: 100,
      onQueueUpdate: (update) => updates.push(update.status),
    });
    return { images: data.images.length, requestId, last: updates[updates.length - 1] };
  });
  await step("stream", report, async () => {
    const stream = await fal.stream("fal-ai/flux/dev", { input });
    let events = 0;
    for await (const _event of stream) events += 1;
    const done = await stream.done();
    return { events, images: done.images.length };
  });
  await step("upload", report, async () => {
    const blob = new Blob(["hello from a browser"], { type: "text/plain" });
    const url = await fal.storage.upload(blob);
    return { body: await (await fetch(url)).text() };
  });
  await step("realtime", report, realtimeResult);
  const out = document.getElementById("result");
  out.textContent = JSON.stringify(report);
  out.dataset.done = "yes";
}

main();
