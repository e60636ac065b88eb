// Structured output on a random-weight model (the `tiny-qwen` synth_model shape with the real
// Qwen3 tokenizer, 150k tokens) sampled at temperature 1: every output that finishes parses
// and validates against its schema under an independent validator (ajv), GBNF outputs match
// a reference regular expression, forced tool calls are valid calls, and unenforceable
// keywords are refused with a 400 naming their path.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { clientFor, errorOf, fixturesDir, loadOpenAI, postJson, startServer } from './helpers.mjs';

const OpenAI = await loadOpenAI();
const synth = process.env.LMSERVE_SYNTH_MODEL;

// The server's sequences, and the requests a test keeps in flight at most: a request's client
// timeout then bounds its own generation, not also its wait behind the others in the queue
// (on the sanitized build, under load, 64 queued requests outlasted a 120 s timeout).
const slots = 4;

let dir;
let server;
let client;
before(async () => {
  if (!synth) throw new Error('LMSERVE_SYNTH_MODEL (the synth_model binary) is not set');
  dir = mkdtempSync(path.join(os.tmpdir(), 'lmserve-structured-'));
  execFileSync(synth, ['--shape', 'tiny-qwen', '--tokenizer', path.join(fixturesDir, 'tokenizers', 'qwen3'),
    '--out', dir, '--seed', '5']);
  server = await startServer(['--parallel', String(slots)], { model: dir });
  client = new OpenAI({ baseURL: `${server.baseURL}/v1`, apiKey: 'sk-unused', maxRetries: 0, timeout: 120_000 });
});
after(async () => {
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);

// Realistic schemas, hand-written, then combinations of field kinds (seeded).
const handWritten = [
  { type: 'object', properties: { answer: { enum: ['yes', 'no', 'maybe'] } }, required: ['answer'], additionalProperties: false },
  { type: 'object', properties: { name: { type: 'string', maxLength: 8 }, age: { type: 'integer', minimum: 0 } }, required: ['name', 'age'] },
  { type: 'array', items: { type: 'integer', minimum: 1, maximum: 9 }, minItems: 1, maxItems: 4 },
  { type: 'object', properties: { id: { type: 'string', format: 'uuid' }, at: { type: 'string', format: 'date-time' } }, required: ['id', 'at'] },
  { type: 'object', properties: { day: { type: 'string', format: 'date' }, time: { type: 'string', format: 'time' } }, required: ['day'] },
  { anyOf: [{ type: 'null' }, { type: 'boolean' }, { type: 'integer', minimum: -3, maximum: 3 }] },
  { type: ['number', 'null'] },
  { type: 'object', properties: { ok: { const: true }, code: { type: 'integer', minimum: 100, maximum: 140 } }, required: ['ok', 'code'] },
  { $defs: { node: { type: 'object', properties: { v: { type: 'integer', minimum: 0, maximum: 9 }, kids: { type: 'array', items: { $ref: '#/$defs/node' }, maxItems: 2 } }, required: ['v'] } }, $ref: '#/$defs/node' },
  { allOf: [{ type: 'object', properties: { a: { type: 'boolean' } }, required: ['a'] }, { properties: { b: { enum: [1, 2, 3] } }, required: ['b'] }] },
  { type: 'array', prefixItems: [{ type: 'string', maxLength: 3 }, { type: 'integer', minimum: 0, maximum: 5 }, { type: 'boolean' }], items: false },
  { type: 'object', properties: { tags: { type: 'array', items: { enum: ['red', 'green', 'blue'] }, maxItems: 3 } }, required: ['tags'], additionalProperties: false },
  { type: 'object', additionalProperties: { type: 'integer', minimum: 0, maximum: 50 }, properties: {} },
  { oneOf: [{ type: 'object', properties: { kind: { const: 'circle' }, r: { type: 'number', minimum: 0 } }, required: ['kind', 'r'] },
    { type: 'object', properties: { kind: { const: 'square' }, side: { type: 'integer', minimum: 1 } }, required: ['kind', 'side'] }] },
  { type: 'object', properties: { note: { type: 'string', minLength: 2, maxLength: 5, nullable: true } }, required: ['note'] },
  { type: 'string', maxLength: 6 },
  { type: 'object', properties: { a: { type: 'object', properties: { b: { type: 'object', properties: { c: { type: 'null' } }, required: ['c'] } }, required: ['b'] } }, required: ['a'] },
  { type: 'array', items: { type: 'array', items: { type: 'boolean' }, maxItems: 2 }, maxItems: 2 },
  { type: 'object', properties: { x: { type: 'number' }, y: { type: 'number' } }, required: ['x', 'y'], additionalProperties: false },
  { enum: [{ a: 1 }, [1, 2], 'str', null, 3.5] },
  // pattern, digit-exact bounds, more formats, oneOf told apart by type or by a const.
  { type: 'object', properties: { sku: { type: 'string', pattern: '^[A-Z]{3}-\\d{2,4}$' }, size: { enum: ['S', 'M', 'L'] } }, required: ['sku', 'size'] },
  { type: 'string', pattern: '(?:[a-z]+\\.)?(com|org|net)|\\d+[ \\t]?%' },
  { type: 'array', items: { type: 'string', pattern: '[^"\\\\]\\S{0,3}' }, minItems: 1, maxItems: 3 },
  { type: 'object', properties: { year: { type: 'integer', minimum: 1900, maximum: 2100 }, delta: { type: 'integer', exclusiveMinimum: -1000, exclusiveMaximum: 12345 } }, required: ['year', 'delta'] },
  { type: 'object', properties: { p: { type: 'number', minimum: 0, maximum: 1 }, t: { type: 'number', exclusiveMinimum: -40, exclusiveMaximum: 60 } }, required: ['p', 't'] },
  { type: 'object', properties: { email: { type: 'string', format: 'email' }, ip: { type: 'string', format: 'ipv4' } }, required: ['email', 'ip'] },
  { oneOf: [{ type: 'string', maxLength: 5 }, { type: 'integer', minimum: 0 }, { type: 'null' }] },
  { oneOf: [{ type: 'object', properties: { op: { const: 'add' }, n: { type: 'integer', minimum: 1, maximum: 1000000 } }, required: ['op', 'n'] },
    { type: 'object', properties: { op: { enum: ['neg', 'abs'] } }, required: ['op'], additionalProperties: false }] },
];

const fieldKinds = [
  { type: 'string', maxLength: 6 },
  { type: 'integer' },
  { type: 'integer', minimum: 0 },
  { type: 'integer', minimum: 10, maximum: 20 },
  { type: 'number', minimum: 0 },
  { type: 'boolean' },
  { type: 'null' },
  { enum: ['low', 'mid', 'high'] },
  { type: 'string', format: 'date' },
  { type: 'string', format: 'uuid' },
  { type: ['string', 'null'], maxLength: 4 },
  { type: 'array', items: { type: 'integer', minimum: 0, maximum: 3 }, maxItems: 3 },
  { anyOf: [{ type: 'string', maxLength: 3 }, { type: 'integer', minimum: 1 }] },
  { type: 'object', properties: { k: { type: 'boolean' } }, required: ['k'] },
  { type: 'string', pattern: '^[a-f0-9]{4,8}$' },
  { type: 'integer', minimum: -250, maximum: 99999 },
  { type: 'number', exclusiveMinimum: 0, maximum: 5 },
];

function generated(count) {
  let s = 12345;
  const rand = (n) => { s = (s * 1103515245 + 12345) % 2147483648; return s % n; };
  const names = ['id', 'title', 'count', 'price', 'active', 'owner', 'level', 'due', 'ref', 'alias', 'ids', 'code', 'meta'];
  const out = [];
  for (let i = 0; i < count; ++i) {
    const properties = {};
    const required = [];
    const n = 1 + rand(4);
    for (let j = 0; j < n; ++j) {
      const name = names[rand(names.length)];
      properties[name] = fieldKinds[rand(fieldKinds.length)];
      if (rand(2)) required.push(name);
    }
    out.push({ type: 'object', properties, required: [...new Set(required)], additionalProperties: rand(2) === 0 ? false : undefined });
  }
  return out.map((schema) => JSON.parse(JSON.stringify(schema)));
}

const schemas = [...handWritten, ...generated(36)];

async function constrained(schema, seed) {
  const response = await client.completions.create({
    model: 'm', prompt: 'Data:', max_tokens: 160, temperature: 1, seed,
    response_format: { type: 'json_schema', json_schema: { name: 's', schema, strict: true } },
  });
  return response.choices[0];
}

test('50+ schemas: every finished output parses and validates (ajv)', { timeout: 600_000 }, async () => {
  assert.ok(schemas.length >= 50);
  let finished = 0;
  const schemasFinished = new Set();
  const validators = schemas.map((schema) => ajv.compile(schema));
  const jobs = [1, 2, 3].flatMap((seed) => schemas.map((schema, i) => ({ schema, i, seed: seed * 100 + i })));
  const worker = async () => {
    try {
      for (let job = jobs.shift(); job; job = jobs.shift()) {
        const { schema, i, seed } = job;
        const choice = await constrained(schema, seed);
        if (choice.finish_reason !== 'stop') {
          assert.equal(choice.finish_reason, 'length');
          continue;
        }
        ++finished;
        schemasFinished.add(i);
        let value;
        assert.doesNotThrow(() => { value = JSON.parse(choice.text); }, `schema ${i}: ${choice.text}`);
        const validate = validators[i];
        assert.ok(validate(value), `schema ${i} ${JSON.stringify(schema)}: ${choice.text}\n${ajv.errorsText(validate.errors)}`);
      }
    } catch (e) {
      jobs.length = 0;  // the other workers take no more: no queue is left for the next test
      throw e;
    }
  };
  await Promise.all(Array.from({ length: slots }, worker));
  console.log(`structured output: ${finished} finished outputs, ${schemasFinished.size}/${schemas.length} schemas`);
  assert.ok(schemasFinished.size >= 50, `only ${schemasFinished.size} schemas produced a finished output`);
});

test('json_object, streaming: the chunks concatenate to one JSON object', { timeout: 120_000 }, async () => {
  const stream = await client.chat.completions.create({
    model: 'm', messages: [{ role: 'user', content: 'json' }], max_tokens: 200, temperature: 1, seed: 9,
    stream: true, response_format: { type: 'json_object' },
  });
  let text = '';
  let finish;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  assert.ok(text.trimStart().startsWith('{'), text);
  if (finish === 'stop') assert.equal(typeof JSON.parse(text), 'object');
  else assert.equal(finish, 'length');
});

test('max_tokens mid-object ends with finish_reason length', async () => {
  const choice = await client.completions.create({
    model: 'm', prompt: 'x', max_tokens: 2, temperature: 1, seed: 1,
    response_format: { type: 'json_schema', json_schema: { name: 's', schema: { type: 'object', properties: { a_long_key: { type: 'string' } }, required: ['a_long_key'] } } },
  });
  assert.equal(choice.choices[0].finish_reason, 'length');
});

test('GBNF grammars: outputs match a reference regular expression', { timeout: 120_000 }, async () => {
  const cases = [
    ['root ::= ("yes" | "no") "."', /^(yes|no)\.$/],
    ['root ::= [0-9]{3} "-" [a-z]{2,4}', /^[0-9]{3}-[a-z]{2,4}$/],
    ['root ::= item ("," item){0,3}\nitem ::= "x" | "[" root "]"', null],
    ['root ::= [^\\x00-\\x7F]{1,3} "!"', /^[^\x00-\x7F]{1,3}!$/u],
  ];
  // The recursive case: a small reference parser.
  const nested = (s) => {
    let i = 0;
    const list = () => { item(); for (let n = 0; n < 3 && s[i] === ','; ++n) { ++i; item(); } };
    const item = () => { if (s[i] === 'x') { ++i; return; } assert.equal(s[i++], '['); list(); assert.equal(s[i++], ']'); };
    list();
    assert.equal(i, s.length);
  };
  for (const [grammar, reference] of cases) {
    for (let seed = 1; seed <= 3; ++seed) {
      const response = await postJson(server.baseURL, '/v1/completions', { prompt: 'go', max_tokens: 60, temperature: 1, seed, grammar });
      assert.equal(response.status, 200);
      const choice = (await response.json()).choices[0];
      if (choice.finish_reason !== 'stop') continue;
      if (reference) assert.match(choice.text, reference, grammar);
      else nested(choice.text);
    }
  }
});

test('tool_choice required always yields a valid call of an offered tool', { timeout: 240_000 }, async () => {
  const tools = [
    { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 8 }, unit: { enum: ['c', 'f'] } }, required: ['city'] } } },
    { type: 'function', function: { name: 'add', parameters: { type: 'object', properties: { a: { type: 'integer', minimum: 0, maximum: 99 }, b: { type: 'integer', minimum: 0, maximum: 99 } }, required: ['a', 'b'], additionalProperties: false } } },
  ];
  const validators = Object.fromEntries(tools.map((t) => [t.function.name, ajv.compile(t.function.parameters)]));
  let calls = 0;
  for (let seed = 1; seed <= 8; ++seed) {
    const response = await client.chat.completions.create({
      model: 'm', messages: [{ role: 'user', content: 'Weather in Paris?' }], tools, tool_choice: 'required',
      max_tokens: 120, temperature: 1, seed,
    });
    const choice = response.choices[0];
    if (choice.finish_reason === 'length') continue;
    assert.equal(choice.finish_reason, 'tool_calls', JSON.stringify(choice.message));
    assert.equal(choice.message.tool_calls.length, 1);
    const call = choice.message.tool_calls[0].function;
    assert.ok(validators[call.name], call.name);
    assert.ok(validators[call.name](JSON.parse(call.arguments)), call.arguments);
    ++calls;
  }
  assert.ok(calls >= 4, `only ${calls} calls finished`);
});

