// Loaded with `node --import` before a README snippet: resolves package
// directories as a bundler would (dir_imports.mjs), and records each HTTP
// request the snippet's client makes as [method, url, status, content-type,
// body], written as JSON to the file named by README_FETCH_LOG when Node exits.
import { writeFileSync } from "node:fs";
import { register } from "node:module";

register("./dir_imports.mjs", import.meta.url);

const requests = [];
const fetched = globalThis.fetch;
globalThis.fetch = async (url, options = {}) => {
  const response = await fetched(url, options);
  const body = typeof options.body === "string" ? options.body : null;
  const contentType = response.headers.get("content-type");
  requests.push([options.method || "GET", String(url), response.status, contentType, body]);
  return response;
};
process.on("exit", () => writeFileSync(process.env.README_FETCH_LOG, JSON.stringify(requests)));
