// The API driven by the clients our users run, against a running server:
// Apollo Client 3 (HttpLink, the persisted-queries link, InMemoryCache) and graphql-ws
// (through Apollo's GraphQLWsLink, with the `ws` package as its WebSocket).
//
// Environment:
//   LIVENTIX_API_URL   the endpoint, e.g. http://127.0.0.1:8000/graphql
//   LIVENTIX_WS_URL    its WebSocket URL (default: LIVENTIX_API_URL with ws:// or wss://)
//   LIVENTIX_TOKEN     a signed-in user's bearer token (it posts to the feed)
//   LIVENTIX_EVENT_ID  a published event's id, as the API spells it
//
// Steps, each printed as `ok N - ...` or `not ok N - ...` with what was seen:
//   1. Read the event's feed page through the persisted-queries link; the page is
//      normalized in the cache (one entry per post, the feed field holding references).
//   2. createPost, prepended to the cached feed in `update` with `cache.modify`; the
//      feed read back with `fetchPolicy: 'cache-only'` has it first, and no request
//      went out for it.
//   3. Subscribe to the event's live feed; a post created after subscribing arrives,
//      once, as `PostCreated`, in the shape createPost returned it.
//   4. `node(id:)` (and `nodes(ids:)`) resolve the post to the very cache entry the feed
//      points at; ids are Relay global ids (base64 of "Post:<uuid>").
//   5. Automatic persisted queries: the first request of a query is hash-only over GET;
//      for a hash it does not know, the server answers PersistedQueryNotFound and the
//      retry carries the query; a repeat is answered from the hash alone; mutations
//      never go over GET.
// Should persisted queries fail (step 5), steps 2-4 still run, with full queries.
//
// Exit status: 0 when every step passed, 1 otherwise, 2 for a missing variable.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { performance } from "node:perf_hooks";

// Apollo Client 3 has no "exports" map: under Node's ESM loader its entry points are
// named by file (`.../index.js`), and `/core` keeps React out.
import { ApolloClient, HttpLink, InMemoryCache, gql, split } from "@apollo/client/core/index.js";
import { createPersistedQueryLink } from "@apollo/client/link/persisted-queries/index.js";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions/index.js";
import { getMainDefinition } from "@apollo/client/utilities/index.js";
import { createClient } from "graphql-ws";
import { WebSocket } from "ws";

const TIMEOUT_MS = 30_000; // the whole run; each step takes milliseconds
const LIVE_WAIT_MS = 5_000; // for the subscription's message

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`error: set ${name} (see the top of ${new URL(import.meta.url).pathname})`);
    process.exit(2);
  }
  return value;
}

const API_URL = required("LIVENTIX_API_URL");
const WS_URL = process.env.LIVENTIX_WS_URL || API_URL.replace(/^http/, "ws");
const TOKEN = required("LIVENTIX_TOKEN");
const EVENT_ID = required("LIVENTIX_EVENT_ID");

const sha256 = (text) => createHash("sha256").update(text).digest("hex");

// -- operations: the post in one shape, for the feed, the mutation and the subscription --

const FEED_POST = gql`
  fragment FeedPost on Post {
    id
    text
    createdAt
    cursor
    media { url kind width height durationSeconds }
    author { id displayName }
    event { id title }
  }
`;

const EVENT_FEED = gql`
  query EventFeed($eventId: ID!, $first: Int!) {
    eventFeed(eventId: $eventId, first: $first) {
      edges { cursor node { ...FeedPost } }
      pageInfo { hasNextPage endCursor }
    }
  }
  ${FEED_POST}
`;

const CREATE_POST = gql`
  mutation CreatePost($eventId: ID!, $text: String!) {
    createPost(eventId: $eventId, text: $text) {
      __typename
      ... on CreatePostPayload {
        post { ...FeedPost }
        edge { cursor node { ...FeedPost } }
      }
      ... on FeedError { code message field }
    }
  }
  ${FEED_POST}
`;

const LIVE_FEED = gql`
  subscription LiveFeed($eventId: ID!, $after: String) {
    eventFeed(eventId: $eventId, after: $after) {
      __typename
      ... on PostCreated { cursor post { ...FeedPost } }
      ... on PostDeleted { postId eventId }
      ... on FeedResync { reason lastCursor }
    }
  }
  ${FEED_POST}
`;

const NODE = gql`
  query PostNode($id: ID!) {
    node(id: $id) {
      id
      ... on Post { id text author { id displayName } }
    }
  }
`;

