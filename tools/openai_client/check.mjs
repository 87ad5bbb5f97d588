// `gpt2 serve` through OpenAI's official Node.js client (the npm package `openai`): one
// completion, then the same one streamed; the two texts must be equal.
//
//   cd tools/openai_client && npm install
//   node check.mjs http://127.0.0.1:PORT/v1 [API_KEY]
//
// Exits 0 when both calls succeed and agree, 1 otherwise.
import OpenAI from "openai";

const baseURL = process.argv[2] ?? "http://127.0.0.1:8080/v1";
const apiKey = process.argv[3] ?? "none";
const client = new OpenAI({ baseURL, apiKey, timeout: 60_000, maxRetries: 0 });

const models = await client.models.list();
const model = models.data[0].id;
console.log(`models: ${models.data.map((m) => m.id).join(", ")}`);

const params = { model, prompt: "The meaning of life is", max_tokens: 24, temperature: 0 };
const whole = await client.completions.create(params);
console.log("completions.create:", JSON.stringify(whole));

let streamed = "";
let chunks = 0;
let finish = null;
let usage = null;
const stream = await client.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
for await (const chunk of stream) {
  ++chunks;
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) {
    streamed += c.text;
    if (c.finish_reason) finish = c.finish_reason;
  }
}
console.log(`stream: ${chunks} chunks, finish_reason ${finish}, usage ${JSON.stringify(usage)}`);
console.log(`stream text: ${JSON.stringify(streamed)}`);

const same = streamed === whole.choices[0].text && finish === whole.choices[0].finish_reason &&
             JSON.stringify(usage) === JSON.stringify(whole.usage);
console.log(same ? "OK: the stream equals the completion" : "MISMATCH between the stream and the completion");
process.exit(same ? 0 : 1);
