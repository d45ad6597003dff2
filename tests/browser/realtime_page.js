// The page of tests/live/test_browser_realtime_example.py: `fal.realtime.connect` from the
// official client against `falproxy serve --fake`, with the helpers users copy from
// examples/fal_realtime_dev.js (copied beside this file when bundled). Query: `proxy` (the
// proxy route's URL), `fake` (where the fake serves fal.run's paths), `token` (a bearer
// token for the proxy, optional), `step` ("realtime", the default, or "mint": only call the
// token provider). Renders {<step>, warnings} into #result.
import { fal } from "@fal-ai/client";
import { proxyTokenProvider, sendRealtimeToFake } from "./fal_realtime_dev.js";

const params = new URLSearchParams(location.search);
const proxyUrl = params.get("proxy");
const token = params.get("token");
const warnings = [];
const nativeWarn = console.warn;
console.warn = (...args) => {
  warnings.push(args.map(String).join(" "));
  nativeWarn(...args);
};

const bearer = token ? { authorization: `Bearer ${token}` } : {};
fal.config({
  proxyUrl,
  requestMiddleware: async (request) => ({
    ...request,
    headers: { ...request.headers, ...bearer },
  }),
});
sendRealtimeToFake(params.get("fake"));

function realtimeResult() {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no realtime result within 20 s")), 20000);
    const connection = fal.realtime.connect("fal-ai/fast-lcm-diffusion", {
      tokenProvider: proxyTokenProvider({ proxyUrl, headers: async () => bearer }),
      tokenExpirationSeconds: 120,
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
    connection.send({ prompt: "a fox in real time", request_id: "example-realtime" });
  });
}

// The provider alone: the client itself drops a failed mint without calling onError.
async function mintResult() {
  const provider = proxyTokenProvider({ proxyUrl, headers: bearer });
  const minted = await provider("fal-ai/fast-lcm-diffusion/realtime");
  return { type: typeof minted, length: minted.length };
}

async function main() {
  const report = { warnings };
  const step = params.get("step") || "realtime";
  try {
    const value = await (step === "mint" ? mintResult() : realtimeResult());
    report[step] = { ok: true, value };
  } catch (error) {
    report[step] = { ok: false, error: String(error && (error.message || error)) };
  }
  const out = document.getElementById("result");
  out.textContent = JSON.stringify(report);
  out.dataset.done = "yes";
}

main();