const NODES = gql`
  query Nodes($ids: [ID!]!) {
    nodes(ids: $ids) {
      id
      ... on Post { text }
      ... on Event { title }
    }
  }
`;

// -- the client, with every HTTP request it sends recorded ----------------------------

/** One HTTP request as sent and answered: what the assertions look at. */
const requests = [];

async function recordingFetch(input, init = {}) {
  const url = new URL(String(input));
  const method = (init.method || "GET").toUpperCase();
  let params = {};
  if (method === "GET") {
    const json = (name) => {
      const raw = url.searchParams.get(name);
      return raw === null ? undefined : JSON.parse(raw);
    };
    params = {
      operationName: url.searchParams.get("operationName"),
      query: url.searchParams.get("query"),
      extensions: json("extensions"),
    };
  } else if (typeof init.body === "string") {
    params = JSON.parse(init.body);
  }
  const response = await fetch(input, init);
  const body = await response
    .clone()
    .json()
    .catch(() => null);
  requests.push({
    method,
    operationName: params.operationName ?? null,
    query: typeof params.query === "string" && params.query ? params.query : null,
    sha256Hash: params.extensions?.persistedQuery?.sha256Hash ?? null,
    status: response.status,
    errors: body?.errors ?? [],
    hasData: body?.data != null,
  });
  return response;
}

const authorization = `Bearer ${TOKEN}`;
const httpLink = new HttpLink({
  uri: API_URL,
  headers: { Authorization: authorization },
  fetch: recordingFetch,
});
const persistedQueries = createPersistedQueryLink({ sha256, useGETForHashedQueries: true });
// Turned off when step 1's read through the link fails (step 5 then fails), so that the
// other steps are still checked with full queries.
let usePersistedQueries = true;

let connected;
const wsConnected = new Promise((resolve) => {
  connected = resolve;
});
const wsClient = createClient({
  url: WS_URL,
  webSocketImpl: WebSocket,
  connectionParams: { Authorization: authorization },
  retryAttempts: 0,
  on: { connected: () => connected() },
});

const isSubscription = ({ query }) => {
  const definition = getMainDefinition(query);
  return definition.kind === "OperationDefinition" && definition.operation === "subscription";
};

const cache = new InMemoryCache({
  typePolicies: {
    Query: {
      fields: {
        // One cached page per event, whatever its size; a fresh page replaces it.
        eventFeed: { keyArgs: ["eventId"], merge: (_existing, incoming) => incoming },
      },
    },
  },
});

const client = new ApolloClient({
  cache,
  link: split(
    isSubscription,
    new GraphQLWsLink(wsClient),
    split(() => usePersistedQueries, persistedQueries.concat(httpLink), httpLink),
  ),
});

// -- helpers ----------------------------------------------------------------------------

const FEED_VARIABLES = { eventId: EVENT_ID, first: 5 };
// How InMemoryCache names the feed's field in ROOT_QUERY, given `keyArgs: ["eventId"]`.
const FEED_FIELD = `eventFeed:${JSON.stringify({ eventId: EVENT_ID })}`;
const UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";

const readFeed = (fetchPolicy) =>
  client.query({ query: EVENT_FEED, variables: FEED_VARIABLES, fetchPolicy });

const countOf = (operationName) =>
  requests.filter((r) => r.operationName === operationName).length;

/** An error as a line a reader can act on: message, HTTP status, GraphQL error codes. */
function describe(error) {
  const parts = [error?.message ?? String(error)];
  const network = error?.networkError;
  if (network?.statusCode) parts.push(`HTTP ${network.statusCode}`);
  const errors = [...(error?.graphQLErrors ?? []), ...(network?.result?.errors ?? [])];
  for (const e of errors) parts.push(`${e.extensions?.code ?? "(no code)"}: ${e.message}`);
  return parts.join(" | ");
}

function answeredNotFound(request) {
  return request.errors.some(
    (e) =>
      e.message === "PersistedQueryNotFound" ||
      e.extensions?.code === "PERSISTED_QUERY_NOT_FOUND",
  );
}

function need(value, what) {
  if (value === undefined || value === null) throw new Error(`not run: needs ${what}`);
  return value;
}

function assertGlobalId(id, typeName) {
  const decoded = Buffer.from(String(id), "base64").toString("utf8");
  assert.match(
    decoded,
    new RegExp(`^${typeName}:${UUID}$`),
    `${typeName} id ${JSON.stringify(id)} is not a global id: ` +
      `its base64 decodes to ${JSON.stringify(decoded)}`,
  );
}

/** Rejects after `ms` with `message()` (a function, to show what arrived by then). */
function deadline(ms, message) {
  let timer;
  const promise = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(message())), ms);
  });
  return { promise, cancel: () => clearTimeout(timer) };
}

