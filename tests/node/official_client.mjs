// Drives the official @fal-ai/client through falproxy, with no credentials in the client.
// Usage: node official_client.mjs <proxy-url>; prints one JSON report on stdout.
import { createFalClient } from "@fal-ai/client";

const proxyUrl = process.argv[2];
const fal = createFalClient({ proxyUrl: { url: proxyUrl, when: "always" } });
const input = { prompt: "a lighthouse at dusk", image_size: "square" };
const report = {};

async function step(name, fn) {
  try {
    report[name] = { ok: true, value: await fn() };
  } catch (error) {
    report[name] = { ok: false, error: String(error && error.message ? error.message : error),
                     status: error && error.status };
  }
}

await step("run", async () => {
  const { data, requestId } = await fal.run("fal-ai/flux/dev", { input });
  return { requestId, images: data.images.length, width: data.images[0].width };
});

await step("subscribe_polling", async () => {
  const updates = [];
  const { data, requestId } = await fal.subscribe("fal-ai/flux/dev", {
    input, logs: true, pollInterval: 50,
    onQueueUpdate: (update) => updates.push(update.status),
  });
  return { requestId, images: data.images.length, updates: [...new Set(updates)] };
});

await step("subscribe_streaming", async () => {
  const updates = [];
  const { data } = await fal.subscribe("fal-ai/flux/dev", {
    input, logs: true, mode: "streaming",
    onQueueUpdate: (update) => updates.push(update.status),
  });
  return { images: data.images.length, updates: [...new Set(updates)] };
});

await step("stream", async () => {
  const stream = await fal.stream("fal-ai/flux/dev", { input });
  const events = [];
  for await (const event of stream) events.push(event);
  const done = await stream.done();
  return { events: events.length, final_images: done.images.length };
});

await step("queue", async () => {
  const { request_id: requestId } = await fal.queue.submit("fal-ai/flux/dev", { input });
  const seen = [];
  for (let i = 0; i < 400; i++) {
    const status = await fal.queue.status("fal-ai/flux/dev", { requestId, logs: true });
    seen.push(status.status);
    if (status.status === "COMPLETED") break;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  const result = await fal.queue.result("fal-ai/flux/dev", { requestId });
  return { statuses: [...new Set(seen)], images: result.data.images.length };
});

await step("cancel", async () => {
  const { request_id: requestId } = await fal.queue.submit("fake/never-completes", { input });
  await fal.queue.cancel("fake/never-completes", { requestId });
  const status = await fal.queue.status("fake/never-completes", { requestId });
  return { status: status.status };
});

await step("storage_upload", async () => {
  const url = await fal.storage.upload(new Blob(["hello from node"], { type: "text/plain" }));
  const body = await (await fetch(url)).text();
  return { body };
});

await step("validation_error", async () => {
  try {
    await fal.run("fal-ai/flux/dev", { input: {} });
    return { thrown: false };
  } catch (error) {
    return { thrown: true, status: error.status, name: error.constructor.name };
  }
});

process.stdout.write(JSON.stringify(report));
