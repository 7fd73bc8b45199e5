// Drives gigachat-node (npm "gigachat-node" 2.4.5) against the emulator, as a user of that library would.
// argv: <module dir> <base url> <auth url> <credentials> <file to upload> <stream timeout ms>.
// Prints one JSON report.
"use strict";

const path = require("path");
const [moduleDir, baseUrl, authUrl, credentials, uploadPath, streamTimeout] = process.argv.slice(2);
const STREAM_MS = Number(streamTimeout);
const { GigaChat } = require(path.join(moduleDir, "node_modules", "gigachat-node"));

function withTimeout(promise, ms, what) {
  return Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: no end after ${ms} ms`)), ms)),
  ]);
}

// The README's way of reading a stream: every "data" chunk is one `data: {json}` event.
function collect(stream) {
  return new Promise((resolve, reject) => {
    const parts = [];
    let chunks = 0;
    stream.on("data", (chunk) => {
      chunks += 1;
      const event = JSON.parse(chunk.toString().substring(6));
      parts.push(event.choices[0].delta.content || "");
    });
    stream.on("end", () => resolve({ text: parts.join(""), chunks }));
    stream.on("error", reject);
  });
}

async function main() {
  const client = new GigaChat({ clientSecretKey: credentials, isIgnoreTSL: false, isPersonal: true,
                                autoRefreshToken: true, imgOn: true });
  client.url = baseUrl;               // the library hard-codes the service's hosts
  client.urlAuth = authUrl;
  client.httpClient.baseUrl = baseUrl;

  const report = {};
  const token = await client.createToken();
  report.token = { hasToken: typeof token.access_token === "string", expiresAt: token.expires_at };

  const prompt = { model: "GigaChat", messages: [{ role: "user", content: "Расскажи про реки и озёра" }] };
  const answer = await client.completion(prompt);
  report.completion = answer.choices[0].message.content;

  const streamed = await withTimeout(client.completionStream(prompt).then(collect), STREAM_MS, "completionStream");
  report.stream = streamed;

  const counted = await withTimeout(
    client.completionStream({ model: "GigaChat", messages: [{ role: "user", content: "Count from 1 to 5" }] })
      .then(collect), STREAM_MS, "completionStream (count)");
  report.count = counted.text;

  const models = await client.allModels();
  report.models = models.map((m) => m.id);

  const vectors = await client.embedding(["первый текст", "второй текст"]);
  report.embeddings = vectors.map((v) => v.embedding.length);

  report.tokens = await client.summarize("GigaChat", ["Сколько здесь токенов?"]);
  report.balance = (await client.getBalance()).balance.map((b) => b.usage);

  const uploaded = await client.uploadFile(uploadPath, "general");
  report.upload = { id: uploaded.id, filename: uploaded.filename, bytes: uploaded.bytes };
  report.listed = (await client.getAllFiles()).data.map((f) => f.id).includes(uploaded.id);
  report.info = (await client.getFileInfo(uploaded.id)).filename;

  const drawn = await client.completion({ model: "GigaChat", function_call: "auto",
                                          messages: [{ role: "user", content: "Нарисуй рыжего кота" }] });
  const imageId = drawn.choices[0].message.image;
  const jpeg = await client.downloadFile(imageId);
  report.image = { id: imageId, jpeg: Buffer.isBuffer(jpeg) && jpeg[0] === 0xff && jpeg[1] === 0xd8, bytes: jpeg.length };
  report.deleted = (await client.deleteFile(uploaded.id)).deleted;
  process.stdout.write(JSON.stringify(report));
}

main().then(() => process.exit(0), (err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err));
  process.exit(1);
});