async function createPost(text) {
  const { data } = await client.mutate({
    mutation: CREATE_POST,
    variables: { eventId: EVENT_ID, text },
    update(store, { data: result }) {
      const payload = result?.createPost;
      if (payload?.__typename !== "CreatePostPayload") return;
      // The mutation returns the feed's edge: prepend it to this event's cached page.
      store.modify({
        fields: {
          eventFeed(existing, { storeFieldName, toReference }) {
            if (storeFieldName !== FEED_FIELD || !existing) return existing;
            const edge = {
              __typename: "PostEdge",
              cursor: payload.edge.cursor,
              node: toReference(payload.edge.node),
            };
            return { ...existing, edges: [edge, ...existing.edges] };
          },
        },
      });
    },
  });
  const payload = data.createPost;
  assert.equal(
    payload.__typename,
    "CreatePostPayload",
    `createPost refused: ${JSON.stringify(payload)}`,
  );
  return payload;
}

function note(text) {
  console.log(`# ${text}`);
}

// -- the steps --------------------------------------------------------------------------

const state = {}; // what later steps build on: the page read, the post created

async function readTheFeedPage() {
  let result;
  const sent = requests.length;
  try {
    result = await readFeed("network-only");
    state.firstRead = requests.slice(sent);
  } catch (error) {
    state.apqFailure = describe(error);
    usePersistedQueries = false;
    note(`the read through the persisted-queries link failed: ${state.apqFailure}`);
    note("steps 2-4 go on with full queries; step 5 reports the failure");
    result = await readFeed("network-only");
  }
  const page = result.data.eventFeed;
  assert.ok(page.edges.length > 0, "the event's feed page is empty (the demo event has posts)");

  const snapshot = cache.extract();
  const cached = snapshot.ROOT_QUERY[FEED_FIELD];
  assert.ok(
    cached,
    `no ${FEED_FIELD} in ROOT_QUERY; it has ${Object.keys(snapshot.ROOT_QUERY).join(", ")}`,
  );
  assert.equal(cached.edges.length, page.edges.length);
  page.edges.forEach((edge, i) => {
    const key = cache.identify(edge.node);
    assert.equal(key, `Post:${edge.node.id}`, "a post is normalized under Post:<id>");
    assert.deepEqual(cached.edges[i].node, { __ref: key }, `cached edge ${i} refers to ${key}`);
    assert.equal(snapshot[key]?.text, edge.node.text, `${key} holds the post`);
    const author = cache.identify(edge.node.author);
    assert.deepEqual(snapshot[key].author, { __ref: author }, `${key}'s author is a reference`);
    assert.equal(snapshot[author]?.displayName, edge.node.author.displayName);
  });
  state.page = page;
}

async function prependACreatedPost() {
  const page = need(state.page, "the page of step 1");
  const sent = requests.length;
  const feedReads = countOf("EventFeed");
  const payload = await createPost(`Apollo cache check ${Date.now()}`);
  const sentNow = requests.slice(sent).map((r) => r.operationName);
  assert.ok(
    sentNow.length > 0 && sentNow.every((name) => name === "CreatePost"),
    `only createPost should have gone out; sent: ${JSON.stringify(sentNow)}`,
  );
  assert.deepEqual(payload.post, payload.edge.node, "createPost's post and edge.node differ");

  const before = requests.length;
  const { data } = await readFeed("cache-only");
  assert.equal(requests.length, before, "the cache-only read of the feed sent a request");
  assert.equal(countOf("EventFeed"), feedReads, "the feed was requested again after step 1");
  assert.ok(
    data?.eventFeed,
    "the feed could not be read from the cache alone (a field missing from the mutation?)",
  );
  const edges = data.eventFeed.edges;
  assert.equal(edges.length, page.edges.length + 1, "the cached page grew by one edge");
  assert.deepEqual(edges[0], payload.edge, "the new post is first, as createPost returned it");
  assert.deepEqual(edges.slice(1), page.edges, "the posts read before follow it");
  state.created = payload;
}

