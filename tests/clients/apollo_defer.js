// Runs a query with @defer through Apollo Client from Node, as a mobile app
// would (see apollo_link.js); Apollo asks for it with Accept:
// multipart/mixed;deferSpec=20220824. Reads {url, query, variables} as JSON on
// stdin; prints {parts, results, requests}: the raw results in the order they
// arrived, each snapshot the app would render, and [method, status,
// content-type] of each HTTP request.
"use strict";

const { ApolloClient, ApolloLink, InMemoryCache, Observable, gql } = require("@apollo/client/core");
const { mobileLink, readInput, run } = require("./apollo_link");

const copy = (value) => JSON.parse(JSON.stringify(value));

run(async () => {
  const input = readInput();
  const requests = [];
  const parts = [];
  let finished;
  const done = new Promise((resolve) => (finished = resolve));
  // Records what the HTTP link delivers, part by part, before Apollo merges it.
  const recording = new ApolloLink(
    (operation, forward) =>
      new Observable((observer) =>
        forward(operation).subscribe({
          next: (result) => {
            parts.push(copy(result));
            observer.next(result);
          },
          error: (error) => observer.error(error),
          complete: () => {
            observer.complete();
            finished();
          },
        })
      )
  );
  const link = mobileLink(
    input.url,
    (method, uri, response) =>
      requests.push([method, response.status, response.headers.get("content-type")]),
    recording
  );
  const client = new ApolloClient({ link, cache: new InMemoryCache() });
  const results = [];
  const watched = client
    .watchQuery({ query: gql(input.query), variables: input.variables, fetchPolicy: "no-cache" })
    .subscribe({
      next: ({ data, errors }) => results.push({ data: copy(data), errors: errors || null }),
      error: (error) => {
        console.error(error);
        process.exit(1);
      },
    });
  await done;
  await new Promise((resolve) => setTimeout(resolve, 50)); // Apollo's last snapshot
  watched.unsubscribe();
  process.stdout.write(JSON.stringify({ parts, results, requests }));
});