test('unenforceable keywords are refused with a 400 naming their path', async () => {
  const refused = [
    [{ type: 'object', properties: { host: { type: 'string', format: 'hostname' } } }, 'properties.host.format'],
    [{ type: 'object', properties: { a: { type: 'string', pattern: '^(?!x)a+$' } } }, 'properties.a.pattern'],
    [{ type: 'array', items: { type: 'number', maximum: 0.5 } }, 'items.maximum'],
    [{ oneOf: [{ type: 'integer' }, { type: 'number' }] }, 'oneOf'],
  ];
  for (const [schema, path] of refused) {
    const response = await postJson(server.baseURL, '/v1/chat/completions', {
      messages: [{ role: 'user', content: 'x' }],
      response_format: { type: 'json_schema', json_schema: { name: 's', schema } },
    });
    assert.equal(response.status, 400);
    const error = await errorOf(response);
    assert.equal(error.code, 'unsupported_parameter');
    assert.equal(error.param, `response_format.json_schema.schema.${path}`);
  }
  const bad = await postJson(server.baseURL, '/v1/completions', { prompt: 'x', grammar: 'root ::= root "a"' });
  assert.equal(bad.status, 400);
  assert.equal((await errorOf(bad)).param, 'grammar');
});

test('forced tool calls in the llama3_json and mistral formats are valid calls', { timeout: 240_000 }, async () => {
  const tools = [
    { type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: { code: { type: 'string', pattern: '^[A-Z]{2}\\d{2}$' }, n: { type: 'integer', minimum: 1, maximum: 500 } }, required: ['code', 'n'], additionalProperties: false } } },
  ];
  const validate = ajv.compile(tools[0].function.parameters);
  for (const format of ['llama3_json', 'mistral']) {
    const other = await startServer(['--tool-call-format', format], { model: dir });
    try {
      const otherClient = await clientFor(other, { timeout: 120_000 });
      let calls = 0;
      for (let seed = 1; seed <= 4; ++seed) {
        const response = await otherClient.chat.completions.create({
          model: 'm', messages: [{ role: 'user', content: 'Look it up' }], tools,
          tool_choice: { type: 'function', function: { name: 'lookup' } }, max_tokens: 120, temperature: 1, seed,
        });
        const choice = response.choices[0];
        if (choice.finish_reason === 'length') continue;
        assert.equal(choice.finish_reason, 'tool_calls', `${format}: ${JSON.stringify(choice.message)}`);
        const call = choice.message.tool_calls[0].function;
        assert.equal(call.name, 'lookup');
        assert.ok(validate(JSON.parse(call.arguments)), `${format}: ${call.arguments}`);
        ++calls;
      }
      assert.ok(calls >= 2, `${format}: only ${calls} calls finished`);
    } finally {
      await other.stop();
    }
  }
});