async function receiveALivePost() {
  // `after` is the newest cursor this client has seen: should the server not have
  // registered the subscription yet when the post commits, the post is replayed, so the
  // check cannot race the subscribe message.
  let after = state.created?.edge.cursor ?? state.page?.edges[0]?.cursor;
  if (after === undefined) {
    after = (await readFeed("network-only")).data.eventFeed.edges[0]?.cursor ?? null;
  }
  const messages = [];
  let wanted = null;
  let arrived;
  let failed;
  const done = new Promise((resolve, reject) => {
    arrived = resolve;
    failed = reject;
  });
  done.catch(() => {}); // awaited below; a failure before then must not crash the run
  const isWanted = (m) => m.__typename === "PostCreated" && m.post.id === wanted;
  const subscription = client
    .subscribe({ query: LIVE_FEED, variables: { eventId: EVENT_ID, after } })
    .subscribe({
      next: (result) => {
        if (result.errors?.length) {
          failed(new Error(`subscription errors: ${JSON.stringify(result.errors)}`));
          return;
        }
        messages.push(result.data.eventFeed);
        if (wanted && isWanted(result.data.eventFeed)) arrived(result.data.eventFeed);
      },
      error: (error) => failed(new Error(`subscription failed: ${describe(error)}`)),
      complete: () => failed(new Error("the subscription completed before the post arrived")),
    });
  const ack = deadline(LIVE_WAIT_MS, () => `no connection_ack from ${WS_URL}`);
  const live = deadline(
    LIVE_WAIT_MS,
    () => `no PostCreated for ${wanted} in ${LIVE_WAIT_MS} ms; got ${JSON.stringify(messages)}`,
  );
  try {
    // `done` rejects at once if the subscription fails (e.g. the socket is closed).
    await Promise.race([wsConnected, done, ack.promise]);
    const payload = await createPost(`Live check ${Date.now()}`);
    wanted = payload.post.id;
    const early = messages.find(isWanted);
    if (early) arrived(early);
    const update = await Promise.race([done, live.promise]);
    assert.equal(update.cursor, payload.edge.cursor, "PostCreated.cursor is the post's cursor");
    assert.deepEqual(update.post, payload.post, "PostCreated.post differs from createPost's post");
    await new Promise((resolve) => setTimeout(resolve, 150)); // room for a duplicate
    assert.equal(messages.filter(isWanted).length, 1, "the post arrived more than once");
    const others = messages.filter((m) => m.__typename !== "PostCreated");
    assert.deepEqual(others, [], "only PostCreated messages were expected");
  } finally {
    ack.cancel();
    live.cancel();
    subscription.unsubscribe();
  }
}

async function refetchThePostAsANode() {
  const created = need(state.created, "the post of step 2").post;
  const key = cache.identify({ __typename: "Post", id: created.id });
  assert.equal(key, `Post:${created.id}`);

  const { data } = await client.query({
    query: NODE,
    variables: { id: created.id },
    fetchPolicy: "network-only",
  });
  assert.ok(data.node, `node(id: ${JSON.stringify(created.id)}) is null`);
  assert.equal(data.node.__typename, "Post");
  assert.equal(data.node.id, created.id, "node(id:) answers with the id it was given");
  assert.equal(data.node.text, created.text);
  assert.equal(cache.identify(data.node), key, "cache.identify gives the node the post's key");

  const snapshot = cache.extract();
  const nodeField = `node(${JSON.stringify({ id: created.id })})`;
  assert.deepEqual(snapshot.ROOT_QUERY[nodeField], { __ref: key }, `${nodeField} refers to ${key}`);
  const holders = Object.keys(snapshot).filter((k) => snapshot[k]?.id === created.id);
  assert.deepEqual(holders, [key], "exactly one cache entry holds the post");
  // (Step 3's post was prepended after this one, so look the edge up rather than take [0].)
  const edges = snapshot.ROOT_QUERY[FEED_FIELD]?.edges ?? [];
  assert.equal(edges.filter((e) => e.node.__ref === key).length, 1, "the feed refers to it once");
  assert.equal(snapshot[key].cursor, created.cursor, "the entry lost what the mutation wrote");
  const { data: feed } = await readFeed("cache-only");
  const inFeed = feed?.eventFeed.edges.find((e) => e.node.id === created.id)?.node;
  assert.deepEqual(inFeed, created, "the cached feed no longer reads the post as created");

  assertGlobalId(created.id, "Post");
  assertGlobalId(created.author.id, "User");
  assertGlobalId(created.event.id, "Event");

  const { data: many } = await client.query({
    query: NODES,
    variables: { ids: [created.id, created.event.id] },
    fetchPolicy: "network-only",
  });
  assert.deepEqual(
    many.nodes.map((n) => n && cache.identify(n)),
    [key, cache.identify({ __typename: "Event", id: created.event.id })],
    "nodes(ids:) gives the post and the event, in order",
  );
}

/** The requests of one query through the persisted-queries link, checked: hash-only over
 * GET first; if the server answers PersistedQueryNotFound, one retry with the query. */
