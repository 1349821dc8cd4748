// What the Apollo scripts share: their input, and the link a mobile app uses
// (automatic persisted queries as hash-only GETs over HttpLink), with each
// HTTP response reported to `record` as it arrives.
"use strict";

const crypto = require("node:crypto");
const { ApolloLink, HttpLink } = require("@apollo/client/core");
const { createPersistedQueryLink } = require("@apollo/client/link/persisted-queries");

function readInput() {
  return JSON.parse(require("node:fs").readFileSync(0, "utf8"));
}

function mobileLink(uri, record, ...between) {
  const recordingFetch = async (url, options) => {
    const response = await fetch(url, options);
    record((options && options.method) || "GET", url, response);
    return response;
  };
  const sha256 = (text) => crypto.createHash("sha256").update(text).digest("hex");
  return ApolloLink.from([
    createPersistedQueryLink({ sha256, useGETForHashedQueries: true }),
    ...between,
    new HttpLink({ uri, fetch: recordingFetch }),
  ]);
}

function run(main) {
  main().catch((error) => {
    console.error(error);
    process.exit(1);
  });
}

module.exports = { mobileLink, readInput, run };
