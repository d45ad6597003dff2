// The browser side of tests/test_browser.py: the official client, through falproxy, via CORS.
// The page reads the proxy URL and a bearer token from its query string, runs `subscribe`
// and `stream`, and renders what came back into #result for the test to read.
import { fal } from "@fal-ai/client";

const params = new URLSearchParams(location.search);
const token = params.get("token");

fal.config({
  proxyUrl: params.get("proxy"),
  // How a browser app authenticates to the sidecar: add the bearer token to every call.
  requestMiddleware: async (request) => ({
    ...request,
    headers: { ...request.headers, authorization: `Bearer ${token}` },
  }),
});

async function step(name, report, body) {
  try {
    report[name] = { ok: true, value: await body() };
  } catch (error) {
    report[name] = { ok: false, error: String(error && (error.message || error)) };
  }
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
  const out = document.getElementById("result");
  out.textContent = JSON.stringify(report);
  out.dataset.done = "yes";
}

main();