function checkHashedQuery(sent, { mustMiss }) {
  const [first, retry, ...more] = sent;
  assert.ok(first, "no request was sent");
  assert.equal(first.method, "GET", "a hashed query goes over GET (useGETForHashedQueries)");
  assert.equal(first.query, null, "the first request carried the query text");
  assert.match(first.sha256Hash ?? "", /^[0-9a-f]{64}$/, "the first request carried no hash");
  if (!answeredNotFound(first)) {
    assert.ok(
      !mustMiss,
      `a hash never sent before was not answered PersistedQueryNotFound: HTTP ${first.status} ` +
        JSON.stringify(first.errors),
    );
    assert.ok(
      first.hasData && first.errors.length === 0 && !retry,
      `the hash-only request failed: ${JSON.stringify(sent)}`,
    );
    note(`the server already knew the hash of ${first.operationName}`);
    return;
  }
  assert.ok(retry && more.length === 0, `expected one retry: ${JSON.stringify(sent)}`);
  assert.ok(retry.query, "the retry carried no query");
  assert.equal(retry.sha256Hash, first.sha256Hash, "the retry carried another hash");
  assert.equal(sha256(retry.query), first.sha256Hash, "the hash is not the query's sha256");
  assert.ok(
    retry.hasData && retry.errors.length === 0,
    `the retry failed: HTTP ${retry.status} ${JSON.stringify(retry.errors)}`,
  );
}

async function checkPersistedQueries() {
  if (state.apqFailure) {
    throw new Error(`the read through the persisted-queries link failed: ${state.apqFailure}`);
  }
  // Step 1's read (a server that ran this script before may know its hash already).
  checkHashedQuery(need(state.firstRead, "the read of step 1"), { mustMiss: false });

  // A query no server has seen: the whole exchange, then a repeat from the hash alone.
  const nonce = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
  const probe = gql(`query ApqProbe { run_${nonce}: __typename }`);
  let sent = requests.length;
  await client.query({ query: probe, fetchPolicy: "network-only" });
  checkHashedQuery(requests.slice(sent), { mustMiss: true });
  sent = requests.length;
  await client.query({ query: probe, fetchPolicy: "network-only" });
  const repeat = requests.slice(sent);
  assert.equal(repeat.length, 1, `the repeat took ${repeat.length} requests`);
  assert.equal(repeat[0].method, "GET");
  assert.equal(repeat[0].query, null, "the repeat carried the query text");
  assert.ok(
    repeat[0].hasData && repeat[0].errors.length === 0,
    `the repeat failed: ${JSON.stringify(repeat[0])}`,
  );

  const mutations = requests.filter((r) => r.operationName === "CreatePost");
  assert.ok(mutations.length > 0, "no createPost request was recorded");
  assert.ok(mutations.every((r) => r.method === "POST"), "a mutation went over GET");
  assert.ok(mutations.some((r) => !r.query && r.sha256Hash), "no hash-only createPost was sent");
}

const STEPS = [
  ["eventFeed page read through Apollo's persisted-queries link, normalized", readTheFeedPage],
  ["createPost prepended in the cache; cache-only read: first, no request", prependACreatedPost],
  ["graphql-ws live feed: PostCreated for a post created after subscribing", receiveALivePost],
  ["node(id:)/nodes(ids:) on the post's cache entry; global ids", refetchThePostAsANode],
  ["persisted queries: hash-only GET, PersistedQueryNotFound, retry", checkPersistedQueries],
];

async function main() {
  note(`API ${API_URL}, WebSocket ${WS_URL}, event ${EVENT_ID}`);
  let passed = 0;
  for (const [index, [title, run]] of STEPS.entries()) {
    const started = performance.now();
    try {
      await run();
      passed += 1;
      console.log(`ok ${index + 1} - ${title} (${Math.round(performance.now() - started)} ms)`);
    } catch (error) {
      const detail = error instanceof assert.AssertionError ? error.message : describe(error);
      console.log(`not ok ${index + 1} - ${title}`);
      console.log(detail.replace(/^/gm, "    "));
    }
  }
  console.log(`# ${passed} of ${STEPS.length} steps passed`);
  return passed === STEPS.length;
}

const watchdog = setTimeout(() => {
  console.log(`not ok - the run took over ${TIMEOUT_MS} ms`);
  process.exit(1);
}, TIMEOUT_MS);

let ok = false;
try {
  ok = await main();
} finally {
  clearTimeout(watchdog);
  client.stop();
  await wsClient.dispose();
}
process.exit(ok ? 0 : 1);
